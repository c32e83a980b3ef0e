package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chatserver/internal/testcert"
)

// TestStartFailsOnBusyAddress builds the real binary and starts it with one of
// its listen addresses already held: it must say which address failed and exit
// non-zero within seconds, for the WebSocket, wss:// and side API listeners.
func TestStartFailsOnBusyAddress(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chatserver")
	build := exec.Command("go", "build", "-o", bin, "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	certPEM, keyPEM, _ := testcert.New(t, 1)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, busy := range []string{"CHAT_SERVER_ADDR", "CHAT_TLS_ADDR", "CHAT_API_ADDR"} {
		t.Run(busy, func(t *testing.T) {
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			env := map[string]string{
				"CHAT_SERVER_ADDR":   freeAddr(t),
				"CHAT_TLS_ADDR":      freeAddr(t),
				"CHAT_TLS_CERT_FILE": certFile,
				"CHAT_TLS_KEY_FILE":  keyFile,
				"CHAT_API_ADDR":      freeAddr(t),
				"CHAT_API_SECRET":    "s",
				"CHAT_EMBEDDED_PATH": filepath.Join(t.TempDir(), "chat.db"),
				"CHAT_LOG_FORMAT":    "json",
			}
			env[busy] = held.Addr().String()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = t.TempDir() // no config.yaml: defaults and the environment
			cmd.Env = os.Environ()
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err = cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after 10 s with %s=%s busy; output:\n%s", busy, held.Addr(), out.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v; want a non-zero exit code; output:\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), held.Addr().String()) {
				t.Fatalf("output does not name the busy address %s:\n%s", held.Addr(), out.String())
			}
		})
	}
}

// freeAddr is a loopback address nobody listens on (just now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
