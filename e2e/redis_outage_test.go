package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"chatserver/config"
)

// ownRedis runs a redis-server of the test's own on a spare loopback port, so
// that stopping it disturbs nothing else. It keeps nothing on disk: a restart
// comes back empty, the worst case for the account map. args are added to its
// command line (e.g. --replicaof).
type ownRedis struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T, addr string, args ...string) *ownRedis {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not installed: %v (scripts/test.sh installs it)", err)
	}
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		_ = ln.Close()
	}
	_, port, _ := net.SplitHostPort(addr)
	r := &ownRedis{t: t, addr: addr}
	r.cmd = exec.Command(path, append([]string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	eventually(t, "own redis-server up", func() bool { return rdb.Ping(context.Background()).Err() == nil })
	return r
}

func (r *ownRedis) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

func entries(t *testing.T, addr, prefix string) []string {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	keys, _ := rdb.Keys(ctx, prefix+"acct:*").Result()
	var out []string
	for _, k := range keys {
		n, _ := rdb.HLen(ctx, k).Result()
		out = append(out, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, prefix+"acct:"), n))
	}
	sort.Strings(out)
	return out
}

// TestRedisOutage: with Redis stopped, chat on the node goes on (push, init,
// online from local knowledge); when Redis is back, empty, the node's entries
// are rebuilt from its live connections: the ones opened during the outage are
// there, the ones closed during it are not.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	rs := startOwnRedis(t, "")
	ts := startServer(t, "redis+mariadb", func(c *config.Config) { c.Redis.Addr = rs.addr })
	prefix := ts.cfg.Redis.KeyPrefix
	alice, _ := login(t, ts, "alice", "")
	bob, _ := login(t, ts, "bob", "")
	eventually(t, "alice and bob registered", func() bool { return strings.Join(entries(t, rs.addr, prefix), " ") == "alice=1 bob=1" })

	rs.stop()
	// Acknowledged messages during the outage: to bob (online) and dave
	// (offline); every one arrives once, in order.
	for i := 0; i < 50; i++ {
		for _, to := range []string{"bob", "dave"} {
			alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": to, "content": fmt.Sprint(i), "cid": to + fmt.Sprint(i)})
			if f := alice.next(5 * time.Second); f["flag"] != "ack" {
				t.Fatalf("during the outage alice got %v; want an ack", f)
			}
		}
	}
	for i := 0; i < 50; i++ {
		if f := bob.next(5 * time.Second); f["content"] != fmt.Sprint(i) {
			t.Fatalf("bob's message %d = %v", i, f)
		}
	}
	if _, got := login(t, ts, "dave", ""); len(got) != 50 || got[0]["content"] != "0" || got[49]["content"] != "49" {
		t.Fatalf("dave drained %d messages; want 0..49", len(got))
	}
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"during the outage"}`)
	if f := bob.next(5 * time.Second); f["content"] != "during the outage" {
		t.Fatalf("bob got %v", f)
	}
	carol, _ := login(t, ts, "carol", "")
	carol.send(`{"flag":"online","to":"alice"}`)
	if f := carol.next(5 * time.Second); f["online"] != true {
		t.Fatalf("online alice during the outage = %v; want true (local)", f)
	}
	_ = bob.ws.Close()
	time.Sleep(300 * time.Millisecond)

	startOwnRedis(t, rs.addr) // back, and empty
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for last != "alice=1 carol=1 dave=1" {
		if time.Now().After(deadline) {
			t.Fatalf("entries after Redis came back: %q; want alice=1 carol=1 dave=1", last)
		}
		time.Sleep(50 * time.Millisecond)
		last = strings.Join(entries(t, rs.addr, prefix), " ")
	}
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"after"}`)
	if f := carol.next(5 * time.Second); f["content"] != "after" {
		t.Fatalf("carol got %v", f)
	}
}

// TestRedisDownAtStart: the server starts and serves with Redis unreachable, and
// registers its connections once Redis comes up.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	ts := startServer(t, "redis+mariadb", func(c *config.Config) { c.Redis.Addr = addr })
	alice, _ := login(t, ts, "alice", "")
	bob, _ := login(t, ts, "bob", "")
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"no redis"}`)
	if f := bob.next(5 * time.Second); f["content"] != "no redis" {
		t.Fatalf("bob got %v", f)
	}
	if code, body := ts.api("GET", "/readyz", nil); code != 503 || body["ready"] != false {
		t.Fatalf("readyz with Redis down = %d %v; want 503", code, body)
	}
	startOwnRedis(t, addr)
	eventually(t, "registered once Redis is up", func() bool {
		return strings.Join(entries(t, addr, ts.cfg.Redis.KeyPrefix), " ") == "alice=1 bob=1"
	})
}
