package consensus

import "fmt"

func (r *Replica) debugString() string {
	s := fmt.Sprintf("node %d role %v commit %d applied %d next %d epoch %d health %v rejoin %v behind %v snapBusy %v stats %+v\n", r.self, r.role, r.commit, r.applied, r.next, r.el.epoch, r.health, r.rejoining, r.behind, r.snapBusy, r.stats)
	for _, p := range r.peers {
		s += fmt.Sprintf("  peer %d state %d acked %d sent %d applied %d granted %v gen %d revoked %d conn %v\n", p.id, p.state, p.acked, p.sent, p.applied, r.perms.GrantedBy(p.id, r.el.epoch), p.gen, p.revokedEpoch, p.conn.State())
	}
	s += fmt.Sprintf("  hdr commit word %d fuo %d\n", le.Uint64(r.region[hdrCommit:]), le.Uint64(r.region[hdrFUO:]))
	for i := uint64(1); i < 8; i++ {
		v, st := decodeSlot(r.slotBuf(i), i, r.cfg.MaxPayloadBytes)
		s += fmt.Sprintf("  slot %d: %v prop %d hint %d len %d\n", i, st, v.proposal, v.hint, len(v.payload))
	}
	return s
}

func (r *Replica) slotInfo(i uint64) string {
	v, st := decodeSlot(r.slotBuf(i), i, r.cfg.MaxPayloadBytes)
	return fmt.Sprintf("node %d slot %d: %v prop %d hint %d len %d head %x", r.self, i, st, v.proposal, v.hint, len(v.payload), v.payload[:min(len(v.payload), 22)])
}
