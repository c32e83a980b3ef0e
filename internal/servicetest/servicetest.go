// Package servicetest gives tests the real Redis and MariaDB on loopback, each
// test isolated: a database of its own (dropped afterwards) and a Redis key
// prefix of its own (deleted afterwards). When a service is not reachable the
// test is skipped, unless CHAT_TEST_REQUIRE_SERVICES=1 (the README test command
// sets it), in which case it fails: CI must never pass by skipping.
package servicetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"chatserver/internal/faultproxy"
)

// Defaults; override with CHAT_TEST_MYSQL_DSN (no database name) and CHAT_TEST_REDIS_ADDR.
const (
	defaultMySQL = "root@tcp(127.0.0.1:3306)/"
	defaultRedis = "127.0.0.1:6379"
)

func required() bool { return os.Getenv("CHAT_TEST_REQUIRE_SERVICES") == "1" }

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if required() {
		t.Fatalf("%s is required (CHAT_TEST_REQUIRE_SERVICES=1) but unreachable: %v", what, err)
	}
	t.Skipf("%s unreachable, skipping: %v", what, err)
}

// Unique returns a short random name part.
func Unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// MySQLDSN creates a fresh database and returns a DSN for it. The database is
// dropped when the test ends.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("CHAT_TEST_MYSQL_DSN")
	if base == "" {
		base = defaultMySQL
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("CHAT_TEST_MYSQL_DSN: %v", err)
	}
	cfg.Timeout = 3 * time.Second
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open mysql: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		unavailable(t, "MariaDB at "+cfg.Addr, err)
	}
	name := "chat_test_" + Unique()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// RedisAddr returns the test Redis address, or skips/fails when unreachable.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("CHAT_TEST_REDIS_ADDR")
	if addr == "" {
		addr = defaultRedis
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		unavailable(t, "Redis at "+addr, err)
	}
	return addr
}

// Redis returns a client and a key prefix of the test's own; every key under the
// prefix is deleted when the test ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	prefix := "chattest:" + Unique() + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// RedisThroughProxy is Redis with a fault proxy in between: a client that
// reaches the test's Redis through the proxy, the proxy (to cut, black-hole or
// delay it), and the test's key prefix.
func RedisThroughProxy(t testing.TB) (*redis.Client, *faultproxy.Proxy, string) {
	t.Helper()
	_, prefix := Redis(t)
	proxy, err := faultproxy.Start(RedisAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, proxy, prefix
}

// Eventually polls cond every 100 ms until it holds, failing the test with
// what after d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
