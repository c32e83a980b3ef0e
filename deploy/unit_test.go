package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatserver/config"
)

const installedBinary = "/usr/local/bin/chatserver"

// TestUnitVerifies runs systemd-analyze verify on the unit, with ExecStart
// pointed at a freshly built binary (verify wants the program to exist): it
// must exit 0 and say nothing, since unknown keys and bad values are only
// warnings there.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		msg := "systemd-analyze is not installed (Debian package systemd; scripts/test.sh installs it), so the unit cannot be verified"
		if os.Getenv("CHAT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chatserver")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The single unit, and the template two instances of which take turns
	// at an upgrade (verified as an instance, the way systemd loads it).
	for file, as := range map[string]string{"chatserver.service": "chatserver.service", "chatserver@.service": "chatserver@1.service"} {
		u := readUnit(t, file)
		start := u.one(t, "Service.ExecStart")
		if !strings.HasPrefix(start, installedBinary+" ") {
			t.Fatalf("%s: ExecStart=%s; want %s (README installs it there)", file, start, installedBinary)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, as)
		text := strings.Replace(string(data), "ExecStart="+installedBinary, "ExecStart="+bin, 1)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("systemd-analyze verify %s: %v\n%s", file, err, out)
		}
	}
}

// TestUnitSettings holds the unit against the server it runs: the files it
// writes land in the state directory whatever the working directory, it may
// bind :443, systemd waits out a graceful shutdown, and its file limit fits
// under the drop-in's fs.nr_open.
func TestUnitSettings(t *testing.T) {
	u := readUnit(t, "chatserver.service")
	if got := u.one(t, "Service.ExecStart"); got != installedBinary+" -config /etc/chatserver/config.yaml" {
		t.Errorf("ExecStart=%s", got)
	}
	for key, want := range map[string]string{
		"Service.StateDirectory":   "chatserver",
		"Service.WorkingDirectory": "/var/lib/chatserver",
		"Service.DynamicUser":      "yes",
		"Service.Restart":          "on-failure",
		"Service.StandardOutput":   "journal",
		"Service.StandardError":    "journal",
		"Install.WantedBy":         "multi-user.target",
	} {
		if got := u.one(t, key); got != want {
			t.Errorf("%s=%s; want %s", key, got, want)
		}
	}
	for _, key := range []string{"Service.AmbientCapabilities", "Service.CapabilityBoundingSet"} {
		if !slices.Contains(strings.Fields(u.one(t, key)), "CAP_NET_BIND_SERVICE") {
			t.Errorf("%s lacks CAP_NET_BIND_SERVICE: no :443 without root", key)
		}
	}

	// The environment the unit sets, read by the server's own loading over
	// the repository's config.yaml: every path it writes is absolute, in the
	// state directory.
	env := map[string]string{}
	known := config.EnvNames()
	for _, e := range u["Service.Environment"] {
		k, v, ok := strings.Cut(e, "=")
		if !ok || !slices.Contains(known, k) {
			t.Errorf("Environment=%s: not a setting the server reads", e)
		}
		env[k] = v
	}
	cfg, err := config.Load("../config.yaml", false, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	for setting, path := range map[string]string{"embedded.path": cfg.Embed.Path, "offline.spool_path": cfg.Offline.SpoolPath} {
		if !filepath.IsAbs(path) || !strings.HasPrefix(path, "/var/lib/chatserver/") {
			t.Errorf("%s under the unit is %q; want an absolute path in /var/lib/chatserver", setting, path)
		}
	}

	// systemd must wait longer than the server's graceful shutdown.
	stop, err := time.ParseDuration(u.one(t, "Service.TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	for where, d := range map[string]time.Duration{"the default": config.Default().Server.ShutdownTimeout, "config.yaml": cfg.Server.ShutdownTimeout} {
		if stop <= d+5*time.Second {
			t.Errorf("TimeoutStopSec=%v is not well above server.shutdown_timeout (%v in %s)", stop, d, where)
		}
	}

	limit, err := strconv.ParseInt(u.one(t, "Service.LimitNOFILE"), 10, 64)
	if err != nil {
		t.Fatalf("LimitNOFILE: %v", err)
	}
	nrOpen, err := strconv.ParseInt(readDropIn(t, "99-chatserver.conf").values["fs.nr_open"], 10, 64)
	if err != nil {
		t.Fatalf("fs.nr_open in the drop-in: %v", err)
	}
	if limit > nrOpen {
		t.Errorf("LimitNOFILE=%d above the drop-in's fs.nr_open=%d: the service would not start", limit, nrOpen)
	}
}
