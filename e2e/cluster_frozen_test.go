package e2e

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterFrozenNodeLosesNothing: the recipient's node is frozen (SIGSTOP)
// while a sender on another node sends to it. No message is acknowledged
// "pushed": each is acknowledged "stored" within the confirmation timeout
// (plus slack), and once the frozen node is killed, the recipient, reconnected
// to another node, gets every one of them once, in order.
func TestClusterFrozenNodeLosesNothing(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2)
	bin := buildServer(t)
	first := nodes[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr3 := ln.Addr().String()
	_ = ln.Close()
	env := []string{
		"CHAT_NODE=n3", "CHAT_CLUSTER_ENABLED=true", "CHAT_SERVER_ADDR=" + addr3,
		"CHAT_MYSQL_DSN=" + first.cfg.MySQL.DSN, "CHAT_REDIS_ADDR=" + first.cfg.Redis.Addr,
		"CHAT_REDIS_KEY_PREFIX=" + first.cfg.Redis.KeyPrefix, "CHAT_LIMITS_FRAMES_PER_SECOND=0",
		"CHAT_LOG_LEVEL=warn", "CHAT_OFFLINE_SPOOL_PATH=" + t.TempDir() + "/spool.db",
	}
	n3 := startProc(t, bin, env, addr3)
	rdb := redis.NewClient(&redis.Options{Addr: first.cfg.Redis.Addr})
	defer rdb.Close()

	alice, _ := login(t, first, "alice", "")
	carol := dial(t, "ws://"+addr3+"/")
	carol.send(`{"flag":"init","from":"carol"}`)
	carol.sync()
	eventually(t, "carol registered on n3", func() bool {
		return rdb.HLen(context.Background(), first.cfg.Redis.KeyPrefix+"acct:carol").Val() == 1
	})
	alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "carol", "content": "before", "cid": "before"})
	if f := alice.next(5 * time.Second); f["status"] != "pushed" {
		t.Fatalf("ack while n3 runs: %v; want pushed", f)
	}
	if f := carol.next(5 * time.Second); f["content"] != "before" {
		t.Fatalf("carol on n3 got %v", f)
	}

	if err := n3.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Paced so that the node is found not answering (skipped, later messages
	// stored at once) while earlier ones still wait for their answer: the
	// stored rows must still be in send order.
	const n = 12
	start := time.Now()
	for i := 0; i < n; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "carol", "content": fmt.Sprint(i), "cid": fmt.Sprint(i)})
		time.Sleep(300 * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		f := alice.next(10 * time.Second)
		if f["status"] != "stored" {
			t.Fatalf("ack %d for the frozen node: %v; want stored (it was not pushed)", i, f)
		}
	}
	if d := time.Since(start); d > n*300*time.Millisecond+4*time.Second {
		t.Fatalf("acks took %v; want each within the 2 s confirmation timeout and slack", d)
	}
	n3.kill() // frozen, then dead: what it held in memory is gone

	_, got := login(t, nodes[1], "carol", "")
	if len(got) != n {
		t.Fatalf("carol, reconnected to n2, got %d messages: %v; want %d", len(got), got, n)
	}
	for i, f := range got {
		if f["content"] != fmt.Sprint(i) {
			t.Fatalf("message %d = %v: lost, duplicated or out of order", i, f)
		}
	}
}
