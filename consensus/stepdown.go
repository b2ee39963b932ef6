package consensus

// This file names why leadership moves: why a leader stopped leading and
// why a follower contested the node holding its log.

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

// TakeoverReason says why a replica started the leader change it won
// (LeaderChange.TookOver): what it saw of the node holding its log.
type TakeoverReason uint8

const (
	TakeoverNone TakeoverReason = iota
	// TakeoverVacant: no other node held its log (boot, or it led last).
	TakeoverVacant
	// TakeoverHolderFailed: the detector judged the holder failed.
	TakeoverHolderFailed
	// TakeoverHolderDegraded: the holder advertised itself not healthy.
	TakeoverHolderDegraded
	// TakeoverHolderSilent: the holder's heartbeat moved but its leader
	// beats stopped: it no longer leads.
	TakeoverHolderSilent
	// TakeoverTransfer: the leader handed leadership to it.
	TakeoverTransfer
	// TakeoverRegrant: it led, and led again to take back a peer's log.
	TakeoverRegrant
)

var takeoverNames = [...]string{"none", "vacant", "holder-failed", "holder-degraded", "holder-silent", "transfer", "regrant"}

func (s TakeoverReason) String() string {
	if int(s) < len(takeoverNames) {
		return takeoverNames[s]
	}
	return "unknown"
}
