package e2e

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// notifyProc starts a server process joining first's cluster, with
// notifications on: a node that can be SIGKILLed.
func notifyProc(t *testing.T, first *testServer, bin, node string, rcv *receiver, grace time.Duration, extra ...string) (*proc, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	env := []string{
		"CHAT_NODE=" + node, "CHAT_CLUSTER_ENABLED=true", "CHAT_SERVER_ADDR=" + addr,
		"CHAT_MYSQL_DSN=" + first.cfg.MySQL.DSN, "CHAT_REDIS_ADDR=" + first.cfg.Redis.Addr,
		"CHAT_REDIS_KEY_PREFIX=" + first.cfg.Redis.KeyPrefix, "CHAT_LIMITS_FRAMES_PER_SECOND=0",
		"CHAT_LOG_LEVEL=warn", "CHAT_OFFLINE_SPOOL_PATH=" + t.TempDir() + "/spool.db",
		"CHAT_NOTIFY_URL=" + rcv.srv.URL, "CHAT_NOTIFY_SECRET=" + notifySecret,
		"CHAT_NOTIFY_GRACE=" + grace.String(), "CHAT_NOTIFY_BATCH_WINDOW=100ms", "CHAT_NOTIFY_RETRY_BASE=50ms",
	}
	env = append(env, extra...)
	return startProc(t, bin, env, addr), "ws://" + addr + "/"
}

// A node SIGKILLed while events are in their grace period leaves them in the
// outbox: the other node sends carol's once, after the grace period (and the
// time it gives the dead holder), while bob, who inits on the other node
// within the grace period, gets none.
func TestNotifyHeldEventOutlivesKilledNode(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	const grace = 2 * time.Second
	nodes := startCluster(t, 1, notifyConfig(rcv, grace, 100*time.Millisecond))
	survivor := nodes[0]
	bin := buildServer(t)
	doomed, url := notifyProc(t, survivor, bin, "n9", rcv, grace)

	alice := dial(t, url)
	alice.send(`{"flag":"init","from":"alice"}`)
	alice.sync()
	for _, to := range []string{"bob", "carol"} {
		alice.send(`{"flag":"msg","from":"alice","to":"` + to + `","content":"hi","cid":"` + to + `"}`)
		if f := alice.next(5 * time.Second); f["status"] != "stored" {
			t.Fatalf("ack of the message to %s: %v; want stored", to, f)
		}
	}
	eventually(t, "both events held in the outbox", func() bool { return survivor.outboxRows() == 2 })
	doomed.kill()
	start := time.Now()

	bob, drained := login(t, survivor, "bob", "")
	if joined(contents(drained)) != "hi" {
		t.Fatalf("bob's drain on the surviving node = %v", drained)
	}
	_ = bob.ws.Close() // gone again: the init alone cancels his event
	if time.Since(start) > grace {
		t.Skipf("bob's init came %v after the kill, past the grace period: nothing to check", time.Since(start))
	}

	// The row is anyone's after the grace period, a batch window and the 5 s
	// given to its holder: wait most of that before polling.
	time.Sleep(time.Until(start.Add(grace + 4*time.Second)))
	eventually(t, "carol's event sent by the surviving node", func() bool { return len(rcv.taken()) >= 1 })
	eventually(t, "the outbox emptied", func() bool { return survivor.outboxRows() == 0 })
	got := rcv.taken()
	if len(got) != 1 || got[0].Account != "carol" || got[0].Count != 1 {
		t.Fatalf("events = %+v; want one for carol, count 1 (bob connected within the grace period)", got)
	}
	if posts, bad := rcv.stats(); posts != 1 || bad != 0 {
		t.Fatalf("posts = %d (bad signatures %d); want 1", posts, bad)
	}
	if n := survivor.metric("chat_notify_cancelled_total"); n != 1 {
		t.Fatalf("chat_notify_cancelled_total on the surviving node = %v; want 1 (bob's held row)", n)
	}
}

// A node that stops (SIGTERM) with an event in its grace period writes its
// newest batch into the row; started again, it sends it once due.
func TestNotifyHeldEventSentAfterRestart(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	const grace = 2 * time.Second
	ts := startServer(t, "redis+mariadb", notifyConfig(rcv, grace, 100*time.Millisecond))
	alice, _ := login(t, ts, "alice", "")
	stored := time.Now()
	for _, c := range []string{"one", "two", "three"} {
		alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"` + c + `"}`)
	}
	alice.sync()
	eventually(t, "bob's event held", func() bool { return ts.outboxRows() == 1 })
	cfg := ts.cfg
	if err := ts.close(t.Context()); err != nil {
		t.Fatalf("close: %v", err)
	}
	again := runServer(t, cfg)
	time.Sleep(time.Until(stored.Add(grace + 4*time.Second))) // as above
	eventually(t, "bob's event after the restart", func() bool { return len(rcv.taken()) >= 1 })
	eventually(t, "the outbox emptied", func() bool { return again.outboxRows() == 0 })
	got := rcv.taken()
	if len(got) != 1 || got[0].Account != "bob" || got[0].Count != 3 {
		t.Fatalf("events = %+v; want one for bob with count 3", got)
	}
}

// A message to an account connected on a node that does not answer (frozen)
// is stored by the sender's node once the confirmation times out, and makes an
// event there: once the frozen node's liveness key has expired, the account
// map no longer counts its connection, and the event is posted.
func TestNotifyMessageStoredAfterRemoteTimeout(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	const grace = 8 * time.Second // past the frozen node's 6 s liveness TTL
	nodes := startCluster(t, 1, notifyConfig(rcv, grace, 100*time.Millisecond))
	n1 := nodes[0]
	frozen, url := notifyProc(t, n1, buildServer(t), "n7", rcv, grace)

	carol := dial(t, url)
	carol.send(`{"flag":"init","from":"carol"}`)
	carol.sync()
	eventually(t, "carol online on the other node", func() bool { return n1.online("carol") })
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	alice, _ := login(t, n1, "alice", "")
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"are you there","cid":"1"}`)
	if f := alice.next(10 * time.Second); f["status"] != "stored" {
		t.Fatalf("ack of the message to carol on the frozen node: %v; want stored", f)
	}
	stored := time.Now()
	time.Sleep(time.Until(stored.Add(grace - time.Second)))
	eventually(t, "carol's event", func() bool { return len(rcv.taken()) >= 1 })
	got := rcv.taken()
	if len(got) != 1 || got[0].Account != "carol" || got[0].Count != 1 {
		t.Fatalf("events = %+v; want one for carol, count 1", got)
	}
}
