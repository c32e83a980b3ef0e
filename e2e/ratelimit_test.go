package e2e

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/config"
)

// defaultRate puts the shipped frame rate limit back (the harness turns it
// off for the other tests' bursts).
func defaultRate(c *config.Config) {
	d := config.Default().Limits
	c.Limits.FramesPerSecond, c.Limits.FrameBurst = d.FramesPerSecond, d.FrameBurst
	c.Limits.MaxDelayedFrames, c.Limits.MaxDelayedBytes = d.MaxDelayedFrames, d.MaxDelayedBytes
}

// legacyMsg is a msg frame as the legacy clients send it: no cid.
func legacyMsg(from, to string, i int) string {
	return fmt.Sprintf(`{"flag":"msg","from":%q,"to":%q,"content":"%s-%03d"}`, from, to, from, i)
}

// receiveAll reads n frames from c, failing after timeout in all.
func receiveAll(t *testing.T, c *client, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got []string
	for len(got) < n {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(got), n, err)
		}
		s, _ := f["content"].(string)
		if s == "" {
			t.Fatalf("frame %d is %v; want a message", len(got), f)
		}
		got = append(got, s)
	}
	return got
}

// TestLegacyBurstsDelayedNotDropped: with the shipped limits (20 frames a
// second, bursts of 40), several legacy clients at once each send 200
// messages back to back to online recipients. Every message arrives, in
// order; no sender gets an error frame (the frames over the rate waited for
// their turn instead of being refused).
func TestLegacyBurstsDelayedNotDropped(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", defaultRate)
	const pairs, n = 4, 200
	type pair struct{ sender, receiver *client }
	var ps []pair
	for i := 0; i < pairs; i++ {
		s, _ := login(t, ts, fmt.Sprintf("s%d", i), "")
		r, _ := login(t, ts, fmt.Sprintf("r%d", i), "")
		ps = append(ps, pair{s, r})
	}
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				if err := p.sender.ws.WriteMessage(websocket.TextMessage, []byte(legacyMsg(fmt.Sprintf("s%d", i), fmt.Sprintf("r%d", i), j))); err != nil {
					t.Errorf("s%d: send %d: %v", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// 160 of each sender's frames wait 50 ms apart: about 8 s in all.
	for i, p := range ps {
		got := receiveAll(t, p.receiver, n, 60*time.Second)
		for j, s := range got {
			if want := fmt.Sprintf("s%d-%03d", i, j); s != want {
				t.Fatalf("r%d's message %d = %s; want %s (all, in order)", i, j, s, want)
			}
		}
	}
	for i, p := range ps {
		// The ping waits behind the sender's last frames: its pong closes the
		// list of what the sender was answered.
		p.sender.send(`{"flag":"ping"}`)
		for {
			f, err := p.sender.read(30 * time.Second)
			if err != nil {
				t.Fatalf("s%d: waiting for the pong: %v", i, err)
			}
			if f["flag"] == "pong" {
				break
			}
			t.Fatalf("s%d got %v; want no frame before its pong (legacy clients never read errors)", i, f)
		}
	}
	if d := ts.metric("chat_delayed_frames_total"); d < pairs*100 {
		t.Fatalf("chat_delayed_frames_total = %v; want at least %d (most frames over the burst waited)", d, pairs*100)
	}
	eventually(t, "no frame left waiting", func() bool {
		return ts.metric("chat_delayed_frames") == 0 && ts.metric("chat_delayed_bytes") == 0
	})
}

// flood sends frames to the server as fast as it takes them, until it has
// sent n or the connection fails, then reads until the connection ends and
// returns how it ended.
func flood(t *testing.T, c *client, from, to string, n int) error {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(legacyMsg(from, to, i))); err != nil {
			break
		}
	}
	for {
		if _, err := c.read(30 * time.Second); err != nil {
			return err
		}
	}
}

// TestFloodClosedPastDelayBound: a legacy client that sends far more than
// the rate and the bound of waiting frames (limits.max_delayed_frames, 200)
// allow is closed with 4029. What it had waiting is dropped, what went
// before arrives in order, and the server never held more than the bound for
// it (chat_delayed_frames_conn_peak); once it is closed nothing waits.
func TestFloodClosedPastDelayBound(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", defaultRate)
	bob, _ := login(t, ts, "bob", "")
	mallory, _ := login(t, ts, "mallory", "")
	err := flood(t, mallory, "mallory", "bob", 1000)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4029 {
		t.Fatalf("the flooding connection ended with %v; want close 4029", err)
	}
	if p := ts.metric("chat_delayed_frames_conn_peak"); p != 200 {
		t.Fatalf("chat_delayed_frames_conn_peak = %v; want 200 (limits.max_delayed_frames, reached and not passed)", p)
	}
	if c := ts.metric("chat_closed_too_fast_total"); c != 1 {
		t.Fatalf("chat_closed_too_fast_total = %v; want 1", c)
	}
	eventually(t, "the closed connection's frames freed", func() bool {
		return ts.metric("chat_delayed_frames") == 0 && ts.metric("chat_delayed_bytes") == 0
	})
	// bob got the frames served before the close: a prefix of what was sent, in order.
	got := bob.sync()
	if len(got) < 38 || len(got) > 240 {
		t.Fatalf("bob got %d messages; want the burst and whatever went before the close", len(got))
	}
	for i, f := range got {
		if want := fmt.Sprintf("mallory-%03d", i); f["content"] != want {
			t.Fatalf("bob's message %d = %v; want %s", i, f, want)
		}
	}
}

// TestDelayedBytesBoundAllConnections: the bytes of frames waiting on all
// connections together stay within limits.max_delayed_bytes: with a bound
// of 64 KiB, three clients each sending 200 frames of 1 KiB cannot all keep
// theirs waiting; the ones that would pass it are closed with 4029.
func TestDelayedBytesBoundAllConnections(t *testing.T) {
	t.Parallel()
	const bound = 64 << 10
	ts := startServer(t, "embedded", func(c *config.Config) {
		defaultRate(c)
		c.Limits.MaxDelayedBytes = bound
	})
	login(t, ts, "bob", "")
	big := strings.Repeat("x", 1000)
	var wg sync.WaitGroup
	ended := make([]bool, 3) // the connection ended before its pong
	for i := range ended {
		from := fmt.Sprintf("f%d", i)
		c, _ := login(t, ts, from, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				frame := fmt.Sprintf(`{"flag":"msg","from":%q,"to":"bob","content":"%s"}`, from, big)
				if c.ws.WriteMessage(websocket.TextMessage, []byte(frame)) != nil {
					break
				}
			}
			_ = c.ws.WriteMessage(websocket.TextMessage, []byte(`{"flag":"ping"}`))
			for {
				f, err := c.read(60 * time.Second)
				var ce *websocket.CloseError
				if err != nil && !errors.As(err, &ce) && strings.Contains(err.Error(), "timeout") {
					t.Errorf("%s: %v; want its pong or the connection closed", from, err)
					return
				}
				if err != nil && ce != nil && ce.Code != 4029 {
					t.Errorf("%s: closed with %d; want 4029", from, ce.Code)
				}
				if err != nil { // closed (4029; or reset while it still sent)
					ended[i] = true
					return
				}
				if f["flag"] == "pong" {
					return
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, e := range ended {
		if e {
			n++
		}
	}
	if n == 0 {
		t.Fatal("no connection was closed: 3 x 160 KiB waited under a 64 KiB bound")
	}
	if p := ts.metric("chat_delayed_bytes_peak"); p > bound || p < bound/2 {
		t.Fatalf("chat_delayed_bytes_peak = %v; want at most %d (and near it)", p, bound)
	}
	if c := ts.metric("chat_closed_too_fast_total"); int(c) != n {
		t.Fatalf("chat_closed_too_fast_total = %v; want %d", c, n)
	}
}
