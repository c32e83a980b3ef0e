package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// buildBinary builds the chatserver command into the test's temporary
// directory, with extra go build flags (e.g. -ldflags), and returns its path.
func buildBinary(t *testing.T, flags ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "chatserver")
	args := append(append([]string{"build", "-o", bin}, flags...), "..")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	return bin
}
