package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestClientLibrary runs the client library's own tests (web/test/chat.test.mjs,
// Node's test runner on fake sockets): receiver acks, seen ids kept in a
// storage across restarts (localStorage, mini-program storage), history
// paging and its refusals. It needs node only; without it the test skips, and
// fails under CHAT_TEST_REQUIRE_SERVICES=1.
func TestClientLibrary(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CHAT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("the client library's tests need node; CHAT_TEST_REQUIRE_SERVICES=1 turns this skip into a failure")
		}
		t.Skip("the client library's tests need node")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// --test-force-exit: a failed assertion leaves its client's timers behind.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-force-exit", "--test-reporter=spec", "chat.test.mjs")
	cmd.Dir = filepath.Join("..", "web", "test")
	out, err := cmd.CombinedOutput()
	t.Logf("node --test chat.test.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the client library's tests failed: %v", err)
	}
}
