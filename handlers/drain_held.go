package handlers

import (
	"sync"
	"sync/atomic"

	"chatserver/hub"
)

// While an init's drain runs (on a goroutine of its own, see drain.go), the
// connection's later frames wait behind it, as they would if the drain ran on
// the connection's handler flow: a client may take the pong of a ping sent after
// init to mean "my backlog is out" (the web client does), and a msg sent after
// init is handled after it. Only receiver acks go through at once: the drain waits for
// them. Waiting frames cost memory, not a goroutine: a handler flow blocked on a
// slow database would take a goroutine of the shared pool, and enough of them
// stop every connection's pings.

// maxHeldBytes bounds what one connection may have waiting behind its drain;
// past it frames are refused with busy.
const maxHeldBytes = 256 << 10

// heldFrames are the frames of connections whose drain is running.
type heldFrames struct {
	n      atomic.Int64 // connections with an entry: 0 skips the lookup
	shards [16]heldShard
}

type heldShard struct {
	mu sync.Mutex
	m  map[*hub.Conn]*held
}

// held is one connection's frames waiting behind its drain.
type held struct {
	frames   [][]byte
	bytes    int
	draining bool // a drain runs; false: the frames are being served
}

func (hf *heldFrames) shard(c *hub.Conn) *heldShard {
	return &hf.shards[c.Seq()%uint64(len(hf.shards))]
}

// start marks c as draining: its frames wait from now on.
func (hf *heldFrames) start(c *hub.Conn) {
	s := hf.shard(c)
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*hub.Conn]*held{}
	}
	e := s.m[c]
	if e == nil {
		e = &held{}
		s.m[c] = e
		hf.n.Add(1)
	}
	e.draining = true
	s.mu.Unlock()
}

// hold keeps a copy of data if c's frames must wait. ok is false when c's
// frames need not wait; full when too much waits already (the frame is
// refused).
func (hf *heldFrames) hold(c *hub.Conn, data []byte) (ok, full bool) {
	if hf.n.Load() == 0 {
		return false, false
	}
	s := hf.shard(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[c]
	if e == nil {
		return false, false
	}
	if e.bytes+len(data) > maxHeldBytes {
		return true, true
	}
	e.frames = append(e.frames, append([]byte(nil), data...))
	e.bytes += len(data)
	return true, false
}

// next returns c's next waiting frame once its drain is over; ok false means
// none is left (and c's frames no longer wait) or a new drain started.
func (hf *heldFrames) next(c *hub.Conn, drainOver bool) ([]byte, bool) {
	s := hf.shard(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[c]
	if e == nil {
		return nil, false
	}
	if drainOver {
		e.draining = false
	}
	if e.draining {
		return nil, false
	}
	if len(e.frames) == 0 {
		delete(s.m, c)
		hf.n.Add(-1)
		return nil, false
	}
	f := e.frames[0]
	e.frames[0] = nil
	e.frames = e.frames[1:]
	e.bytes -= len(f)
	return f, true
}

// drop forgets c's waiting frames (c closed).
func (hf *heldFrames) drop(c *hub.Conn) {
	s := hf.shard(c)
	s.mu.Lock()
	if _, ok := s.m[c]; ok {
		delete(s.m, c)
		hf.n.Add(-1)
	}
	s.mu.Unlock()
}
