package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startCentrifugo runs the Centrifugo binary named by $CHATLOAD_CENTRIFUGO on
// a free loopback port, configured as bench/compare.sh configures it (memory
// engine, insecure clients, an HTTP API key). The test does not build it: go
// install of Centrifugo compiles a few hundred modules and takes minutes, too
// long for every test run; bench/compare.sh installs it into
// OUT/centrifugo-bin, and the variable points there.
func startCentrifugo(t *testing.T) (addr string, pid int) {
	t.Helper()
	bin := os.Getenv("CHATLOAD_CENTRIFUGO")
	if bin == "" {
		t.Skip("CHATLOAD_CENTRIFUGO is not set: point it at a centrifugo v6 binary " +
			"(GOBIN=/tmp/cf go install github.com/centrifugal/centrifugo/v6@v6.9.1) to run chatload against it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cfg := filepath.Join(t.TempDir(), "centrifugo.json")
	conf := fmt.Sprintf(`{"log": {"level": "error"}, "http_server": {"address": "127.0.0.1", "port": %d},
		"engine": {"type": "memory"}, "client": {"insecure": true}, "http_api": {"key": "test-key"},
		"usage_stats": {"disabled": true}}`, port)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return addr, cmd.Process.Pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("centrifugo did not start listening")
	return "", 0
}

// The scenarios that map to Centrifugo, against the real server: every
// connection connects and subscribes, every announcement reaches every
// connection once, and one-to-one messages arrive complete and in order.
func TestScenariosAgainstCentrifugo(t *testing.T) {
	addr, cpid := startCentrifugo(t)
	pid := strconv.Itoa(cpid)
	cf := []string{"-addr", addr, "-protocol", "centrifugo", "-path", "/connection/websocket", "-workers", "2"}
	tool := func(t *testing.T, scenario string, args ...string) *result {
		t.Helper()
		return runTool(t, append(append([]string{scenario}, cf...), args...)...)
	}

	t.Run("idle", func(t *testing.T) {
		r := tool(t, "idle", "-steps", "20,50", "-pid", pid, "-settle-max", "1s")
		if r.Connect == nil || r.Connect.OK != 50 || r.Connect.Failed != 0 || r.Connect.PerSec <= 0 {
			t.Fatalf("connect = %+v", r.Connect)
		}
		if r.Idle == nil || len(r.Idle.Steps) != 2 || r.Idle.Steps[1].Conns != 50 || r.Idle.Steps[1].RSS <= 0 {
			t.Fatalf("idle = %+v", r.Idle)
		}
	})
	t.Run("broadcast", func(t *testing.T) {
		r := tool(t, "broadcast", "-conns", "40", "-k", "5", "-grace", "200ms", "-api-secret", "test-key", "-pid", pid)
		b := r.Broadcast
		if b == nil || b.Receivers != 40 || b.Complete != 5 || b.Missing != 0 || b.Duplicates != 0 || b.Delivered != 200 || b.MaxMs <= 0 {
			t.Fatalf("broadcast = %+v", b)
		}
		if r.CPU == nil || r.CPU.Delivered != 200 || r.CPU.Processes != 1 {
			t.Fatalf("cpu = %+v", r.CPU)
		}
	})
	t.Run("broadcast-bad-key", func(t *testing.T) {
		var out, log bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err := run(ctx, append(append([]string{"broadcast"}, cf...), "-conns", "4", "-k", "1", "-api-secret", "wrong", "-max-time", "50s"),
			noEnv, nil, &out, &syncWriter{w: &log})
		var de *deliveryError
		if err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err = %v, want the API's 401", err)
		}
	})
	for _, rate := range []string{"0", "2000"} {
		t.Run("pairs-rate-"+rate, func(t *testing.T) {
			r := tool(t, "pairs", "-pairs", "10", "-rate", rate, "-duration", "1s", "-grace", "5s")
			p := r.Pairs
			if p == nil || p.Sent == 0 || p.Delivered != p.Sent || p.Lost != 0 || p.Duplicated != 0 || p.OutOfOrder != 0 || p.WrongFrom != 0 {
				t.Fatalf("pairs = %+v", p)
			}
			if rate != "0" && (p.Sent < 1000 || p.Sent > 2100) {
				t.Errorf("paced at 2000/s for 1s, sent %d", p.Sent)
			}
		})
	}
}
