package e2e

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestOfflineOnlineBoundary is the race the legacy server lost messages in:
// 100 messages A->B are sent while B is offline, then 100 more are being sent
// while B connects and inits. B must receive all 200 exactly once, in send
// order, and no row of the pair may be left unsent. It runs many rounds on each
// backend (CHAT_TEST_BOUNDARY_ROUNDS overrides the count).
//
// It is the one end-to-end test that does not run in parallel: it needs the
// machine to itself for its rounds to land on the drain (it fails when none
// does), so it runs before the parallel tests start.
func TestOfflineOnlineBoundary(t *testing.T) {
	rounds := 25
	if s := os.Getenv("CHAT_TEST_BOUNDARY_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			crossed, r := 0, 0
			// A busy machine can have every send land before the init's
			// drain: up to three times the rounds until one crosses.
			for ; r < rounds || (crossed == 0 && r < 3*rounds); r++ {
				if n := boundaryRound(t, ts, ts, r); n < 200 {
					crossed++
				}
			}
			t.Logf("%d of %d rounds had messages pushed live after the drain", crossed, r)
			if crossed == 0 && rounds >= 10 {
				t.Fatal("no round crossed the offline->online boundary: the test did not test the race")
			}
		})
	}
}

// TestClusterOfflineOnlineBoundary is the same race across nodes: the sender
// on node 1, the receiver initing on node 2 while node 1 sends. Every message
// arrives once, in order, from that one init (none is left for a later one).
// Not parallel, for the same reason.
func TestClusterOfflineOnlineBoundary(t *testing.T) {
	rounds := 20
	if s := os.Getenv("CHAT_TEST_BOUNDARY_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	nodes := startCluster(t, 2)
	crossed, r := 0, 0
	for ; r < rounds || (crossed == 0 && r < 3*rounds); r++ {
		if n := boundaryRound(t, nodes[0], nodes[1], r); n < 200 {
			crossed++
		}
	}
	t.Logf("%d of %d rounds had messages pushed live after the drain", crossed, r)
	if crossed == 0 && rounds >= 10 {
		t.Fatal("no round crossed the offline->online boundary: the test did not test the race")
	}
}

// boundaryRound runs one round and returns how many of the 200 messages arrived
// before init's drain was over (the rest were pushed live).
func boundaryRound(t *testing.T, senderNode, ts *testServer, round int) (beforePong int) {
	t.Helper()
	a, b := fmt.Sprint("A", round), fmt.Sprint("B", round)
	sender, _ := login(t, senderNode, a, "")
	send := func(i int) {
		sender.sendJSON(map[string]string{"flag": "msg", "from": a, "to": b, "content": strconv.Itoa(i)})
	}
	for i := 0; i < 100; i++ {
		send(i)
	}
	// The second hundred is paced over some milliseconds; the receiver connects
	// after a round-dependent number of them, so that rounds hit the drain at
	// different moments.
	connectAt := 100 + (round*7)%100
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 100; i < 200; i++ {
			if i == connectAt {
				close(ready)
			}
			send(i)
			// Paced so that the sending outlasts the drain (a few
			// milliseconds) in most rounds: the end of the drain then
			// falls among these messages.
			time.Sleep(time.Duration(100+round%4*200) * time.Microsecond)
		}
		if connectAt >= 200 {
			close(ready)
		}
	}()
	<-ready
	recv := dial(t, ts.url)
	recv.sendJSON(map[string]string{"flag": "init", "from": b, "to": a})
	recv.send(`{"flag":"ping"}`) // its pong marks the end of the drain
	wg.Wait()

	seen := make(map[string]int, 200)
	for i := 0; i < 200; i++ {
		f := recv.next(15 * time.Second)
		if f["flag"] == "pong" {
			beforePong = i
			f = recv.next(15 * time.Second)
		}
		c, _ := f["content"].(string)
		if f["from"] != a {
			t.Fatalf("round %d: unexpected frame %v", round, f)
		}
		seen[c]++
		if seen[c] > 1 {
			t.Fatalf("round %d: message %s delivered twice", round, c)
		}
		if c != strconv.Itoa(i) {
			t.Fatalf("round %d: frame %d is message %s; want %d (order broken)", round, i, c, i)
		}
	}
	eventually(t, "no unsent row for the pair", func() bool { return ts.unsent(b, a) == 0 })
	_ = recv.ws.Close()
	_ = sender.ws.Close()
	if beforePong == 0 {
		beforePong = 200
	}
	return beforePong
}
