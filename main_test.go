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
	eventually(t, "server accepting", func() bool {
		ws, _, err = websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
		return err == nil
	})
	c := &client{t: t, ws: ws}
	c.send(`{"flag":"init","from":"me"}`)
	c.send(`{"flag":"msg","from":"me","to":"me","content":"note to self"}`)
	if f := c.next(5 * time.Second); f["content"] != "note to self" {
		t.Fatalf("got %v", f)
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
