package main

import (
	"bytes"
	"testing"
	"time"
)

// frameSink is a connection's write side that keeps what was written.
type frameSink struct{ bytes.Buffer }

func (*frameSink) Close() error { return nil }

// TestPingerOneInFlight: a ping goes out only when the last one was answered,
// a pong is timed against its own ping, a pong nobody waits for (init's, a
// heartbeat's) is not a sample, and a ping still open at the end counts as
// unanswered.
func TestPingerOneInFlight(t *testing.T) {
	sink := &frameSink{}
	c := &wsConn{nc: sink, w: &worker{}}
	p := newPinger([]*wsConn{c})

	p.ping(c)
	first := sink.Len()
	if want := len(appendFrame(nil, opText, []byte(`{"flag":"ping"}`))); first != want || sink.Bytes()[0] != 0x81 {
		t.Fatalf("first tick wrote %q, want one text frame of %d bytes", sink.Bytes(), want)
	}
	p.ping(c)
	if sink.Len() != first || p.sent.Load() != 1 {
		t.Fatalf("second tick with the first ping unanswered: %d bytes written, %d sent; want nothing more", sink.Len()-first, p.sent.Load())
	}
	at := c.pingAt.Load()
	p.pong(c, at+int64(7*time.Millisecond))
	p.pong(c, at+int64(900*time.Millisecond)) // nobody's ping: ignored
	if p.answered.Load() != 1 {
		t.Fatalf("answered %d, want 1", p.answered.Load())
	}
	p.ping(c) // answered, so the next one goes out and stays open
	st := p.stop()
	if st.Sent != 2 || st.Answered != 1 || st.Unanswered != 1 || c.pinger.Load() != nil {
		t.Fatalf("stat %+v, pinger still attached %v", st, c.pinger.Load() != nil)
	}
	var a pingAgg
	a.add(st)
	r := a.result(200 * time.Millisecond)
	if r.P50ms < 6.8 || r.P50ms > 7.2 || r.MaxMs != 7 || r.EveryMs != 200 {
		t.Fatalf("result %+v, want p50 and max 7 ms", r)
	}
}
