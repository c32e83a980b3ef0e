package main

import (
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestCampaignShort runs the fault campaign against the real server, both
// setups at once, for about two minutes of faults each, and fails with the
// report when the checker finds a failure. CHAT_CHAOS_SEED replays a seed;
// CHAT_CHAOS_DURATION changes the fault phase.
func TestCampaignShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault campaign takes minutes; not in -short")
	}
	dsn := envOr("CHAT_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	redisAddr := envOr("CHAT_TEST_REDIS_ADDR", "127.0.0.1:6379")
	requireServices(t, dsn, redisAddr)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAT_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAT_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	duration := 2 * time.Minute
	if s := os.Getenv("CHAT_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CHAT_CHAOS_DURATION=%q: %v", s, err)
		}
		duration = d
	}
	t.Logf("chaos seed %d (replay: CHAT_CHAOS_SEED=%d go test -run TestCampaignShort ./cmd/chaos/)", seed, seed)

	// Logs and history stay when the test fails.
	base := os.Getenv("CHAT_TEST_ARTIFACTS")
	if base != "" {
		base = filepath.Join(base, "chaos")
		if err := os.MkdirAll(base, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := os.MkdirTemp(base, "chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			_ = os.RemoveAll(out)
		}
	})

	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}
	var log strings.Builder
	results, err := campaign(ctx, campaignConfig{seed: seed, duration: duration, setups: []string{"single", "cluster"},
		faults: allFaults, out: out, mysqlDSN: dsn, redis: redisAddr, log: &log})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatalf("campaign (seed %d): %v; output in %s", seed, err, out)
	}
	if failed := blocking(results); len(failed) > 0 {
		t.Fatalf("the checker found failures (seed %d): %s; report, history and node logs in %s", seed, strings.Join(failed, ", "), out)
	}
}

// blocking lists the findings that fail the test run of the suite: every one
// on one node; on several nodes every one but reorders. Reorders across nodes
// around faults are not all fixed yet (docs/faults.md, "Several nodes without
// known failures": open cases, replayable by seed); the report above prints
// them in full, and the campaign tool run by hand (cmd/chaos) fails on them.
func blocking(rs []*Result) []string {
	var out []string
	for _, r := range rs {
		if r == nil {
			continue
		}
		for _, f := range r.Failures {
			if r.Setup == "cluster" && f.Rule == "order" {
				continue
			}
			out = append(out, r.Setup+" "+f.Rule+" "+f.ID)
		}
	}
	return out
}

// requireServices skips (or fails under CHAT_TEST_REQUIRE_SERVICES=1) when
// MariaDB or Redis cannot be reached.
func requireServices(t *testing.T, dsn, redisAddr string) {
	t.Helper()
	missing := func(what string, err error) {
		if os.Getenv("CHAT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s unavailable: %v", what, err)
		}
		t.Skipf("%s unavailable: %v", what, err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("CHAT_TEST_MYSQL_DSN: %v", err)
	}
	cfg.Timeout = 3 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		missing("MariaDB", err)
	}
	if c, err := net.DialTimeout("tcp", redisAddr, 3*time.Second); err != nil {
		missing("Redis", err)
	} else {
		c.Close()
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
