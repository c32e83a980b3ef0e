package server

import (
	"time"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"chatserver/hub"
)

// Heartbeats: every frame a client sends (text, binary, ping, pong) stamps the
// connection with the server clock; a sweeper closes the connections whose stamp
// is older than the idle timeout, and in the same pass those whose expiry (the
// end of their token, set by the handlers) has passed, with 4003. The clock counts seconds since start in a
// uint32, so the stamp costs 4 bytes per connection; nbio's own keepalive would
// arm a timer per connection and re-arm it on every frame.

// now is the server clock: whole seconds since the server was built.
func (s *Server) now() uint32 { return uint32(time.Since(s.started) / time.Second) }

// sweepEvery is how often idle connections are looked for: a tenth of the idle
// timeout, between 100 ms and 5 s, so a connection is closed at most that much
// (plus a second of clock resolution) after its timeout.
func sweepEvery(idle time.Duration) time.Duration {
	return min(max(idle/10, 100*time.Millisecond), 5*time.Second)
}

func (s *Server) sweep(stop <-chan struct{}) {
	t := time.NewTicker(sweepEvery(s.cfg.IdleTimeout))
	defer t.Stop()
	// A stamp in whole seconds may be up to a second old when taken.
	limit := uint32((s.cfg.IdleTimeout + time.Second - 1) / time.Second)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var idleBefore uint32 // 0: nothing is idle yet (the server is younger than the timeout)
		if now := s.now(); now > limit {
			idleBefore = now - limit
		}
		unix := uint32(time.Now().Unix())
		idle, expired := s.table.Sweep(idleBefore, unix)
		for _, c := range idle {
			c.Close(hub.CloseIdle)
		}
		n := 0
		for _, c := range expired {
			if c.Expired(unix) { // not renewed since the sweep saw it
				c.Close(hub.CloseExpired)
				n++
			}
		}
		if len(idle) > 0 || n > 0 {
			s.log.Debug().Int("closed", len(idle)).Int("expired", n).Msg("idle and expired connections closed")
		}
	}
}

func (s *Server) touch(ws *websocket.Conn) {
	if c, _ := ws.Session().(*hub.Conn); c != nil {
		c.Touch(s.now())
	}
}

// onPing answers a WebSocket ping with a pong carrying the same data.
func (s *Server) onPing(ws *websocket.Conn, data string) {
	s.touch(ws)
	_ = ws.WriteMessage(websocket.PongMessage, []byte(data))
}

func (s *Server) onPong(ws *websocket.Conn, _ string) { s.touch(ws) }
