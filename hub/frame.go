package hub

import "encoding/binary"

// TextFrame frames payload as one unmasked, final WebSocket text frame, the form a
// server sends. Frames are built once per message and written to every recipient:
// the bytes are the same for each of them.
func TextFrame(payload []byte) []byte {
	n := len(payload)
	var frame []byte
	switch {
	case n < 126:
		frame = make([]byte, 2, 2+n)
		frame[1] = byte(n)
	case n <= 0xFFFF:
		frame = make([]byte, 4, 4+n)
		frame[1] = 126
		binary.BigEndian.PutUint16(frame[2:], uint16(n))
	default:
		frame = make([]byte, 10, 10+n)
		frame[1] = 127
		binary.BigEndian.PutUint64(frame[2:], uint64(n))
	}
	frame[0] = 0x81 // FIN + text opcode
	return append(frame, payload...)
}
