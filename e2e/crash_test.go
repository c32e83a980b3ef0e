package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"chatserver/internal/servicetest"
)

// buildServer compiles the command once per test binary run.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chatserver")
	cmd := exec.Command("go", "build", "-o", bin, "..")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

type proc struct {
	t   *testing.T
	cmd *exec.Cmd
	log *os.File
}

func startProc(t *testing.T, bin string, env []string, addr string) *proc {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "server-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", filepath.Join(t.TempDir(), "none.yaml"))
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// -config names a missing file: that must fail, so give it an empty one.
	if err := os.WriteFile(cmd.Args[2], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, log: logf}
	t.Cleanup(func() { p.kill() })
	eventually(t, "server listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return p
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// TestSIGKILLLosesNoAckedMessage: a sender streams messages with cids to an
// offline recipient; the server is SIGKILLed in the middle and started again.
// Every message it had acknowledged is delivered at the recipient's next init,
// exactly once and in send order.
func TestSIGKILLLosesNoAckedMessage(t *testing.T) {
	t.Parallel()
	bin := buildServer(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	_, prefix := servicetest.Redis(t)
	env := []string{
		"CHAT_SERVER_ADDR=" + addr,
		"CHAT_MYSQL_DSN=" + servicetest.MySQLDSN(t),
		"CHAT_REDIS_ADDR=" + servicetest.RedisAddr(t),
		"CHAT_REDIS_KEY_PREFIX=" + prefix,
		"CHAT_LIMITS_FRAMES_PER_SECOND=0",
		"CHAT_LOG_LEVEL=warn",
		"CHAT_OFFLINE_SPOOL_PATH=" + filepath.Join(t.TempDir(), "spool.db"),
	}
	url := "ws://" + addr + "/"
	srv := startProc(t, bin, env, addr)

	alice := dial(t, url)
	alice.send(`{"flag":"init","from":"alice"}`)
	alice.sync()
	const n = 3000
	go func() {
		for i := 0; i < n; i++ {
			msg := fmt.Sprintf(`{"flag":"msg","from":"alice","to":"bob","content":"%d","cid":"%d"}`, i, i)
			if alice.ws.WriteMessage(1, []byte(msg)) != nil {
				return
			}
		}
	}()
	acked := map[string]string{}
	for len(acked) < 500 {
		f := alice.next(10 * time.Second)
		if f["flag"] != "ack" || f["status"] != "stored" {
			t.Fatalf("got %v; want stored acks", f)
		}
		acked[f["cid"].(string)], _ = f["id"].(string)
	}
	srv.kill() // mid-storm: more were sent, some acked in flight, some not
	for {
		f, err := alice.read(2 * time.Second)
		if err != nil {
			break
		}
		if f["flag"] == "ack" {
			acked[f["cid"].(string)], _ = f["id"].(string)
		}
	}
	t.Logf("%d of %d messages acknowledged before the kill", len(acked), n)

	startProc(t, bin, env, addr)
	bob := dial(t, url)
	bob.send(`{"flag":"init","from":"bob"}`)
	got := bob.sync()
	seen := map[string]bool{}
	last := -1
	for _, f := range got {
		c, _ := f["content"].(string)
		i, err := strconv.Atoi(c)
		if err != nil || f["from"] != "alice" {
			t.Fatalf("unexpected frame %v", f)
		}
		if seen[c] {
			t.Fatalf("message %s delivered twice", c)
		}
		seen[c] = true
		if i <= last {
			t.Fatalf("message %d after %d: order broken", i, last)
		}
		last = i
		if id, ok := acked[c]; ok && f["id"] != id {
			t.Fatalf("message %s has id %v; the ack said %s", c, f["id"], id)
		}
	}
	var lost []string
	for c := range acked {
		if !seen[c] {
			lost = append(lost, c)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged messages lost after SIGKILL: %s", len(lost), strings.Join(lost[:min(10, len(lost))], ","))
	}
	t.Logf("delivered after restart: %d (every acknowledged one, and %d more that were stored but not yet acked)", len(got), len(got)-len(acked))
}
