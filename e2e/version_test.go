package e2e

import (
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersionStamped builds the binary with a version stamped at link time,
// as deploy/build-release.sh does, and runs -version: the stamped version,
// the Go release and the platform are printed, and the commit, when the
// build recorded one, is the checkout's.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "-ldflags", "-X main.version=e2e-1.2.3")
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("-version: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"chatserver e2e-1.2.3\n", "module chatserver ", "go " + runtime.Version() + "\n", "platform " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if m := regexp.MustCompile(`vcs\.revision ([0-9a-f]{40})`).FindStringSubmatch(text); m != nil {
		head, err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatalf("git rev-parse: %v", err)
		}
		if m[1] != strings.TrimSpace(string(head)) {
			t.Errorf("vcs.revision %s; the checkout is at %s", m[1], head)
		}
	} else if !strings.Contains(text, "vcs.revision unknown") {
		t.Errorf("neither a revision nor why there is none:\n%s", text)
	}
}
