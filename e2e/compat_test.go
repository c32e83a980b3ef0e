package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/config"
	"chatserver/internal/servicetest"
)

// startCompat runs the real server from a configuration file that says
// compat: legacy, loaded as main loads it, with env over it.
func startCompat(t *testing.T, env map[string]string) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chat.yaml")
	if err := os.WriteFile(path, []byte("compat: legacy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"CHAT_SERVER_ADDR": "127.0.0.1:0", "CHAT_API_ADDR": "127.0.0.1:0", "CHAT_API_SECRET": testAPISecret,
		"CHAT_NODE": "test-" + servicetest.Unique(), "CHAT_EMBEDDED_PATH": filepath.Join(t.TempDir(), "chat.db"),
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(path, false, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return runServer(t, cfg)
}

// TestCompatLegacy: with compat: legacy, what the PHP server allowed and our
// defaults refuse goes through: a non-admin's "all" (reaching a connection
// that never sent init too), a msg in a binary frame, a message of 100 KB,
// 20 connections of one account; the same frames on a server with the
// defaults are refused.
func TestCompatLegacy(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", 100_000)
	bigFrame := `{"flag":"msg","from":"alice","to":"bob","content":"` + big + `"}`

	ts := startCompat(t, nil)
	alice, _ := login(t, ts, "alice", "")
	bob, _ := login(t, ts, "bob", "")
	guest := dial(t, ts.url) // a page that only listens: it never sends init
	guest.sync()             // its pong: the server has it in its table
	alice.send(`{"flag":"all","from":"alice","content":"hello everybody"}`)
	for name, c := range map[string]*client{"alice": alice, "bob": bob, "guest": guest} {
		if f := c.next(5 * time.Second); f["flag"] != "all" || f["content"] != "hello everybody" {
			t.Fatalf("%s got %v; want alice's announcement", name, f)
		}
	}
	if err := alice.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"flag":"msg","from":"alice","to":"bob","content":"in binary"}`)); err != nil {
		t.Fatal(err)
	}
	if f := bob.next(5 * time.Second); f["content"] != "in binary" {
		t.Fatalf("bob got %v; want the message alice sent in a binary frame", f)
	}
	if err := alice.ws.WriteMessage(websocket.TextMessage, []byte(bigFrame)); err != nil {
		t.Fatalf("send the 100 KB message: %v", err)
	}
	if f := bob.next(5 * time.Second); f["content"] != big {
		t.Fatalf("bob got %.80v; want the 100 KB message", f)
	}
	if got := alice.sync(); len(got) != 0 {
		t.Fatalf("alice got %v; want no error under compat: legacy", got)
	}
	// Every visitor inits as one shared account: past the default's 16 too.
	for i := 0; i < 20; i++ {
		if _, got := login(t, ts, "guest", ""); len(got) != 0 {
			t.Fatalf("guest connection %d got %v; want no refusal under compat: legacy", i+1, got)
		}
	}

	def := startServer(t, "embedded", nil)
	alice, _ = login(t, def, "alice", "")
	login(t, def, "bob", "")
	alice.send(`{"flag":"all","from":"alice","content":"x"}`)
	if f := alice.next(5 * time.Second); f["code"] != "forbidden" {
		t.Fatalf("defaults: all from a non-admin -> %v; want forbidden", f)
	}
	if err := alice.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"flag":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if f := alice.next(5 * time.Second); f["code"] != "binary_frame" {
		t.Fatalf("defaults: a binary frame -> %v; want binary_frame", f)
	}
	// The server may close while the frame is still being written: a failed
	// write is expected, the close frame is what tells.
	_ = alice.ws.WriteMessage(websocket.TextMessage, []byte(bigFrame))
	_, err := alice.read(5 * time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1009 {
		t.Fatalf("defaults: a 100 KB frame -> %v; want close 1009", err)
	}
}

// TestCompatExplicitSettingWins: under compat: legacy a key the operator set
// keeps its value: broadcast.allowed from the environment still refuses a
// non-admin's "all", and the configuration records the key as kept (the start
// log prints that list).
func TestCompatExplicitSettingWins(t *testing.T) {
	t.Parallel()
	ts := startCompat(t, map[string]string{"CHAT_BROADCAST_ALLOWED": "admin"})
	user, _ := login(t, ts, "user", "")
	admin, _ := login(t, ts, "admin", "")
	user.send(`{"flag":"all","from":"user","content":"x"}`)
	if f := user.next(5 * time.Second); f["code"] != "forbidden" {
		t.Fatalf("all from a non-admin with broadcast.allowed=admin -> %v; want forbidden", f)
	}
	admin.send(`{"flag":"all","from":"admin","content":"notice"}`)
	if f := user.next(5 * time.Second); f["content"] != "notice" {
		t.Fatalf("user got %v; want the admin's notice", f)
	}
	b, _ := json.Marshal(ts.cfg.CompatKept)
	if string(b) != `["broadcast.allowed"]` {
		t.Fatalf("compat_kept = %s; want [\"broadcast.allowed\"]", b)
	}
}
