package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// waitFor returns the log once it contains s.
func (l *logBuf) waitFor(t *testing.T, s string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		out := l.b.String()
		l.mu.Unlock()
		if strings.Contains(out, s) {
			return out
		}
	}
	t.Fatalf("log never said %q", s)
	return ""
}

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || func() error { _, err := c.Write([]byte(line)); return err }() != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestSignalsSwitchTheFault: traffic passes, SIGUSR1 holds it with the
// connection open, SIGUSR2 releases what was held and passes again.
func TestSignalsSwitchTheFault(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	var log logBuf
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-target", echoServer(t)}, sigs, &log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	out := log.waitFor(t, "listening on ")
	addr := strings.Fields(strings.SplitN(out, "listening on ", 2)[1])[0]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(msg string, within time.Duration) (string, error) {
		_ = c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return "", err
		}
		return r.ReadString('\n')
	}
	if got, err := say("one", 5*time.Second); err != nil || got != "one\n" {
		t.Fatalf("passing: %q, %v", got, err)
	}
	sigs <- syscall.SIGUSR1
	log.waitFor(t, "blackhole")
	if got, err := say("two", 300*time.Millisecond); err == nil {
		t.Fatalf("black-holed, yet the echo answered %q", got)
	}
	sigs <- syscall.SIGUSR2
	log.waitFor(t, " pass")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "two\n" {
		t.Fatalf("after the fault: held line %q, %v", got, err)
	}
	if got, err := say("three", 5*time.Second); err != nil || got != "three\n" {
		t.Fatalf("passing again: %q, %v", got, err)
	}
}
