package consensus

import (
	"encoding/binary"
	"fmt"
	"slices"
)

func (r *Replica) debugString() string {
	s := fmt.Sprintf("node %d role %v commit %d applied %d next %d epoch %d health %v rejoin %v behind %v snapBusy %v stats %+v\n", r.self, r.role, r.commit, r.applied, r.next, r.el.epoch, r.health, r.rejoining, r.behind, r.snapBusy, r.stats)
	for _, p := range r.peers {
		s += fmt.Sprintf("  peer %d state %d acked %d sent %d applied %d granted %v gen %d revoked %d conn %v\n", p.id, p.state, p.acked, p.sent, p.applied, r.perms.GrantedBy(p.id, r.el.epoch), p.gen, p.revokedEpoch, p.conn.State())
	}
	s += fmt.Sprintf("  noQuorumSince %d degradeUntil %d det leader %v lastRequestAt %d now %d\n", r.noQuorumSince, r.degradeUntil, fmt.Sprint(r.det.Leader()), r.lastRequestAt, r.now)
	s += fmt.Sprintf("  voters: base %v pending %v at %d; el phase %d\n", r.votersOf(r.mem.base), r.votersOf(r.mem.pending), r.mem.pendingIdx, r.el.phase)
	for _, p := range r.peers {
		s += fmt.Sprintf("  alive %d: %v health %v since %d granted %v\n", p.id, r.det.Alive(p.id), r.det.PeerHealth(p.id), p.since, r.granted(&p))
	}
	if j := r.js; j != nil {
		d, derr := j.st.Durable()
		s += fmt.Sprintf("  journal: phase %d promiseSeq %d durable %d (%v) last %d mpSeen %d under %d rescan %v cursor %d persisted %d voter %v\n",
			r.el.phase, r.el.promiseSeq, d, derr, j.lastSeq, j.mpSeen, j.under, j.rescan, j.cursor, j.persisted, j.voter)
	}
	commitWord, _ := openWord(le.Uint64(r.region[hdrCommit:]))
	fuo, _ := openWord(le.Uint64(r.region[hdrFUO:]))
	s += fmt.Sprintf("  hdr commit word %d fuo %d\n", commitWord, fuo)
	for i := uint64(1); i < 8; i++ {
		v, st := decodeSlot(r.slotBuf(i), i, r.cfg.MaxPayloadBytes)
		s += fmt.Sprintf("  slot %d: %v prop %d hint %d len %d\n", i, st, v.proposal, v.hint, len(v.payload))
	}
	return s
}

func (r *Replica) slotInfo(i uint64) string {
	v, st := decodeSlot(r.slotBuf(i), i, r.cfg.MaxPayloadBytes)
	b := r.slotBuf(i)
	raw := fmt.Sprintf(" raw idx %d prop %d hint %d len %d", binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint32(b[24:]))
	return fmt.Sprintf("node %d slot %d: %v prop %d hint %d len %d head %x", r.self, i, st, v.proposal, v.hint, len(v.payload), v.payload[:min(len(v.payload), 22)]) + raw
}

// explainHistory replays the agreed log and reports the first acked op
// whose output or real-time order contradicts it.
func explainHistory(c *cluster, ops []*clientOp) string {
	type pos struct {
		index Index
		k     int
		val   uint64
	}
	where := map[uint64]pos{}
	data := map[uint8]uint64{}
	var idxs []Index
	for i := range c.applied {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	for _, i := range idxs {
		for k, cmd := range c.applied[i] {
			key, op := cmd[1], binary.LittleEndian.Uint64(cmd[2:])
			if cmd[0] == 1 {
				data[key] = binary.LittleEndian.Uint64(cmd[10:])
			}
			where[op] = pos{i, k, data[key]}
		}
	}
	out := ""
	for _, op := range ops {
		if !op.acked {
			if _, in := where[op.op]; in && op.returned {
				out += fmt.Sprintf("op %d answered not-leader at %d but is in the log at %d\n", op.op, op.ret, where[op.op].index)
			}
			continue
		}
		p, ok := where[op.op]
		if !ok {
			out += fmt.Sprintf("acked op %d not in log\n", op.op)
			continue
		}
		if p.index != op.index {
			out += fmt.Sprintf("op %d acked at index %d but in log at %d\n", op.op, op.index, p.index)
		}
		if !op.in.put && p.val != op.out.value {
			out += fmt.Sprintf("get op %d key %d returned %d, log replay gives %d (index %d, call %d ret %d)\n", op.op, op.in.key, op.out.value, p.val, p.index, op.call, op.ret)
		}
		if len(out) > 2000 {
			break
		}
	}
	var acked []*clientOp
	for _, op := range ops {
		if _, in := where[op.op]; in && op.acked {
			acked = append(acked, op)
		}
	}
	slices.SortFunc(acked, func(a, b *clientOp) int {
		pa, pb := where[a.op], where[b.op]
		if pa.index != pb.index {
			return int(pa.index) - int(pb.index)
		}
		return pa.k - pb.k
	})
	var maxCall int64
	var maxOp *clientOp
	for _, op := range acked {
		if maxOp != nil && op.ret < maxCall {
			out += fmt.Sprintf("real-time: op %d (log %v, call %d) is ordered before op %d (log %v, call %d ret %d) which returned before it was called\n",
				maxOp.op, where[maxOp.op], maxOp.call, op.op, where[op.op], op.call, op.ret)
			break
		}
		if op.call > maxCall {
			maxCall, maxOp = op.call, op
		}
	}
	return out
}
