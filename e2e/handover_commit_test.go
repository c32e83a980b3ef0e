package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/gorilla/websocket"

	"chatserver/internal/faultproxy"
	"chatserver/internal/servicetest"
)

// TestHandoverReceiverFindsWhatItLeft: a receiver that acknowledges what it
// gets has messages pushed to it and not acknowledged when the old process
// hands over. The old process stores them again; the receiver reconnects at
// once (not within the window the close gives) and inits on the new process.
//
//   - The old process's MariaDB answers slowly (every chunk 150 ms late, each
//     way): the rows are committed before the close frame goes out, so the
//     receiver's first init on the new process brings them, before the pong
//     to the ping it sent right after the init.
//   - The old process's MariaDB is cut during the handover: the rows wait in
//     its spool when the close goes out, and the first init on the new
//     process finds nothing. Once the database is back, the old process moves
//     its spool and ends, and the new process reads again what it stored for
//     the connections it now has: the receiver gets them without another init.
func TestHandoverReceiverFindsWhatItLeft(t *testing.T) {
	t.Parallel()
	bin := buildServer(t)
	t.Run("committed before the close", func(t *testing.T) {
		t.Parallel()
		handoverLeftRun(t, bin, faultproxy.Delay, 150*time.Millisecond, true)
	})
	t.Run("moved from the spool at the end", func(t *testing.T) {
		t.Parallel()
		handoverLeftRun(t, bin, faultproxy.Cut, 0, false)
	})
}

func handoverLeftRun(t *testing.T, bin string, fault faultproxy.Mode, delay time.Duration, inFirstInit bool) {
	dsn := servicetest.MySQLDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	viaProxy := *cfg
	viaProxy.Addr = proxy.Addr()

	_, prefix := servicetest.Redis(t)
	addr := freeLoopbackAddr(t)
	env := []string{
		"CHAT_SERVER_ADDR=" + addr, "CHAT_API_ADDR=" + freeLoopbackAddr(t),
		"CHAT_API_SECRET=" + testAPISecret, "CHAT_LIMITS_FRAMES_PER_SECOND=0", "CHAT_LOG_LEVEL=info",
		"CHAT_SERVER_HANDOVER_RATE=100", "CHAT_SERVER_SHUTDOWN_TIMEOUT=30s",
		"CHAT_NODE=handover-" + servicetest.Unique(),
		"CHAT_REDIS_ADDR=" + servicetest.RedisAddr(t), "CHAT_REDIS_KEY_PREFIX=" + prefix,
	}
	oldEnv := append(append([]string(nil), env...), "CHAT_MYSQL_DSN="+viaProxy.FormatDSN(),
		"CHAT_OFFLINE_SPOOL_PATH="+filepath.Join(t.TempDir(), "old-spool.db"))
	newEnv := append(append([]string(nil), env...), "CHAT_MYSQL_DSN="+dsn,
		"CHAT_OFFLINE_SPOOL_PATH="+filepath.Join(t.TempDir(), "new-spool.db"))
	url := "ws://" + addr + "/"

	a := startProc(t, bin, oldEnv, addr)
	waitLog(t, a, "chat server listening")
	bob := dialInit(t, url, map[string]any{"flag": "init", "from": "bob", "ack": true})
	defer bob.Close()
	readUntilPong(t, bob)
	alice := dialInit(t, url, map[string]any{"flag": "init", "from": "alice"})
	defer alice.Close()
	readUntilPong(t, alice)

	const n = 5
	for i := range n {
		writeJSON(t, alice, map[string]any{"flag": "msg", "from": "alice", "to": "bob", "content": strconv.Itoa(i), "cid": strconv.Itoa(i)})
	}
	for got := 0; got < n; {
		f := readFrame(t, alice)
		if f["flag"] == "ack" {
			if f["status"] != "pushed" {
				t.Fatalf("alice got %v; want pushed (bob is connected)", f)
			}
			got++
		}
	}
	for got := 0; got < n; { // bob reads them and does not acknowledge them
		if f := readFrame(t, bob); f["content"] != nil {
			got++
		}
	}

	b := startProc(t, bin, newEnv, addr)
	waitLog(t, b, "chat server listening")
	proxy.Set(fault, delay)
	if err := a.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// bob is closed with 1012 and comes back at once, to the new process
	// (the old one no longer accepts).
	for {
		_, _, err := bobRead(bob)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != 1012 {
				t.Fatalf("bob was closed with %d %q; want 1012", ce.Code, ce.Text)
			}
			break
		}
		if err != nil {
			t.Fatalf("bob's connection ended without a close frame: %v", err)
		}
	}
	bob2 := dialInit(t, url, map[string]any{"flag": "init", "from": "bob", "ack": true})
	defer bob2.Close()
	got := map[string]bool{}
	for {
		f := readFrame(t, bob2)
		if f["flag"] == "pong" {
			break
		}
		if c, ok := f["content"].(string); ok {
			got[c] = true
			writeJSON(t, bob2, map[string]any{"flag": "ack", "id": f["id"]})
		}
	}
	if inFirstInit {
		if len(got) != n {
			t.Fatalf("bob's first init on the new process brought %d of the %d messages the old one stored again; want all: they are committed before the close", len(got), n)
		}
	} else {
		if len(got) != 0 {
			t.Fatalf("bob's first init brought %v with the old process's database cut: the case this run is for did not happen", got)
		}
		time.Sleep(time.Second)
		proxy.Set(faultproxy.Pass, 0)
		deadline := time.Now().Add(30 * time.Second)
		for len(got) < n {
			_ = bob2.SetReadDeadline(deadline)
			_, data, err := bob2.ReadMessage()
			if err != nil {
				t.Fatalf("bob got %d of %d messages after the old process's database came back (%v); old process log:\n%s\nnew process log:\n%s", len(got), n, err, a.tail(), b.tail())
			}
			var f map[string]any
			if json.Unmarshal(data, &f) == nil {
				if c, ok := f["content"].(string); ok {
					got[c] = true
					writeJSON(t, bob2, map[string]any{"flag": "ack", "id": f["id"]})
				}
			}
		}
	}
	for i := range n {
		if !got[strconv.Itoa(i)] {
			t.Fatalf("bob never got message %d; got %v", i, got)
		}
	}
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }()
	select {
	case err := <-exited:
		a.cmd = nil
		if err != nil {
			t.Fatalf("the old process exited with %v; log:\n%s", err, a.tail())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("the old process still runs 40 s after SIGUSR2; log:\n%s", a.tail())
	}
}

func dialInit(t *testing.T, url string, init map[string]any) *websocket.Conn {
	t.Helper()
	var ws *websocket.Conn
	var err error
	for range 50 { // the new process may still be taking over the port
		if ws, _, err = websocket.DefaultDialer.Dial(url, nil); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	writeJSON(t, ws, init)
	writeJSON(t, ws, map[string]any{"flag": "ping"})
	return ws
}

func writeJSON(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("write %s: %v", b, err)
	}
}

func readFrame(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %q: %v", data, err)
	}
	return f
}

func readUntilPong(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	for readFrame(t, ws)["flag"] != "pong" {
	}
}

func bobRead(ws *websocket.Conn) (int, []byte, error) {
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	typ, data, err := ws.ReadMessage()
	if err == nil && typ != websocket.TextMessage {
		err = fmt.Errorf("frame type %d", typ)
	}
	return typ, data, err
}
