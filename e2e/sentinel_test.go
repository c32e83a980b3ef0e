package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"chatserver/config"
	"chatserver/internal/servicetest"
)

// sentinelMaster is the name the test's Sentinel monitors its master under.
const sentinelMaster = "m"

// startSentinel runs a Sentinel of the test's own on a spare loopback port,
// watching master with a quorum of one (it alone decides a failover) and
// declaring it down after one second. It returns the Sentinel's address.
func startSentinel(t *testing.T, master string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(master)
	addr := freeAddr(t)
	_, sport, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites it as it learns
	text := fmt.Sprintf("bind 127.0.0.1\nport %s\ndir %s\n"+
		"sentinel monitor %s %s %s 1\n"+
		"sentinel down-after-milliseconds %[3]s 1000\n"+
		"sentinel failover-timeout %[3]s 5000\n", sport, dir, sentinelMaster, host, port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server --sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer sc.Close()
	eventually(t, "Sentinel up and watching the master", func() bool {
		return sentinelMasterAddr(sc) == master
	})
	return addr
}

// sentinelMasterAddr is where the Sentinel says the master is now.
func sentinelMasterAddr(sc *redis.SentinelClient) string {
	hp, err := sc.GetMasterAddrByName(context.Background(), sentinelMaster).Result()
	if err != nil || len(hp) != 2 {
		return ""
	}
	return net.JoinHostPort(hp[0], hp[1])
}

// sentinelHasReplica reports whether the Sentinel knows addr as a healthy
// replica it could promote.
func sentinelHasReplica(sc *redis.SentinelClient, addr string) bool {
	rs, err := sc.Replicas(context.Background(), sentinelMaster).Result()
	if err != nil {
		return false
	}
	for _, r := range rs {
		if net.JoinHostPort(r["ip"], r["port"]) == addr {
			return r["flags"] == "slave" && r["master-link-status"] == "ok"
		}
	}
	return false
}

// replicating reports whether the Redis at addr is a replica in sync with its master.
func replicating(addr string) bool {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(context.Background(), "replication").Result()
	return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
}

// nodesOf lists the nodes the account map at addr names for account
// (HKEYS <prefix>acct:<account>, one field "<node>|<connection>" each).
func nodesOf(addr, prefix, account string) string {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	fields, _ := c.HKeys(context.Background(), prefix+"acct:"+account).Result()
	var nodes []string
	for _, f := range fields {
		node, _, _ := strings.Cut(f, "|")
		nodes = append(nodes, node)
	}
	sort.Strings(nodes)
	return strings.Join(nodes, ",")
}

// subscribers counts the nodes subscribed to the announcement channel at addr.
func subscribers(addr, prefix string) int64 {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	m, _ := c.PubSubNumSub(context.Background(), prefix+"all").Result()
	return m[prefix+"all"]
}

// TestRedisSentinel: two nodes on a Redis master with a replica, watched by a
// Sentinel. The nodes find the master through the Sentinel; after a failover
// the Sentinel orders, they follow it to the new master (the account map is
// there, cross-node messages go on); after the master dies with a write its
// replica had not received, the promoted replica gets the lost entry back from
// the node that owns it.
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Either may be the master; as one, it sends a replica its data at once.
	first := startOwnRedis(t, "", "--repl-diskless-sync-delay", "0")
	_, port, _ := net.SplitHostPort(first.addr)
	second := startOwnRedis(t, "", "--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", port)
	eventually(t, "replica in sync", func() bool { return replicating(second.addr) })
	sentinel := startSentinel(t, first.addr)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	eventually(t, "Sentinel knows the replica", func() bool { return sentinelHasReplica(sc, second.addr) })

	n1 := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Node, c.Cluster.Enabled, c.Redis.Addr, c.Redis.SentinelMaster = "n1", true, sentinel, sentinelMaster
	})
	n2 := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Node, c.Cluster.Enabled, c.Redis.Addr, c.Redis.SentinelMaster = "n2", true, sentinel, sentinelMaster
		c.MySQL.DSN, c.Redis.KeyPrefix = n1.cfg.MySQL.DSN, n1.cfg.Redis.KeyPrefix
	})
	prefix := n1.cfg.Redis.KeyPrefix
	eventually(t, "both nodes subscribed on the master", func() bool { return subscribers(first.addr, prefix) == 2 })
	alice, _ := login(t, n1, "alice", "")
	bob, _ := login(t, n2, "bob", "")
	eventually(t, "alice and bob in the master's account map", func() bool {
		return nodesOf(first.addr, prefix, "alice") == "n1" && nodesOf(first.addr, prefix, "bob") == "n2"
	})
	say(t, alice, "alice", bob, "bob", "before the failover", 1)

	// A failover the Sentinel orders, the old master alive: the nodes move to
	// the new master; their announcement subscriptions move once the Sentinel
	// has turned the old master into a replica (it disconnects its clients
	// then), and by then the nodes have settled on the new master.
	if err := sc.Failover(ctx, sentinelMaster).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	servicetest.Eventually(t, 10*time.Second, "the replica promoted", func() bool { return sentinelMasterAddr(sc) == second.addr })
	servicetest.Eventually(t, 20*time.Second, "both nodes subscribed on the new master", func() bool {
		return subscribers(second.addr, prefix) == 2
	})
	if got := nodesOf(second.addr, prefix, "alice") + " " + nodesOf(second.addr, prefix, "bob"); got != "n1 n2" {
		t.Fatalf("account map on the new master: alice, bob on %q; want n1 n2", got)
	}
	say(t, alice, "alice", bob, "bob", "after the failover", 20)
	say(t, bob, "bob", alice, "alice", "back after the failover", 20)
	carol, _ := login(t, n2, "carol", "")
	eventually(t, "carol in the new master's account map", func() bool { return nodesOf(second.addr, prefix, "carol") == "n2" })
	say(t, alice, "alice", carol, "carol", "to carol", 1)

	// The master dies with a write its replica never received (dave's entry):
	// the promoted replica lacks it, and n2 writes it again by itself.
	servicetest.Eventually(t, 15*time.Second, "the old master a replica in sync", func() bool { return replicating(first.addr) })
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil { // cannot reconnect to its master
		t.Fatal(err)
	}
	mc := redis.NewClient(&redis.Options{Addr: second.addr})
	if err := mc.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica: %v", err)
	}
	_ = mc.Close()
	dave, _ := login(t, n2, "dave", "")
	eventually(t, "dave in the master's account map", func() bool { return nodesOf(second.addr, prefix, "dave") == "n2" })
	second.stop()
	if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 15*time.Second, "the old master promoted again", func() bool { return sentinelMasterAddr(sc) == first.addr })
	servicetest.Eventually(t, 15*time.Second, "the account map complete on the promoted replica", func() bool {
		var got []string
		for _, a := range []string{"alice", "bob", "carol", "dave"} {
			got = append(got, nodesOf(first.addr, prefix, a))
		}
		return strings.Join(got, " ") == "n1 n2 n2 n2"
	})
	servicetest.Eventually(t, 15*time.Second, "both nodes subscribed on the promoted replica", func() bool {
		return subscribers(first.addr, prefix) == 2
	})
	say(t, alice, "alice", dave, "dave", "to dave", 20)
	say(t, bob, "bob", alice, "alice", "after the second failover", 20)
}

// say sends a message across nodes until its sender's ack says pushed, at most
// tries times, 250 ms apart, and checks that the recipient got it live. Right
// after a failover the first tries may be acknowledged stored (a node pauses
// routing through Redis until Redis answers it again; they come at the
// recipient's next init).
func say(t *testing.T, from *client, fromName string, to *client, toName, content string, tries int) {
	t.Helper()
	for i := 1; ; i++ {
		cid := fmt.Sprintf("%s-%d", content, i)
		text := fmt.Sprintf("%s (%d)", content, i)
		from.sendJSON(map[string]string{"flag": "msg", "from": fromName, "to": toName, "content": text, "cid": cid})
		ack := from.next(5 * time.Second)
		for ack["flag"] != "ack" || ack["cid"] != cid { // a frame for the sender: not this test's concern
			ack = from.next(5 * time.Second)
		}
		if ack["status"] == "pushed" {
			f := to.next(5 * time.Second)
			for f["content"] != text { // an earlier try pushed as well as stored
				f = to.next(5 * time.Second)
			}
			if f["from"] != fromName {
				t.Fatalf("%s got %v; want %q from %s", toName, f, text, fromName)
			}
			return
		}
		if i == tries {
			t.Fatalf("%s to %s: ack %v after %d tries; want pushed", fromName, toName, ack, i)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
