package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the tool's worker process: the
// coordinator re-executes os.Executable() with -worker.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-worker" {
		if err := run(context.Background(), os.Args[1:], nil, os.Stdin, os.Stdout, os.Stderr); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startBaseline builds bench/baseline and runs it on a free loopback port.
// It runs as its own process, without the race detector: nbio's server
// hands accepted connections to its poller through epoll, which the race
// detector cannot see, so an in-process nbio server reports false races.
func startBaseline(t *testing.T) (addr string, pid int) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "baseline")
	if out, err := exec.Command("go", "build", "-o", bin, "chatserver/bench/baseline").CombinedOutput(); err != nil {
		t.Fatalf("build baseline: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "baseline: listening on "); ok {
				found <- strings.Fields(a)[0]
			}
		}
	}()
	select {
	case addr = <-found:
		return addr, cmd.Process.Pid
	case <-time.After(20 * time.Second):
		t.Fatal("baseline did not start")
	}
	return "", 0
}

func runTool(t *testing.T, args ...string) *result {
	t.Helper()
	return runToolEnv(t, noEnv, args...)
}

// runToolEnv is runTool with an environment (CHAT_API_SECRET).
func runToolEnv(t *testing.T, getenv func(string) string, args ...string) *result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, log bytes.Buffer
	err := run(ctx, append(args, "-json", "-max-time", "50s"), getenv, nil, &out, &syncWriter{w: &log})
	if strings.Contains(log.String(), "DATA RACE") {
		t.Fatalf("race in a worker process:\n%s", log.String())
	}
	if err != nil {
		t.Fatalf("chatload %v: %v\n%s", args, err, log.String())
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("decode result: %v\n%s", err, out.String())
	}
	if r.Client != nil && (len(r.Client.Errors) > 0 || r.Client.Unexpected > 0) {
		t.Errorf("server errors %v, unexpected frames %d", r.Client.Errors, r.Client.Unexpected)
	}
	return &r
}

// noEnv is an empty environment: a test's result must not depend on the
// caller's CHAT_API_SECRET.
func noEnv(string) string { return "" }

// syncWriter serialises the workers' stderr and the progress lines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestScenariosAgainstBaseline(t *testing.T) {
	addr, bpid := startBaseline(t)
	pid := strconv.Itoa(bpid)

	t.Run("idle", func(t *testing.T) {
		r := runTool(t, "idle", "-addr", addr, "-steps", "20,50", "-workers", "2", "-pid", pid, "-settle-max", "1s")
		if r.Connect == nil || r.Connect.OK != 50 || r.Connect.Failed != 0 || r.Connect.PerSec <= 0 {
			t.Fatalf("connect = %+v", r.Connect)
		}
		if r.Idle == nil || len(r.Idle.Steps) != 2 || r.Idle.BaselineRSS <= 0 || r.Idle.Steps[1].Conns != 50 || r.Idle.Steps[1].RSS <= 0 {
			t.Fatalf("idle = %+v", r.Idle)
		}
	})
	t.Run("broadcast", func(t *testing.T) {
		// Two server PIDs (the baseline and this test process): their CPU is summed.
		r := runTool(t, "broadcast", "-addr", addr, "-conns", "40", "-k", "5", "-workers", "2", "-grace", "200ms",
			"-pid", pid+","+strconv.Itoa(os.Getpid()))
		b := r.Broadcast
		if b == nil || b.Receivers != 40 || b.Complete != 5 || b.Missing != 0 || b.Duplicates != 0 || b.Delivered != 200 || b.MaxMs <= 0 {
			t.Fatalf("broadcast = %+v", b)
		}
		if b.ConnMaxMs <= 0 || b.ConnP50ms > b.ConnMaxMs || b.ConnMaxMs > b.MaxMs+0.001 {
			t.Errorf("per-connection latency p50 %.3f max %.3f, round max %.3f", b.ConnP50ms, b.ConnMaxMs, b.MaxMs)
		}
		// The kernel counts CPU time in 10 ms ticks: 200 deliveries may take
		// less than one, so a zero reading is allowed; Processes says both
		// PIDs were read at start and end.
		if r.CPU == nil || r.CPU.Delivered != 200 || r.CPU.Processes != 2 || r.CPU.Seconds < 0 ||
			r.CPU.PerThousand != r.CPU.Seconds/200*1000 {
			t.Fatalf("cpu = %+v", r.CPU)
		}
	})
	t.Run("pairs-ping", func(t *testing.T) {
		r := runTool(t, "pairs", "-addr", addr, "-pairs", "10", "-rate", "1000", "-duration", "1s", "-workers", "2",
			"-ping-conns", "4", "-ping-every", "50ms")
		p := r.Pairs
		if p == nil || p.Lost != 0 || p.Ping == nil {
			t.Fatalf("pairs = %+v", p)
		}
		// 4 connections, a ping every 50 ms for 1 s: about 80 round trips.
		if g := p.Ping; g.Conns != 4 || g.Answered < 40 || g.Answered != g.Sent || g.Unanswered != 0 || g.MaxMs <= 0 || g.P50ms > g.MaxMs {
			t.Fatalf("ping = %+v", g)
		}
	})
	for _, rate := range []string{"0", "2000"} {
		t.Run("pairs-rate-"+rate, func(t *testing.T) {
			r := runTool(t, "pairs", "-addr", addr, "-pairs", "10", "-rate", rate, "-duration", "1s", "-workers", "2", "-grace", "5s")
			p := r.Pairs
			if p == nil || p.Sent == 0 || p.Delivered != p.Sent || p.Lost != 0 || p.Duplicated != 0 || p.OutOfOrder != 0 || p.WrongFrom != 0 {
				t.Fatalf("pairs = %+v", p)
			}
			if rate != "0" && (p.Sent < 1000 || p.Sent > 2100) {
				t.Errorf("paced at 2000/s for 1s, sent %d", p.Sent)
			}
			if p.LatMaxMs <= 0 || p.LatP50ms > p.LatMaxMs {
				t.Errorf("latency p50 %.2f max %.2f", p.LatP50ms, p.LatMaxMs)
			}
		})
	}
}

// TestOffline checks the drain side end to end (the baseline stores
// nothing), once with a server that answers {"flag":"ping"} and once with
// one that does not, as the PHP server, using -init-wait.
func TestOffline(t *testing.T) {
	for _, ping := range []bool{true, false} {
		t.Run("ping-"+strconv.FormatBool(ping), func(t *testing.T) {
			addr := startFake(t, ping)
			args := []string{"offline", "-addr", addr, "-messages", "203", "-accounts", "5",
				"-offline-wait", "300ms", "-drain-timeout", "10s", "-workers", "2"}
			if !ping {
				args = append(args, "-init-wait", "200ms")
			}
			r := runTool(t, args...)
			o := r.Offline
			if o == nil || o.Sent != 203 || o.Delivered != 203 || o.Lost != 0 || o.Duplicated != 0 || o.OutOfOrder != 0 || o.DrainedPerSec <= 0 {
				t.Fatalf("offline = %+v", o)
			}
		})
	}
}

// TestTLS: -tls -insecure loads a wss:// server (a fake with a test
// certificate): offline delivery and pairs, nothing lost.
func TestTLS(t *testing.T) {
	f := &fakeServer{answerPing: true, online: map[string]*fakeConn{}, stored: map[string][]fakeMsg{}}
	srv := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	r := runTool(t, "offline", "-addr", addr, "-tls", "-insecure", "-messages", "50", "-accounts", "5",
		"-offline-wait", "300ms", "-drain-timeout", "10s", "-workers", "1")
	if o := r.Offline; o == nil || o.Delivered != 50 || o.Lost != 0 || o.OutOfOrder != 0 {
		t.Fatalf("offline over TLS = %+v", r.Offline)
	}
	r = runTool(t, "pairs", "-addr", addr, "-tls", "-insecure", "-pairs", "5", "-rate", "500", "-duration", "1s", "-workers", "1", "-grace", "5s")
	if p := r.Pairs; p == nil || p.Sent == 0 || p.Delivered != p.Sent || p.Lost != 0 {
		t.Fatalf("pairs over TLS = %+v", r.Pairs)
	}
}

// TestLossFailsTheRun: a server that drops messages makes the run report the
// loss, still print its result, and end with a deliveryError (exit status 2),
// so that a script running chatload cannot mistake a lossy run for a clean one.
func TestLossFailsTheRun(t *testing.T) {
	f := &fakeServer{answerPing: true, dropEvery: 7, online: map[string]*fakeConn{}, stored: map[string][]fakeMsg{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, log bytes.Buffer
	err := run(ctx, []string{"pairs", "-addr", addr, "-pairs", "4", "-rate", "400", "-duration", "1s",
		"-workers", "1", "-grace", "2s", "-json", "-max-time", "50s"}, noEnv, nil, &out, &syncWriter{w: &log})
	var de *deliveryError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "messages lost") {
		t.Fatalf("run over a lossy server: err = %v, want a deliveryError naming the lost messages\n%s", err, log.String())
	}
	var r result
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil || r.Pairs == nil {
		t.Fatalf("the result must still be printed: %v\n%s", jerr, out.String())
	}
	if want := r.Pairs.Sent / 7; r.Pairs.Lost < want-1 || r.Pairs.Lost > want+1 {
		t.Errorf("sent %d through a server dropping every 7th, lost %d; want about %d", r.Pairs.Sent, r.Pairs.Lost, want)
	}
}
