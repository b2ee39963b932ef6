package consensus

import "encoding/binary"

// quorum is the smallest majority of n replicas.
func quorum(n int) int { return n/2 + 1 }

// quorumIndex returns the highest index that at least q of the given
// acknowledged positions have reached: the q-th largest value. It sorts a
// copy in scratch (len(scratch) >= len(acked)) to stay allocation free.
func quorumIndex(acked []uint64, q int, scratch []uint64) uint64 {
	if q <= 0 || q > len(acked) {
		return 0
	}
	s := scratch[:len(acked)]
	copy(s, acked)
	// Insertion sort, descending: n is at most 15.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[q-1]
}

// batchFrameBytes frames each proposal inside a slot payload.
const batchFrameBytes = 4

// forEachCommand calls fn for every framed command in a slot payload. It
// returns false if the framing is inconsistent: a frame overruns the
// payload, or 1 to 3 bytes trail the last frame. A checksum that passed
// does not rule that out (it covers what a faulty writer wrote), so the
// apply path checks the framing with noCommand before applying anything.
func forEachCommand(payload []byte, fn func(cmd []byte)) bool {
	for len(payload) > 0 {
		if len(payload) < batchFrameBytes {
			return false
		}
		n := int(binary.LittleEndian.Uint32(payload))
		payload = payload[batchFrameBytes:]
		if n > len(payload) {
			return false
		}
		fn(payload[:n])
		payload = payload[n:]
	}
	return true
}

// noCommand is the fn of a framing check that applies nothing.
func noCommand([]byte) {}
