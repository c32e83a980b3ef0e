package handlers

import (
	"sync"
	"sync/atomic"

	"chatserver/hub"
	"chatserver/metrics"
)

// delayedFrame is a frame that came over the rate limit and waits for its turn.
type delayedFrame struct {
	data []byte // a copy: nbio reuses the buffer the frame was read into
	due  int64  // when its slot comes, on the rate clock (ns)
	text bool
}

// delayedQueue is one connection's frames waiting for the rate limit, oldest
// first. Only the connection's handler flow touches it (Handle, the release
// job and Closed all run there, one at a time), so it has no lock of its own.
type delayedQueue struct {
	frames []delayedFrame
	bytes  int
	armed  bool // a wakeup is set for the head
	closed bool // closed past the bound: whatever the connection sent after is dropped
}

// delayedFrames holds the queues of the connections with frames waiting, and
// bounds them: at most maxFrames per connection, at most maxBytes of frames
// for all connections together. Memory for waiting frames is therefore at
// most maxBytes, and per connection at most maxFrames frames of at most
// server.max_frame_bytes each.
type delayedFrames struct {
	maxFrames int
	maxBytes  int64
	metrics   *metrics.Metrics

	bytes    atomic.Int64 // waiting, all connections
	peak     atomic.Int64 // the most bytes waiting at once
	connPeak atomic.Int64 // the most frames one connection had waiting at once
	n        atomic.Int64 // connections with a queue: 0 skips the lookup
	shards   [16]delayedShard
}

type delayedShard struct {
	mu sync.Mutex
	m  map[*hub.Conn]*delayedQueue
}

func (d *delayedFrames) shard(c *hub.Conn) *delayedShard {
	return &d.shards[c.Seq()%uint64(len(d.shards))]
}

// get returns c's queue, or nil when nothing of c waits.
func (d *delayedFrames) get(c *hub.Conn) *delayedQueue {
	if d.n.Load() == 0 {
		return nil
	}
	s := d.shard(c)
	s.mu.Lock()
	q := s.m[c]
	s.mu.Unlock()
	return q
}

// create gives c an empty queue.
func (d *delayedFrames) create(c *hub.Conn) *delayedQueue {
	q := &delayedQueue{}
	s := d.shard(c)
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*hub.Conn]*delayedQueue{}
	}
	s.m[c] = q
	s.mu.Unlock()
	d.n.Add(1)
	return q
}

// remove forgets c's queue and returns it (nil if it had none); its frames no
// longer count against the bounds.
func (d *delayedFrames) remove(c *hub.Conn) *delayedQueue {
	if d.n.Load() == 0 {
		return nil
	}
	s := d.shard(c)
	s.mu.Lock()
	q := s.m[c]
	if q != nil {
		delete(s.m, c)
	}
	s.mu.Unlock()
	if q == nil {
		return nil
	}
	d.n.Add(-1)
	d.release(q)
	return q
}

// push adds f at the end of q, unless that would pass a bound: then it adds
// nothing and returns false.
func (d *delayedFrames) push(q *delayedQueue, f delayedFrame) bool {
	if len(q.frames) >= d.maxFrames {
		return false
	}
	size := int64(len(f.data))
	total := d.bytes.Add(size)
	if total > d.maxBytes {
		d.bytes.Add(-size)
		return false
	}
	q.frames = append(q.frames, f)
	q.bytes += len(f.data)
	d.metrics.Delayed(1, len(f.data))
	d.metrics.DelayedPeaks(raise(&d.connPeak, int64(len(q.frames))), raise(&d.peak, total))
	return true
}

// pop takes q's head if its turn comes by now.
func (d *delayedFrames) pop(q *delayedQueue, now int64) (delayedFrame, bool) {
	if len(q.frames) == 0 || q.frames[0].due > now {
		return delayedFrame{}, false
	}
	f := q.frames[0]
	q.frames[0] = delayedFrame{}
	q.frames = q.frames[1:]
	q.bytes -= len(f.data)
	d.bytes.Add(-int64(len(f.data)))
	d.metrics.Delayed(-1, -len(f.data))
	return f, true
}

// release stops counting q's frames against the bounds (q is gone, or its
// frames are about to be served or dropped at once); q keeps them.
func (d *delayedFrames) release(q *delayedQueue) {
	if len(q.frames) == 0 {
		return
	}
	d.bytes.Add(-int64(q.bytes))
	d.metrics.Delayed(-len(q.frames), -q.bytes)
	q.bytes = 0
}

// drop empties q and marks it closed: the connection's later frames are
// dropped too, until Closed removes q.
func (d *delayedFrames) drop(q *delayedQueue) {
	d.release(q)
	q.frames, q.closed = nil, true
}

// raise sets v to n if n is more, and returns n then (0 otherwise).
func raise(v *atomic.Int64, n int64) int64 {
	for {
		old := v.Load()
		if n <= old {
			return 0
		}
		if v.CompareAndSwap(old, n) {
			return n
		}
	}
}
