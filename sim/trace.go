package sim

import (
	"strconv"

	"github.com/rdmaconsensus/mu/rdma"
)

// Trace returns the event log recorded so far (Config.Trace). Two runs of
// the same seed and calls produce byte-identical traces.
func (w *World) Trace() []byte { return w.trace }

// SetTracing turns the event log on or off from now on.
func (w *World) SetTracing(on bool) { w.tracing = on }

// Tracef appends a free-form line to the trace (for test events), stamped
// with the virtual time. It costs nothing when tracing is off.
func (w *World) Tracef(msg string) {
	if !w.tracing {
		return
	}
	w.trace = strconv.AppendInt(w.trace, w.now, 10)
	w.trace = append(w.trace, ' ')
	w.trace = append(w.trace, msg...)
	w.trace = append(w.trace, '\n')
}

func (w *World) traceHead(kind string) {
	w.trace = strconv.AppendInt(w.trace, w.now, 10)
	w.trace = append(w.trace, ' ')
	w.trace = append(w.trace, kind...)
}

func (w *World) traceNode(kind string, n *Node) {
	w.traceHead(kind)
	w.trace = append(w.trace, " n"...)
	w.trace = strconv.AppendUint(w.trace, uint64(n.id), 10)
	w.trace = append(w.trace, '\n')
}

func (w *World) traceFault(kind string, a, b rdma.NodeID, arg int64) {
	w.traceHead(kind)
	w.trace = append(w.trace, " n"...)
	w.trace = strconv.AppendUint(w.trace, uint64(a), 10)
	w.trace = append(w.trace, " n"...)
	w.trace = strconv.AppendUint(w.trace, uint64(b), 10)
	w.trace = append(w.trace, ' ')
	w.trace = strconv.AppendInt(w.trace, arg, 10)
	w.trace = append(w.trace, '\n')
}

func (w *World) traceConn(kind string, e *connEnd) {
	w.traceHead(kind)
	w.trace = append(w.trace, " n"...)
	w.trace = strconv.AppendUint(w.trace, uint64(e.node.id), 10)
	w.trace = append(w.trace, "->n"...)
	w.trace = strconv.AppendUint(w.trace, uint64(e.peer.id), 10)
	w.trace = append(w.trace, " p"...)
	w.trace = strconv.AppendUint(w.trace, uint64(e.plane), 10)
}

func (w *World) traceEnd(kind string, e *connEnd, arg uint64) {
	w.traceConn(kind, e)
	w.trace = append(w.trace, ' ')
	w.trace = strconv.AppendUint(w.trace, arg, 10)
	w.trace = append(w.trace, '\n')
}

func (w *World) traceOp(kind string, e *connEnd, wr *rdma.WorkRequest, st rdma.Status) {
	w.traceConn(kind, e)
	w.trace = append(w.trace, ' ')
	w.trace = append(w.trace, wr.Op.String()...)
	w.trace = append(w.trace, " id="...)
	w.trace = strconv.AppendUint(w.trace, wr.ID, 16)
	w.trace = append(w.trace, " r="...)
	w.trace = strconv.AppendUint(w.trace, wr.RemoteOffset, 10)
	w.trace = append(w.trace, " n="...)
	w.trace = strconv.AppendUint(w.trace, uint64(wr.Length), 10)
	w.trace = append(w.trace, " st="...)
	w.trace = strconv.AppendUint(w.trace, uint64(st), 10)
	w.trace = append(w.trace, '\n')
}

// TraceTail returns the last lines of the trace, for failure messages.
func (w *World) TraceTail(lines int) string {
	t := w.trace
	i := len(t)
	for i > 0 && lines >= 0 {
		i--
		if t[i] == '\n' {
			lines--
		}
	}
	if i > 0 {
		i++
	}
	return string(t[i:])
}
