package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/config"
	"chatserver/internal/app"
)

// startCluster runs n nodes in this process against one Redis (one key prefix)
// and one MariaDB database. mutate, if given, changes every node's configuration.
func startCluster(t *testing.T, n int, mutate ...func(*config.Config)) []*testServer {
	t.Helper()
	first := startServer(t, "redis+mariadb", func(c *config.Config) {
		c.Node = "n1"
		c.Cluster.Enabled = true
		for _, m := range mutate {
			m(c)
		}
	})
	nodes := []*testServer{first}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, startServer(t, "redis+mariadb", func(c *config.Config) {
			c.Node = fmt.Sprint("n", i)
			c.Cluster.Enabled = true
			c.MySQL.DSN = first.cfg.MySQL.DSN
			c.Redis.KeyPrefix = first.cfg.Redis.KeyPrefix
			for _, m := range mutate {
				m(c)
			}
		}))
	}
	// Every node subscribed (announcements and orders) and alive before the
	// test speaks.
	rdb := redis.NewClient(&redis.Options{Addr: first.cfg.Redis.Addr})
	defer rdb.Close()
	all, control := first.cfg.Redis.KeyPrefix+"all", first.cfg.Redis.KeyPrefix+"control"
	eventually(t, "all nodes subscribed", func() bool {
		got, _ := rdb.PubSubNumSub(context.Background(), all, control).Result()
		return got[all] == int64(n) && got[control] == int64(n)
	})
	return nodes
}

// TestClusterRouting: msg, group and all reach accounts wherever they are
// connected, each connection once, in order; an account connected on two nodes
// gets the message on both; offline members get one row each.
func TestClusterRouting(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	alice, _ := login(t, nodes[0], "alice", "")
	bob, _ := login(t, nodes[1], "bob", "")
	bobPhone, _ := login(t, nodes[2], "bob", "")
	carol, _ := login(t, nodes[2], "carol", "")
	admin, _ := login(t, nodes[1], "admin", "")
	eventually(t, "entries in Redis", func() bool {
		return nodes[0].online("carol")
	})

	// msg across nodes, in order, to both of bob's connections.
	for i := 0; i < 100; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": fmt.Sprint(i)})
	}
	for _, c := range []*client{bob, bobPhone} {
		for i := 0; i < 100; i++ {
			if f := c.next(5 * time.Second); f["content"] != fmt.Sprint(i) || f["from"] != "alice" {
				t.Fatalf("bob's message %d = %v", i, f)
			}
		}
	}
	// Reply the other way.
	carol.send(`{"flag":"msg","from":"carol","to":"alice","content":"hi from n3"}`)
	if f := alice.next(5 * time.Second); f["content"] != "hi from n3" {
		t.Fatalf("alice got %v", f)
	}

	// group across nodes, with an offline member.
	nodes[0].mustAddMembers("team", []string{"alice", "bob", "carol", "dave"})
	alice.send(`{"flag":"group","from":"alice","to":"team","content":"standup","cid":"g1"}`)
	if f := alice.next(5 * time.Second); f["flag"] != "ack" {
		t.Fatalf("alice got %v; want the ack", f)
	}
	for i, c := range []*client{bob, bobPhone, carol} {
		if f := c.next(5 * time.Second); f["group"] != "team" || f["content"] != "standup" {
			t.Fatalf("member connection %d got %v", i, f)
		}
	}
	eventually(t, "one row for offline dave", func() bool { return nodes[0].unsent("dave", "alice") == 1 })
	if n := nodes[0].unsent("bob", "") + nodes[0].unsent("carol", ""); n != 0 {
		t.Fatalf("%d rows stored for members connected elsewhere", n)
	}

	// all from n2 reaches every connection on every node once.
	for i := range nodes {
		nodes[i].cfg.Broadcast.Allowed = []string{"admin"}
	}
	code, _ := nodes[1].api("POST", "/api/broadcast", map[string]string{"from": "admin", "content": "notice"})
	if code != 200 {
		t.Fatalf("broadcast = %d", code)
	}
	for i, c := range []*client{alice, bob, bobPhone, carol, admin} {
		if f := c.next(5 * time.Second); f["flag"] != "all" || f["content"] != "notice" {
			t.Fatalf("connection %d got %v", i, f)
		}
	}
	for i, c := range []*client{alice, bob, carol} {
		c.send(`{"flag":"ping"}`)
		if f := c.next(5 * time.Second); f["flag"] != "pong" {
			t.Fatalf("connection %d got a second copy: %v", i, f)
		}
	}
}

// TestClusterNodeKilled: a node is SIGKILLed while its account is receiving;
// every message sent after the kill is stored and delivered once, in order, when
// the client reconnects to another node and inits; the node, restarted with the
// same id, leaves no stale entry.
func TestClusterNodeKilled(t *testing.T) {
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
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: first.cfg.Redis.Addr})
	defer rdb.Close()
	key := first.cfg.Redis.KeyPrefix + "acct:carol"

	alice, _ := login(t, first, "alice", "")
	carol := dial(t, "ws://"+addr3+"/")
	carol.send(`{"flag":"init","from":"carol"}`)
	carol.sync()
	eventually(t, "carol registered on n3", func() bool { return rdb.HLen(ctx, key).Val() == 1 })
	// Acknowledged "pushed" means n3 answered: it is not stored as well. (A
	// node killed between writing a message and answering leaves it to the
	// sender, which stores it: the receiver may see it twice, with one id.)
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"before","cid":"before"}`)
	if f := alice.next(5 * time.Second); f["status"] != "pushed" {
		t.Fatalf("ack of the message to carol on n3: %v; want pushed", f)
	}
	if f := carol.next(5 * time.Second); f["content"] != "before" {
		t.Fatalf("carol on n3 got %v", f)
	}

	n3.kill()
	time.Sleep(300 * time.Millisecond) // Redis notices the dead subscriber
	const n = 50
	for i := 0; i < n; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "carol", "content": fmt.Sprint(i), "cid": fmt.Sprint(i)})
		if f := alice.next(5 * time.Second); f["status"] != "stored" {
			t.Fatalf("message %d after the kill: %v; want stored", i, f)
		}
	}
	// n3's entry stays in the map until met after its liveness key expired;
	// online answers from live nodes only.
	eventually(t, "carol reported offline once n3 is dead", func() bool { return !first.online("carol") })
	carol2, got := login(t, nodes[1], "carol", "")
	if len(got) != n {
		t.Fatalf("carol, reconnected to n2, got %d messages; want %d", len(got), n)
	}
	for i, f := range got {
		if f["content"] != fmt.Sprint(i) {
			t.Fatalf("message %d = %v: lost, duplicated or out of order", i, f)
		}
	}
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"live on n2"}`)
	if f := carol2.next(5 * time.Second); f["content"] != "live on n2" {
		t.Fatalf("carol on n2 got %v", f)
	}

	startProc(t, bin, env, addr3) // n3 again, same id
	eventually(t, "n3's stale entry gone", func() bool {
		fields := rdb.HKeys(ctx, key).Val()
		return len(fields) == 1 && fields[0][:3] == "n2|"
	})
}

// TestNodesStartTogether: three nodes started at the same moment on a fresh
// database all come up (one migrates, the others wait on its lock).
func TestNodesStartTogether(t *testing.T) {
	t.Parallel()
	base := startServer(t, "redis+mariadb", nil) // makes the database and prefix
	dsn, prefix := base.cfg.MySQL.DSN, base.cfg.Redis.KeyPrefix
	db := base.db()
	if _, err := db.Exec("DROP TABLE app_offline, app_group_member"); err != nil {
		t.Fatal(err)
	}
	type started struct {
		a   *app.App
		err error
	}
	done := make(chan started, 3)
	for i := 0; i < 3; i++ {
		go func() {
			cfg := base.cfg
			cfg.Node, cfg.Cluster.Enabled = fmt.Sprint("together", i), true
			cfg.Server.Addr, cfg.API.Addr = "127.0.0.1:0", "127.0.0.1:0"
			cfg.MySQL.DSN, cfg.Redis.KeyPrefix = dsn, prefix
			cfg.Offline.SpoolPath = t.TempDir() + "/spool.db"
			a, err := app.Start(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)), assets())
			done <- started{a, err}
		}()
	}
	var nodes []*app.App
	for i := 0; i < 3; i++ {
		s := <-done
		if s.err != nil {
			t.Fatalf("a node failed to start next to the others: %v", s.err)
		}
		nodes = append(nodes, s.a)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.a.Close(ctx)
		})
	}
	// The migrations ran once: each index they add exists, once.
	idx := map[string]int{}
	rows, err := db.Query("SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'app_offline'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		idx[name]++
	}
	rows.Close()
	if idx["idx_to_status"] != 1 || idx["uniq_to_msg_id"] != 1 {
		t.Fatalf("indexes of the recreated table: %v; want idx_to_status and uniq_to_msg_id once each", idx)
	}
	// The nodes work together: alice on one reaches bob on another live, and a
	// message for an account nobody holds is stored once.
	url := func(a *app.App) string { return "ws://" + a.Addr() + "/" }
	alice, bob := dial(t, url(nodes[0])), dial(t, url(nodes[2]))
	alice.send(`{"flag":"init","from":"alice"}`)
	alice.sync()
	bob.send(`{"flag":"init","from":"bob"}`)
	bob.sync()
	eventually(t, "bob seen online from alice's node", func() bool {
		alice.send(`{"flag":"online","to":"bob"}`)
		return alice.next(5 * time.Second)["online"] == true
	})
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"across","cid":"1"}`)
	if ack := alice.next(5 * time.Second); ack["status"] != "pushed" {
		t.Fatalf("message to bob on another node: %v; want pushed", ack)
	}
	if f := bob.next(5 * time.Second); f["content"] != "across" {
		t.Fatalf("bob got %v; want the message from the other node", f)
	}
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"later","cid":"2"}`)
	if ack := alice.next(5 * time.Second); ack["status"] != "stored" {
		t.Fatalf("message to offline carol: %v; want stored", ack)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM app_offline WHERE `to` = 'carol'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("carol's rows: %d, %v; want exactly 1", n, err)
	}
}
