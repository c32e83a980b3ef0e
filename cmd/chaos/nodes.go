package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one chat server process of a setup, restartable with the same
// environment, ports and log file.
type node struct {
	idx     int
	bin     string
	dir     string // working directory (data/ lands here)
	logPath string
	env     []string
	wsAddr  string
	apiAddr string
	secret  string
	rec     *Recorder

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}  // closed when the current process exited
	stopped bool           // SIGSTOPped and not continued
	lastSig syscall.Signal // the last SIGKILL or SIGTERM we sent this process
	exits   []string       // every exit seen, for the report
}

// freePort returns a loopback address nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// buildServer builds the chat server from the module root into dir.
func buildServer(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "chatserver")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("go.mod not found above the working directory: run from the module or pass -bin")
		}
		dir = up
	}
}

// start launches the process and waits until both listeners answer.
func (n *node) start(ctx context.Context) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return fmt.Errorf("node %d: %w", n.idx, err)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d log: %w", n.idx, err)
	}
	fmt.Fprintf(logf, "--- chaos: start node %d at %s ---\n", n.idx, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(n.bin)
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("node %d: start: %w", n.idx, err)
	}
	done := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.done, n.stopped, n.lastSig = cmd, done, false, 0
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		status := "exit 0"
		if err != nil {
			status = err.Error()
		}
		// Ours: a SIGKILL, or a SIGTERM answered by a clean exit.
		expected := n.lastSig == syscall.SIGKILL || (n.lastSig == syscall.SIGTERM && err == nil)
		n.exits = append(n.exits, status)
		n.mu.Unlock()
		verdict := "expected"
		if !expected {
			verdict = "unexpected"
			status += "; last log line: " + lastLine(n.logPath)
		}
		n.rec.Add(Event{Kind: evNodeExit, Node: n.idx, Status: verdict, Detail: fmt.Sprintf("pid %d: %s", cmd.Process.Pid, status)})
		close(done)
	}()
	return n.waitListening(ctx, 30*time.Second)
}

// waitListening waits for the WebSocket port and /healthz.
func (n *node) waitListening(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if !n.alive() {
			return fmt.Errorf("node %d exited during start (log: %s)", n.idx, n.logPath)
		}
		if c, err := net.DialTimeout("tcp", n.wsAddr, 500*time.Millisecond); err == nil {
			c.Close()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.apiAddr+"/healthz", nil)
			req.Header.Set("Authorization", "Bearer "+n.secret)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %d not listening after %s (log: %s)", n.idx, d, n.logPath)
}

// alive: the current process has not exited.
func (n *node) alive() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return errors.New("not started")
	}
	switch sig {
	case syscall.SIGSTOP:
		n.stopped = true
	case syscall.SIGCONT:
		n.stopped = false
	case syscall.SIGKILL, syscall.SIGTERM:
		n.lastSig = sig
	}
	return n.cmd.Process.Signal(sig)
}

// kill SIGKILLs the process (continuing it first is not needed: SIGKILL
// works on a stopped process) and waits for it to be gone.
func (n *node) kill() {
	if !n.alive() {
		return
	}
	_ = n.signal(syscall.SIGKILL)
	n.wait(10 * time.Second)
}

func (n *node) wait(d time.Duration) bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// terminate asks for a graceful shutdown and kills after the deadline.
func (n *node) terminate(d time.Duration) {
	if !n.alive() {
		return
	}
	_ = n.signal(syscall.SIGCONT)
	_ = n.signal(syscall.SIGTERM)
	if !n.wait(d) {
		n.rec.Add(Event{Kind: evNote, Node: n.idx, Detail: fmt.Sprintf("node %d did not stop within %s of SIGTERM: killed", n.idx, d)})
		_ = n.signal(syscall.SIGKILL)
		n.wait(10 * time.Second)
	}
}

// scanLog reports lines that mention a panic or a data race.
func (n *node) scanLog() []string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "panic") || strings.Contains(line, "DATA RACE") || strings.Contains(line, "fatal error") {
			if len(line) > 300 {
				line = line[:300] + "..."
			}
			out = append(out, line)
		}
	}
	return out
}

// lastLine is the log's last non-empty line (what a process said as it died).
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	l := lines[len(lines)-1]
	if len(l) > 300 {
		l = l[:300] + "..."
	}
	return l
}
