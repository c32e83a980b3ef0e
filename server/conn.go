package server

import (
	"time"

	"github.com/lesismal/nbio/nbhttp/websocket"
)

// transport adapts an nbio WebSocket connection to hub.Transport. It holds only
// the pointer, so storing it in an interface costs no allocation.
type transport struct{ ws *websocket.Conn }

// WriteFrame writes an already framed message with one nbio Conn.Write, which is
// atomic per call and never blocks: what the socket does not take now is queued
// by nbio, up to MaxWriteBufferSize, past which nbio closes the connection.
// Every message the server sends is a single frame, so these writes and nbio's own
// control frames (pong, close) never interleave inside a message.
func (t transport) WriteFrame(frame []byte) error {
	_, err := t.ws.Conn.Write(frame)
	return err
}

// Close sends a close frame with code and reason (see hub.CloseCode), then
// closes the socket.
func (t transport) Close(code int, reason string) {
	_ = t.ws.WriteClose(code, reason)
	_ = t.ws.Close()
}

// CloseLinger sends the close frame at once and closes the socket when the
// client answers with its own (nbio closes on a close frame) or after linger:
// unlike Close, frames the client sent before it read ours are read and
// served, not cut off (a socket closed with unread bytes resets the
// connection, and may lose what was still queued for the client too).
func (t transport) CloseLinger(code int, reason string, linger time.Duration) {
	_ = t.ws.WriteClose(code, reason)
	ws := t.ws
	time.AfterFunc(linger, func() { _ = ws.Close() })
}

// Execute queues job on the connection's job list in nbio, the one its
// messages are handled from: job runs after the messages read before it, one
// at a time with them, on the handler pool. nbio refuses it (false) once the
// connection is closed.
func (t transport) Execute(job func()) bool { return t.ws.Execute(job) }

// RemoteAddr is the client's address.
func (t transport) RemoteAddr() string { return t.ws.RemoteAddr().String() }

// relayedTransport is a connection whose client is not its TCP peer: a
// trusted proxy named it. Only such connections pay for the address kept.
type relayedTransport struct {
	transport
	client string
}

// RemoteAddr is the client's address as the proxy gave it.
func (t *relayedTransport) RemoteAddr() string { return t.client }
