package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"chatserver/config"
)

// startRedisCluster runs a three-master Redis Cluster of the test's own on spare
// loopback ports and returns its addresses, comma-separated.
func startRedisCluster(t *testing.T) string {
	t.Helper()
	var addrs []string
	for i := 0; i < 3; i++ {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		_ = ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		dir := t.TempDir()
		cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--cluster-enabled", "yes",
			"--cluster-config-file", dir+"/nodes.conf", "--save", "", "--appendonly", "no", "--dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatalf("redis-server: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addrs = append(addrs, addr)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		eventually(t, "cluster member up", func() bool { return c.Ping(context.Background()).Err() == nil })
		_ = c.Close()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	eventually(t, "cluster state ok", func() bool {
		info, err := cc.ClusterInfo(context.Background()).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	return strings.Join(addrs, ",")
}

// TestRedisClusterMode: two nodes on a three-master Redis Cluster: the account
// map, cross-node msg and group, and announcements work as on one Redis.
func TestRedisClusterMode(t *testing.T) {
	t.Parallel()
	addrs := startRedisCluster(t)
	n1 := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Node, c.Cluster.Enabled, c.Redis.Addr = "n1", true, addrs
	})
	n2 := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Node, c.Cluster.Enabled, c.Redis.Addr = "n2", true, addrs
		c.MySQL.DSN, c.Redis.KeyPrefix = n1.cfg.MySQL.DSN, n1.cfg.Redis.KeyPrefix
	})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	defer cc.Close()
	ctx := context.Background()
	eventually(t, "both nodes subscribed", func() bool {
		var total atomic.Int64 // ForEachMaster runs the masters concurrently
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			m, _ := c.PubSubNumSub(ctx, n1.cfg.Redis.KeyPrefix+"all").Result()
			total.Add(m[n1.cfg.Redis.KeyPrefix+"all"])
			return nil
		})
		return total.Load() == 2
	})
	alice, _ := login(t, n1, "alice", "")
	accounts := []string{}
	var clients []*client
	for i := 0; i < 10; i++ { // accounts spread over the cluster's slots
		a := fmt.Sprint("user", i)
		c, _ := login(t, n2, a, "")
		accounts, clients = append(accounts, a), append(clients, c)
	}
	eventually(t, "entries on every shard", func() bool {
		return n1.online("user9")
	})
	// Three rounds over ten accounts on the other node: each message is
	// acknowledged pushed, arrives once, and is not also left in the offline
	// table (which would bring it again at the next init).
	for round := 0; round < 3; round++ {
		for i, a := range accounts {
			content := fmt.Sprint("hello ", a, " ", round)
			alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": a, "content": content, "cid": fmt.Sprint(round, a)})
			if f := alice.next(5 * time.Second); f["status"] != "pushed" {
				t.Fatalf("ack of the message to %s on n2: %v; want pushed", a, f)
			}
			if f := clients[i].next(5 * time.Second); f["content"] != content {
				t.Fatalf("%s on n2 got %v", a, f)
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // a row written late would be there by now
	var rows int
	if err := n1.db().QueryRow("SELECT COUNT(*) FROM app_offline").Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows in the offline table (%v): messages pushed live were also stored", rows, err)
	}
	n1.mustAddMembers("all10", append([]string{"alice"}, accounts...))
	alice.send(`{"flag":"group","from":"alice","to":"all10","content":"group hi"}`)
	for i, c := range clients {
		if f := c.next(5 * time.Second); f["group"] != "all10" {
			t.Fatalf("member %d got %v", i, f)
		}
	}
	if code, _ := n1.api("POST", "/api/broadcast", map[string]string{"from": "admin", "content": "to all"}); code != 200 {
		t.Fatalf("broadcast = %d", code)
	}
	for i, c := range append(clients, alice) {
		if f := c.next(5 * time.Second); f["flag"] != "all" {
			t.Fatalf("connection %d got %v", i, f)
		}
	}
}
