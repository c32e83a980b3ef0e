package handlers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"chatserver/hub"
)

// onFlow hands c a frame on its handler flow, as nbio does: the release jobs
// of its waiting frames run on that flow too, never at the same time.
func onFlow(fx *fixture, c *hub.Conn, fc *fakeConn, frame string) {
	fc.flow.Lock()
	defer fc.flow.Unlock()
	fx.h.Handle(c, true, []byte(frame))
}

// rateFixture is a fixture whose release timer stops with the test (a
// wakeup after the test would log into a finished test).
func rateFixture(t *testing.T, cfg Config) *fixture {
	fx := newFixtureWith(t, cfg)
	t.Cleanup(func() {
		w := &fx.h.wake
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.timer != nil {
			w.timer.Stop()
		}
		w.queue = nil
		w.fire = func(*hub.Conn) {}
	})
	return fx
}

func numbered(from, to string, i int) string {
	return fmt.Sprintf(`{"flag":"msg","from":%q,"to":%q,"content":"m%03d"}`, from, to, i)
}

// collect reads bob's frames until n arrived, failing after 10 s.
func collect(t *testing.T, fc *fakeConn, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d frames of %d: %v", len(got), n, got)
		}
		got = append(got, fc.payloads(t)...)
		time.Sleep(5 * time.Millisecond)
	}
	return got
}

// TestRateDelaysFramesInOrder: frames over the rate wait for their turn and
// are served in the order they came, none lost and no error sent; a frame
// with a cid over the rate is refused at once with rate_limited and its cid.
func TestRateDelaysFramesInOrder(t *testing.T) {
	fx := rateFixture(t, Config{FramesPerSecond: 100, FrameBurst: 5, MaxDelayedFrames: 100})
	alice, ac := fx.conn("alice")
	bob, bc := fx.conn("bob")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	ac.payloads(t)
	const n = 30 // 26 over the burst left after init: about 260 ms of waiting
	for i := 0; i < n; i++ {
		onFlow(fx, alice, ac, numbered("alice", "bob", i))
	}
	onFlow(fx, alice, ac, `{"flag":"msg","from":"alice","to":"bob","content":"with cid","cid":"c1"}`)
	if got := ac.payloads(t); len(got) != 1 || got[0]["code"] != CodeRateLimited || got[0]["cid"] != "c1" {
		t.Fatalf("alice got %v; want one rate_limited error carrying cid c1", got)
	}
	got := collect(t, bc, n)
	if len(got) != n {
		t.Fatalf("bob got %d frames; want %d", len(got), n)
	}
	for i, f := range got {
		if want := fmt.Sprintf("m%03d", i); f["content"] != want {
			t.Fatalf("bob's frame %d = %v; want content %s (in order)", i, f, want)
		}
	}
	if got := ac.payloads(t); len(got) != 0 {
		t.Fatalf("alice got %v; want nothing (legacy frames get no error when they wait)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fx.h.delayed.n.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if q, b := fx.h.delayed.n.Load(), fx.h.delayed.bytes.Load(); q != 0 || b != 0 {
		t.Fatalf("after the release: %d queues, %d bytes waiting; want none", q, b)
	}
}

// TestRateBoundClosesConnection: the frame that would pass
// max_delayed_frames closes the connection with 4029; its waiting frames and
// what it sends after are dropped, not served at close.
func TestRateBoundClosesConnection(t *testing.T) {
	fx := rateFixture(t, Config{FramesPerSecond: 1, FrameBurst: 1, MaxDelayedFrames: 3})
	alice, ac := fx.conn("alice")
	bob, bc := fx.conn("bob")
	fx.send(alice, `{"flag":"init","from":"alice"}`) // the burst
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	for i := 0; i < 10; i++ {
		onFlow(fx, alice, ac, numbered("alice", "bob", i))
	}
	ac.mu.Lock()
	closed := ac.closed
	ac.mu.Unlock()
	if closed != int(hub.CloseTooFast) {
		t.Fatalf("alice closed with %d; want %d (%s)", closed, hub.CloseTooFast, hub.CloseTooFast.Reason())
	}
	if b, p := fx.h.delayed.bytes.Load(), fx.h.delayed.connPeak.Load(); b != 0 || p != 3 {
		t.Fatalf("after the close: %d bytes waiting, peak %d frames; want 0 and 3 (the bound)", b, p)
	}
	ac.flow.Lock()
	fx.h.Closed(alice, fx.table.Remove(alice))
	ac.flow.Unlock()
	if got := bc.payloads(t); len(got) != 0 {
		t.Fatalf("bob got %v from a connection closed for flooding; want nothing", got)
	}
	if fx.h.delayed.n.Load() != 0 {
		t.Fatal("the closed connection's queue is still kept")
	}
}

// TestRateServesWaitingMessagesAtClose: a client that sends a burst and
// disconnects loses none of it: what waited for the rate is served at close.
func TestRateServesWaitingMessagesAtClose(t *testing.T) {
	fx := rateFixture(t, Config{FramesPerSecond: 1, FrameBurst: 1, MaxDelayedFrames: 10})
	alice, ac := fx.conn("alice")
	bob, bc := fx.conn("bob")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	for i := 0; i < 3; i++ {
		onFlow(fx, alice, ac, numbered("alice", "bob", i))
	}
	if got := bc.payloads(t); len(got) != 0 {
		t.Fatalf("bob got %v before alice's turn came", got)
	}
	ac.flow.Lock()
	fx.h.Closed(alice, fx.table.Remove(alice))
	ac.flow.Unlock()
	var got []string
	for _, f := range bc.payloads(t) {
		got = append(got, fmt.Sprint(f["content"]))
	}
	if strings.Join(got, ",") != "m000,m001,m002" {
		t.Fatalf("bob got %v at alice's close; want m000,m001,m002", got)
	}
	if fx.h.delayed.n.Load() != 0 || fx.h.delayed.bytes.Load() != 0 {
		t.Fatal("the closed connection's frames still count")
	}
}

// TestRateTotalBytesBound: the frames waiting on all connections together
// stay within max_delayed_bytes; the connection whose frame would pass it is
// closed, the others keep theirs.
func TestRateTotalBytesBound(t *testing.T) {
	frame := func(from string, i int) string { // 100 bytes
		f := numbered(from, "bob", i)
		return strings.Replace(f, `"m`, `"`+strings.Repeat("x", 100-len(f))+`m`, 1)
	}
	if l := len(frame("a1", 0)); l != 100 {
		t.Fatalf("frame is %d bytes; the test wants 100", l)
	}
	fx := rateFixture(t, Config{FramesPerSecond: 1, FrameBurst: 1, MaxDelayedFrames: 100, MaxDelayedBytes: 1000})
	fx.conn("bob")
	var fakes []*fakeConn
	for _, a := range []string{"a1", "a2", "a3"} {
		c, fc := fx.conn(a)
		fx.send(c, `{"flag":"init","from":"`+a+`"}`)
		for i := 0; i < 5; i++ {
			onFlow(fx, c, fc, frame(a, i))
		}
		fakes = append(fakes, fc)
	}
	for i, want := range []int{0, 0, int(hub.CloseTooFast)} {
		fakes[i].mu.Lock()
		got := fakes[i].closed
		fakes[i].mu.Unlock()
		if got != want {
			t.Errorf("a%d closed with %d; want %d", i+1, got, want)
		}
	}
	if p := fx.h.delayed.peak.Load(); p != 1000 {
		t.Fatalf("peak of waiting bytes = %d; want 1000 (the bound, reached)", p)
	}
}

// TestRateRefusesWithoutDelay: with max_delayed_frames 0 nothing waits: a
// frame over the rate is refused with rate_limited, as before delays existed.
func TestRateRefusesWithoutDelay(t *testing.T) {
	fx := rateFixture(t, Config{FramesPerSecond: 1, FrameBurst: 1})
	alice, ac := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	onFlow(fx, alice, ac, `{"flag":"ping"}`)
	if got := ac.payloads(t); len(got) != 1 || got[0]["code"] != CodeRateLimited {
		t.Fatalf("a frame over the rate got %v; want rate_limited", got)
	}
	if fx.h.delayed.n.Load() != 0 {
		t.Fatal("a frame waits although max_delayed_frames is 0")
	}
}

// TestRateDisconnectDropsWaiting: an account the site disconnects (4004) does
// not have its frames still waiting for the rate limit served at the close.
func TestRateDisconnectDropsWaiting(t *testing.T) {
	fx := rateFixture(t, Config{FramesPerSecond: 1, FrameBurst: 1, MaxDelayedFrames: 10})
	alice, ac := fx.conn("alice")
	bob, bc := fx.conn("bob")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	for i := 0; i < 3; i++ {
		onFlow(fx, alice, ac, numbered("alice", "bob", i))
	}
	if _, err := fx.h.Disconnect("alice", ""); err != nil {
		t.Fatal(err)
	}
	ac.flow.Lock()
	fx.h.Closed(alice, fx.table.Remove(alice))
	ac.flow.Unlock()
	if got := bc.payloads(t); len(got) != 0 {
		t.Fatalf("bob got %v from an account the site cut off; want nothing", got)
	}
	if fx.h.delayed.n.Load() != 0 || fx.h.delayed.bytes.Load() != 0 {
		t.Fatal("the disconnected connection's frames still count")
	}
}
