package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/internal/servicetest"
)

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestRunEmbeddedDefault runs the command as `go run .` does, with nothing but
// an address and a data path set, chats over it, and stops it as SIGTERM would.
func TestRunEmbeddedDefault(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	env := map[string]string{
		"CHAT_SERVER_ADDR":   addr,
		"CHAT_EMBEDDED_PATH": filepath.Join(t.TempDir(), "data", "chat.db"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"chatserver"}, out, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()

	var ws *websocket.Conn
	servicetest.Eventually(t, 10*time.Second, "server accepting", func() bool {
		ws, _, err = websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
		return err == nil
	})
	defer ws.Close()
	for _, frame := range []string{`{"flag":"init","from":"me"}`, `{"flag":"msg","from":"me","to":"me","content":"note to self"}`} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var f map[string]any
	if err := ws.ReadJSON(&f); err != nil || f["content"] != "note to self" {
		t.Fatalf("got %v, %v", f, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	log := out.String()
	for _, want := range []string{`"store":"embedded"`, `"presence":"in-process"`, `"message":"chat server listening"`, `"message":"stopped"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	env := map[string]string{"CHAT_SERVER_IDLE_TIMEOUT": "1ms"}
	err := run(context.Background(), []string{"chatserver"}, &bytes.Buffer{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), "server.idle_timeout") {
		t.Fatalf("run with a 1ms idle timeout = %v; want an error naming server.idle_timeout", err)
	}
}
