package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatserver/internal/servicetest"
)

// checkNames are the checks chatserver -check always reports.
var checkNames = []string{
	"redis", "mysql", "RLIMIT_NOFILE soft", "RLIMIT_NOFILE hard", "fs.nr_open", "fs.file-max",
	"net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.ip_local_port_range",
	"net.ipv4.ip_local_reserved_ports", "net.netfilter.nf_conntrack_max", "net.ipv4.tcp_mem", "memory",
}

// runCheck runs the built binary with -check on the repository's config.yaml
// and the given environment; it returns the output and the exit code.
func runCheck(t *testing.T, bin string, env map[string]string) (string, int) {
	t.Helper()
	cfg, err := filepath.Abs("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-check", "-config", cfg)
	cmd.Dir = t.TempDir()
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("check still running after 60 s; output:\n%s", out.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", bin, err)
		return "", 0
	}
}

// line finds a finding's line: status, name, then the detail.
func line(status, name, detail string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + status + `\s+` + regexp.QuoteMeta(name) + `\s+` + detail)
}

// TestCheckRealMachine runs chatserver -check against this machine with the
// repository's config.yaml, on the real Redis and MariaDB: both are reported
// reachable, every check is there, and the exit code is non-zero exactly when
// a check fails (whether this machine holds server.max_connections is what
// the check finds out, not what the test assumes).
func TestCheckRealMachine(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	redisAddr := servicetest.RedisAddr(t)
	out, code := runCheck(t, bin, map[string]string{
		"CHAT_REDIS_ADDR": redisAddr,
		"CHAT_MYSQL_DSN":  servicetest.MySQLDSN(t),
	})
	t.Logf("chatserver -check:\n%s", out)
	for _, name := range checkNames {
		if !regexp.MustCompile(`(?m)^(ok|warn|fail)\s+` + regexp.QuoteMeta(name) + `\s`).MatchString(out) {
			t.Errorf("no finding for %s", name)
		}
	}
	if !line("ok", "redis", regexp.QuoteMeta(redisAddr)+" answers PING").MatchString(out) {
		t.Errorf("Redis at %s not reported reachable", redisAddr)
	}
	if !line("ok", "mysql", `127\.0\.0\.1:3306 database "chat_test_\w+" as "root" answers`).MatchString(out) {
		t.Errorf("MariaDB not reported reachable")
	}
	fails := len(regexp.MustCompile(`(?m)^fail\s`).FindAllString(out, -1))
	if !strings.Contains(out, "\n"+strconv.Itoa(fails)+" fail, ") {
		t.Errorf("%d fail lines, but the summary says otherwise", fails)
	}
	if (fails > 0) != (code != 0) {
		t.Errorf("exit code %d with %d failing checks; want non-zero exactly when one fails", code, fails)
	}
}

// TestCheckRedisUnreachable: a Redis address nobody listens on fails the
// check, named with its address and without its password, and the exit code
// is non-zero; the MariaDB that does answer is still reported reachable.
func TestCheckRedisUnreachable(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	const secret = "redis-secret-never-printed"
	out, code := runCheck(t, bin, map[string]string{
		"CHAT_REDIS_ADDR":     dead,
		"CHAT_REDIS_PASSWORD": secret,
		"CHAT_MYSQL_DSN":      servicetest.MySQLDSN(t),
		// A target any machine holds, so that Redis is what fails.
		"CHAT_SERVER_MAX_CONNECTIONS": "100",
	})
	t.Logf("chatserver -check:\n%s", out)
	if code == 0 {
		t.Errorf("exit code 0 with Redis unreachable")
	}
	if !line("fail", "redis", regexp.QuoteMeta(dead)+" does not answer PING: .*connection refused").MatchString(out) {
		t.Errorf("Redis at %s not reported failing, with why", dead)
	}
	if !line("ok", "mysql", `.* answers`).MatchString(out) {
		t.Errorf("MariaDB not reported reachable")
	}
	if strings.Contains(out, secret) {
		t.Errorf("the output shows the Redis password")
	}
	if !strings.Contains(out, "chatserver: check: ") {
		t.Errorf("no error line for the exit")
	}
}
