package consensus

import "encoding/binary"

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
