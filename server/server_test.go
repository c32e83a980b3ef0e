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
	s := start(t, cfg, hub.NewTable(10), Hooks{
		OnFrame: func(c *hub.Conn, text bool, data []byte) {
			if !text {
				_ = c.Send([]byte(`"binary"`))
				return
			}
			_ = c.Send(append([]byte(nil), data...))
		},
		OnClose: func(c *hub.Conn, _ hub.Removal) { closed <- c },
	})
	return s, closed
}

// start runs the transport on a free loopback port until the test ends.
func start(t *testing.T, cfg Config, table *hub.Table, hooks Hooks) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s := New(cfg, table, hooks, zerolog.New(zerolog.NewTestWriter(t)))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
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

// The transport puts a connection in the table when it opens and takes it off
// when it closes, before OnClose runs, which hears what the removal did: the
// account it spoke for, and that it was the account's last connection here.
func TestCloseTakesTheConnectionOffTheTableBeforeTheHook(t *testing.T) {
	type closing struct {
		r      hub.Removal
		len    int
		online bool
	}
	table := hub.NewTable(10)
	closed := make(chan closing, 2)
	s := start(t, Config{}, table, Hooks{
		OnFrame: func(c *hub.Conn, _ bool, data []byte) {
			seq, _, _, err := table.Bind(c, string(data), "", 0)
			if err == nil {
				table.GoLive(c, seq)
			}
			_ = c.Send([]byte(`"bound"`))
		},
		OnClose: func(c *hub.Conn, r hub.Removal) {
			closed <- closing{r: r, len: table.Len(), online: table.Online(r.Account)}
		},
	})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("alice")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if table.Len() != 1 || !table.Online("alice") {
		t.Fatalf("open connection: table holds %d, alice online %v; want 1, true", table.Len(), table.Online("alice"))
	}
	_ = ws.Close()
	select {
	case got := <-closed:
		if got.r.Account != "alice" || !got.r.Last || got.len != 0 || got.online {
			t.Fatalf("OnClose heard %+v with %d connections in the table, alice online %v; want alice, last, 0, false",
				got.r, got.len, got.online)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose not called after the client closed")
	}
}
