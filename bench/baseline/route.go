package main

import (
	"encoding/json"

	"github.com/lesismal/nbio/nbhttp/websocket"
)

func (s *Server) open(c *websocket.Conn) {
	s.mu.Lock()
	s.conns[c] = ""
	s.mu.Unlock()
}

func (s *Server) close(c *websocket.Conn, _ error) {
	s.mu.Lock()
	s.unbindLocked(c)
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) unbindLocked(c *websocket.Conn) {
	if a := s.conns[c]; a != "" {
		delete(s.acct[a], c)
		if len(s.acct[a]) == 0 {
			delete(s.acct, a)
		}
	}
}

func (s *Server) message(c *websocket.Conn, mt websocket.MessageType, data []byte) {
	var f frame
	if mt != websocket.TextMessage || json.Unmarshal(data, &f) != nil {
		return
	}
	switch f.Flag {
	case "init":
		s.bind(c, f.From) // no storage: nothing is pending
	case "msg":
		b, _ := json.Marshal(message{From: f.From, Content: f.Content})
		s.mu.RLock()
		for d := range s.acct[f.To] { // absent account: dropped
			_ = d.WriteMessage(websocket.TextMessage, b)
		}
		s.mu.RUnlock()
	case "all":
		b, _ := json.Marshal(struct {
			message
			Flag string `json:"flag"`
		}{message{From: f.From, Content: f.Content}, "all"})
		s.broadcast(textFrame(b))
	case "ping":
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"flag":"pong"}`))
	}
}

func (s *Server) bind(c *websocket.Conn, account string) {
	if account == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return // already closed
	}
	s.unbindLocked(c)
	s.conns[c] = account
	if s.acct[account] == nil {
		s.acct[account] = make(map[*websocket.Conn]struct{})
	}
	s.acct[account][c] = struct{}{}
}

// broadcast writes one pre-encoded frame to every connection. Writes are
// non-blocking (nbio queues the unsent tail), so holding the read lock is
// cheap; a single frame per Write keeps it atomic per connection.
func (s *Server) broadcast(fr []byte) {
	s.mu.RLock()
	for c := range s.conns {
		_, _ = c.Conn.Write(fr)
	}
	s.mu.RUnlock()
}

// textFrame encodes an unmasked, final text frame (server frames are the
// same bytes for every recipient).
func textFrame(p []byte) []byte {
	n := len(p)
	var h []byte
	switch {
	case n < 126:
		h = []byte{0x81, byte(n)}
	case n < 1<<16:
		h = []byte{0x81, 126, byte(n >> 8), byte(n)}
	default:
		h = []byte{0x81, 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return append(h, p...)
}
