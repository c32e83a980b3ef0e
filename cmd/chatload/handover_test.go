package main

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHandoverScenario runs the handover scenario against two real chatserver
// processes on one port: every connection is closed once with 1012 by the
// old one and comes back, and no acknowledged message is lost.
func TestHandoverScenario(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "chatserver")
	if out, err := exec.Command("go", "build", "-o", bin, "chatserver").CombinedOutput(); err != nil {
		t.Fatalf("build chatserver: %v\n%s", err, out)
	}
	addr, apiAddr := freeLoopback(t), freeLoopback(t)
	conf := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CHAT_SERVER_ADDR="+addr, "CHAT_API_ADDR="+apiAddr, "CHAT_API_SECRET=s",
		"CHAT_EMBEDDED_PATH="+filepath.Join(t.TempDir(), "chat.db"), "CHAT_SERVER_HANDOVER_RATE=200",
		"CHAT_LIMITS_CONNECTIONS_PER_IP=0", "CHAT_LOG_LEVEL=warn")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-config", conf)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	old := start()
	waitUntil(t, "the old process listening", func() bool { return connections(apiAddr) == 0 })
	const conns = 300
	// The new process starts once the tool's connections are on the old one
	// (the kernel would spread them over both), before the SIGUSR2.
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for connections(apiAddr) < conns && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		start()
	}()
	r := runTool(t, "handover", "-addr", addr, "-conns", strconv.Itoa(conns), "-pairs", "50", "-rate", "200",
		"-handover-pid", strconv.Itoa(old.Process.Pid), "-before", "2s", "-after", "1s", "-workers", "2")
	h := r.Handover
	if h == nil || h.Restarts != conns || h.OtherCloses != 0 || h.Reconnected != conns {
		t.Fatalf("handover result %+v; want every one of %d connections closed with 1012 and back", h, conns)
	}
	if h.Lost != 0 || h.Unacked != 0 || h.Acked == 0 || h.Acked != h.Sent {
		t.Fatalf("messages: %d sent, %d acknowledged, %d lost, %d unacknowledged", h.Sent, h.Acked, h.Lost, h.Unacked)
	}
	// 300 at 200/s: the closes take at least half of 1.5 s.
	if h.LastCloseS-h.FirstCloseS < 0.75 {
		t.Fatalf("closes from %.2f s to %.2f s; at 200/s 300 take 1.5 s", h.FirstCloseS, h.LastCloseS)
	}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// connections is chat_connections on the side API at addr, or -1.
func connections(addr string) int {
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer s")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "chat_connections "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
