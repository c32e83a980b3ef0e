package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"chatserver/hub"
)

// startEcho runs the transport with hooks that echo every text frame back
// through the hub's write path, repeated n times as asked by the frame's length.
func startEcho(t *testing.T, cfg Config) (*Server, chan *hub.Conn) {
	t.Helper()
	closed := make(chan *hub.Conn, 10)
	cfg.Addr = "127.0.0.1:0"
	s := New(cfg, hub.NewTable(10), Hooks{
		OnFrame: func(c *hub.Conn, text bool, data []byte) {
			if !text {
				_ = c.Send([]byte(`"binary"`))
				return
			}
			_ = c.Send(append([]byte(nil), data...))
		},
		OnClose: func(c *hub.Conn) { closed <- c },
	}, zerolog.New(zerolog.NewTestWriter(t)))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, closed
}

func TestFramesOfEverySizeArriveIntact(t *testing.T) {
	s, _ := startEcho(t, Config{MaxFrameBytes: 200 << 10})
	for _, path := range []string{"/", "/ws"} {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+path, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		// 7-bit, 16-bit and 64-bit payload lengths.
		for _, n := range []int{5, 125, 126, 4000, 65535, 65536, 150000} {
			msg := strings.Repeat("x", n)
			if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			mt, got, err := ws.ReadMessage()
			if err != nil || mt != websocket.TextMessage || string(got) != msg {
				t.Fatalf("%s: echo of %d bytes: type %d, %d bytes, %v", path, n, mt, len(got), err)
			}
		}
		_ = ws.Close()
	}
}

func TestPlainHTTP(t *testing.T) {
	s, _ := startEcho(t, Config{})
	res, err := http.Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "WebSocket") {
		t.Fatalf("GET / = %d %q; want 200 and a short text page", res.StatusCode, body)
	}
	res, err = http.Get("http://" + s.Addr() + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("GET /nope = %d; want 404", res.StatusCode)
	}
}

func TestCloseHookRunsOncePerConnection(t *testing.T) {
	s, closed := startEcho(t, Config{})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose not called after the client closed")
	}
	select {
	case c := <-closed:
		t.Fatalf("OnClose called twice (%s)", s.table.ConnID(c))
	case <-time.After(200 * time.Millisecond):
	}
}
