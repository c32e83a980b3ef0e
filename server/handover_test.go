package server

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"chatserver/hub"
	"chatserver/internal/reuseport"
)

// TestHandoverPacesClosesAndStopsAccepting: a second server starts on the
// first one's port; the first hands over: every one of its connections is
// closed once, with 1012 and the reconnect window in the reason, in batches
// spread at the configured rate, after Settle ran for its batch; new
// connections reach the second server only.
func TestHandoverPacesClosesAndStopsAccepting(t *testing.T) {
	if !reuseport.Supported() {
		t.Skip("SO_REUSEPORT is used on Linux only")
	}
	var closes atomic.Int64
	var settled atomic.Int64
	tableA := hub.NewTable(10)
	a := start(t, Config{ReusePort: true}, tableA, Hooks{
		OnFrame: func(c *hub.Conn, _ bool, data []byte) { _ = c.Send(append([]byte(nil), data...)) },
		OnClose: func(*hub.Conn, hub.Removal) { closes.Add(1) },
	})
	const n = 60
	var clients []*websocket.Conn
	for range n {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+a.Addr()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.Close() })
		clients = append(clients, ws)
	}
	waitFor(t, "the connections in the table", func() bool { return tableA.Len() == n })

	tableB := hub.NewTable(10)
	b := New(Config{Addr: a.Addr(), ReusePort: true}, tableB, Hooks{
		OnFrame: func(c *hub.Conn, _ bool, data []byte) { _ = c.Send(append([]byte(nil), data...)) },
		OnClose: func(*hub.Conn, hub.Removal) {},
	}, zerolog.New(zerolog.NewTestWriter(t)))
	if err := b.Start(); err != nil {
		t.Fatalf("second server on %s: %v", a.Addr(), err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })

	type closed struct {
		at     time.Time
		code   int
		reason string
	}
	got := make([]closed, n)
	var wg sync.WaitGroup
	for i, ws := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						got[i] = closed{time.Now(), ce.Code, ce.Text}
					}
					return
				}
			}
		}()
	}
	const rate = 100 // n connections: 0.6 s
	res, err := a.Handover(context.Background(), Handover{
		Rate: rate, Hint: 300 * time.Millisecond, Linger: time.Second,
		Settle: func(context.Context) error { settled.Add(1); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if res.Closed != n || closes.Load() != n {
		t.Fatalf("handover closed %d, close hook ran %d times; want %d each", res.Closed, closes.Load(), n)
	}
	if settled.Load() != int64(res.Batches) || res.Batches < 3 {
		t.Fatalf("Settle ran %d times for %d batches; want once a batch, several batches", settled.Load(), res.Batches)
	}
	var times []time.Time
	for i, c := range got {
		if c.code != int(hub.CloseRestart) || c.reason != "service restart; reconnect within 300 ms" {
			t.Fatalf("client %d: close %d %q; want 1012 with the reconnect window", i, c.code, c.reason)
		}
		times = append(times, c.at)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	// Paced: the closes take at least half the time the rate gives, and the
	// first 100 ms see far from all of them (jitter bounds a batch).
	if span := times[n-1].Sub(times[0]); span < time.Duration(n)*time.Second/rate/2 {
		t.Fatalf("closes spread over %v; at %d/s, %d take %v", span, rate, n, time.Duration(n)*time.Second/rate)
	}
	early := 0
	for _, at := range times {
		if at.Sub(times[0]) < 100*time.Millisecond {
			early++
		}
	}
	if early > rate*3/10 { // a batch is at most 150 ms of the rate
		t.Fatalf("%d of %d closed within 100 ms of the first; want batches at %d/s", early, n, rate)
	}

	// New connections reach the second server only.
	for range 10 {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+a.Addr()+"/", nil)
		if err != nil {
			t.Fatalf("dial after the handover: %v", err)
		}
		_ = ws.Close()
	}
	if tableA.Len() != 0 {
		t.Fatalf("the first server took %d connections after its handover", tableA.Len())
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown after the handover: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
