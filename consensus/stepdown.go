package consensus

// StepDownReason says why a leader stopped leading (LeaderChange.Reason),
// so an operator reading a log of leader changes can tell a deposed
// leader from one whose writes stopped reaching a majority.
type StepDownReason uint8

const (
	StepDownNone StepDownReason = iota
	// StepDownDeposed: a candidate with a higher proposal prepared on a
	// follower this leader writes to.
	StepDownDeposed
	// StepDownNoQuorum: its writes reached no majority for the stall bound.
	StepDownNoQuorum
	// StepDownLogTaken: this replica granted another node write access to
	// its own log (a takeover or a handover it was asked for).
	StepDownLogTaken
	// StepDownRegrant: a live peer refuses its writes; it runs a whole
	// leader change again to take that peer's log back safely.
	StepDownRegrant
	// StepDownFenced: the hardware arbiter or an unkept promise fenced it.
	StepDownFenced
	// StepDownRemoved: a membership change removing it came into force.
	StepDownRemoved
	// StepDownHandover: degraded by the arbiter, it left for a healthy peer.
	StepDownHandover
	// StepDownUnable: it fell behind, lost its log or is rejoining.
	StepDownUnable
)

var stepDownNames = [...]string{"none", "deposed", "no-quorum", "log-taken", "regrant", "fenced", "removed", "handover", "unable"}

func (s StepDownReason) String() string {
	if int(s) < len(stepDownNames) {
		return stepDownNames[s]
	}
	return "unknown"
}
