package app

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"chatserver/config"
	"chatserver/internal/boxcheck"
)

func TestCheckTarget(t *testing.T) {
	cfg := config.Default()
	tg, err := CheckTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Connections != 1_000_000 || tg.TLS || tg.LocalProxy || !slices.Equal(tg.Ports, []int{9052}) {
		t.Fatalf("defaults: %+v; want a million over ws://, no local proxy, port 9052 (no side API without a secret)", tg)
	}
	cfg.Server.MaxConnections = 5000
	cfg.TLS.Addr = ":9443"
	cfg.API.Secret = "s"
	cfg.Server.TrustedProxies = []string{"10.0.0.0/8", "::1"}
	if tg, err = CheckTarget(cfg); err != nil {
		t.Fatal(err)
	}
	if tg.Connections != 5000 || !tg.TLS || !tg.LocalProxy || !slices.Equal(tg.Ports, []int{9052, 9443, 9053}) {
		t.Fatalf("got %+v; want 5000 over wss://, a local proxy (::1), ports 9052, 9443, 9053", tg)
	}
	for proxies, local := range map[string]bool{"127.0.0.1": true, "127.0.0.0/8": true, "10.0.0.2": false, "0.0.0.0/0": true} {
		cfg.Server.TrustedProxies = []string{proxies}
		if tg, _ := CheckTarget(cfg); tg.LocalProxy != local {
			t.Errorf("trusted_proxies %s: local proxy %v; want %v", proxies, tg.LocalProxy, local)
		}
	}
}

func TestCheckServicesNotConfigured(t *testing.T) {
	fs := CheckServices(context.Background(), config.Default(), time.Second)
	if len(fs) != 2 || fs[0].Name != "redis" || fs[1].Name != "mysql" {
		t.Fatalf("findings %+v; want redis and mysql", fs)
	}
	for _, f := range fs {
		if f.Status != boxcheck.OK || !strings.Contains(f.Detail, "not configured") {
			t.Errorf("%s: %s %q; want ok, not configured", f.Name, f.Status, f.Detail)
		}
	}
}

// TestCheckMySQLUnreachable: the finding names the address and why, never the
// password of the DSN.
func TestCheckMySQLUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	cfg := config.Default()
	cfg.MySQL.DSN = "chat:pw-never-shown@tcp(" + dead + ")/site"
	f := CheckServices(context.Background(), cfg, 3*time.Second)[1]
	if f.Status != boxcheck.Fail || !strings.Contains(f.Detail, dead) || !strings.Contains(f.Detail, "connection refused") {
		t.Fatalf("%s %q; want fail naming %s and why", f.Status, f.Detail, dead)
	}
	if strings.Contains(f.Detail+f.Fix, "pw-never-shown") {
		t.Fatalf("the finding shows the password: %q", f.Detail)
	}

	cfg.MySQL.DSN = "not a dsn"
	if f := CheckServices(context.Background(), cfg, time.Second)[1]; f.Status != boxcheck.Fail || !strings.Contains(f.Detail, "mysql.dsn") {
		t.Fatalf("bad DSN: %s %q", f.Status, f.Detail)
	}
}
