package api

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// TestProbesNeedNoSecret: a load balancer probes /healthz and /readyz without
// the secret, and a failing check is named without its error, which may hold
// what only the operator may see (addresses, a user, a DSN).
func TestProbesNeedNoSecret(t *testing.T) {
	fx := startWithLogic(t)
	if status, v, _ := fx.call(t, "", "GET", "/healthz", ""); status != http.StatusOK || v["status"] != "ok" {
		t.Fatalf("healthz without the secret: %d %v; want 200 ok", status, v)
	}
	if status, v, _ := fx.call(t, "", "GET", "/readyz", ""); status != http.StatusOK || v["ready"] != true {
		t.Fatalf("readyz without the secret: %d %v; want 200 ready", status, v)
	}
	secret := "dial tcp 10.9.8.7:3306: Error 1045: Access denied for user 'chat'@'10.1.1.1' (chat:hunter2@tcp(db.internal:3306)/site)"
	fx.logic.set(func(f *fakeLogic) { f.notReady = errors.New(secret) })
	status, v, _ := fx.call(t, "", "GET", "/readyz", "")
	if status != http.StatusServiceUnavailable || v["ready"] != false || v["checks"].(map[string]any)["sql"] != "fail" {
		t.Fatalf("readyz with a failing check: %d %v; want 503 with sql: fail", status, v)
	}
	for _, leak := range []string{"10.9.8.7", "10.1.1.1", "hunter2", "chat", "db.internal", "3306", "denied", "dial"} {
		if strings.Contains(string(fx.raw), leak) {
			t.Fatalf("readyz answered %q: it gives away %q", fx.raw, leak)
		}
	}
	if calls := fx.logic.called(); len(calls) != 0 {
		t.Fatalf("the probes reached the logic: %v", calls)
	}
}

// TestMetricsNeedTheSecretOrAnAllowedAddress: /metrics answers a client in
// api.metrics_allow without the secret, refuses others without it, and the
// allowlist opens /metrics only.
func TestMetricsNeedTheSecretOrAnAllowedAddress(t *testing.T) {
	nets := func(cidrs ...string) func(*Config) {
		return func(c *Config) {
			for _, s := range cidrs {
				c.MetricsAllow = append(c.MetricsAllow, netip.MustParsePrefix(s))
			}
		}
	}
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		without int // /metrics without the secret, from 127.0.0.1
	}{
		{"no allowlist", nets(), http.StatusUnauthorized},
		{"loopback not allowed", nets("10.0.0.0/8", "192.168.0.0/16"), http.StatusUnauthorized},
		{"loopback allowed", nets("10.0.0.0/8", "127.0.0.0/8"), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := startWithLogic(t, tc.change)
			if status, _, _ := fx.call(t, "", "GET", "/metrics", ""); status != tc.without {
				t.Fatalf("metrics without the secret: %d; want %d", status, tc.without)
			}
			if status, _, _ := fx.call(t, "Bearer wrong", "GET", "/metrics", ""); status != tc.without {
				t.Fatalf("metrics with a wrong secret: %d; want %d", status, tc.without)
			}
			if status, _, _ := fx.call(t, goodAuth, "GET", "/metrics", ""); status != http.StatusOK || !strings.Contains(string(fx.raw), "chat_connections") {
				t.Fatalf("metrics with the secret: %d %q; want 200 and the metrics", status, fx.raw)
			}
			if status, _, _ := fx.call(t, "", "GET", "/api/online?account=alice", ""); status != http.StatusUnauthorized {
				t.Fatalf("online without the secret: %d; want 401 whatever the allowlist", status)
			}
		})
	}
}

// TestMetricsAllowlistIsByAddress: the same allowlist refuses a peer outside it
// on the same machine (IPv6 loopback against 127.0.0.0/8).
func TestMetricsAllowlistIsByAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	_ = ln.Close()
	fx := startWithLogic(t, func(c *Config) {
		c.Addr = "[::1]:0"
		c.MetricsAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	if status, _, _ := fx.call(t, "", "GET", "/metrics", ""); status != http.StatusUnauthorized {
		t.Fatalf("metrics from ::1 with only 127.0.0.0/8 allowed: %d; want 401", status)
	}
	fx = startWithLogic(t, func(c *Config) {
		c.Addr = "[::1]:0"
		c.MetricsAllow = []netip.Prefix{netip.MustParsePrefix("::1/128")}
	})
	if status, _, _ := fx.call(t, "", "GET", "/metrics", ""); status != http.StatusOK {
		t.Fatalf("metrics from ::1 with ::1/128 allowed: %d; want 200", status)
	}
}
