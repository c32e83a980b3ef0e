package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// campaignConfig is one run of the campaign over some setups.
type campaignConfig struct {
	seed     uint64
	duration time.Duration // of the fault phase, per setup
	setups   []string      // single, cluster
	faults   []string
	bin      string
	out      string
	mysqlDSN string
	redis    string
	keep     bool
	log      io.Writer // progress lines
}

// setupNodes is how many nodes each setup has.
var setupNodes = map[string]int{"single": 1, "cluster": 3}

// runCampaign runs every setup at the same time and returns their results.
func runCampaign(ctx context.Context, c campaignConfig) ([]*Result, error) {
	for _, name := range c.setups {
		if _, ok := setupNodes[name]; !ok {
			return nil, fmt.Errorf("-setups: unknown setup %q (single, cluster)", name)
		}
	}
	fmt.Fprintf(c.log, "chaos: seed %d, %s of faults per setup, setups %s, faults %s\n", c.seed, c.duration, strings.Join(c.setups, ","), strings.Join(c.faults, ","))
	fmt.Fprintf(c.log, "chaos: replay with -seed %d\n", c.seed)
	scheds := map[string][]Fault{}
	for _, name := range c.setups {
		scheds[name] = makeSchedule(setupRand(c.seed, name), c.duration, setupNodes[name], c.faults)
		printSchedule(c.log, name, c.seed, scheds[name])
	}
	results := make([]*Result, len(c.setups))
	errs := make([]error, len(c.setups))
	var wg sync.WaitGroup
	for i, name := range c.setups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = runSetup(ctx, c, name, scheds[name])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return results, fmt.Errorf("setup %s: %w", c.setups[i], err)
		}
	}
	return results, nil
}

// workload is the clients of one setup.
type workload struct {
	clients   []*client
	senders   []*client
	receivers []*client
	api       *apiPusher
	members   []string
}

func buildWorkload(s *setup, seed uint64, stopSend <-chan struct{}) *workload {
	w := &workload{members: []string{"gs", "gm1", "gm2", "gm3"}}
	add := func(acct string, r role, receiver bool) {
		c := newClient(s, acct, r, seed, stopSend)
		w.clients = append(w.clients, c)
		if r.to != "" || r.group != "" {
			w.senders = append(w.senders, c)
		}
		if receiver {
			w.receivers = append(w.receivers, c)
		}
	}
	for i := 1; i <= 3; i++ {
		add(fmt.Sprintf("s%d", i), role{ack: true, to: fmt.Sprintf("r%d", i), rate: 300 * time.Millisecond, idPrefix: "m"}, false)
		add(fmt.Sprintf("r%d", i), role{ack: true, churn: true}, true)
	}
	add("gs", role{ack: true, group: "g1", rate: 500 * time.Millisecond, idPrefix: "g"}, false)
	for _, m := range w.members[1:] {
		add(m, role{ack: true, churn: true}, true)
	}
	add("ra", role{ack: true, churn: true}, true)
	for i := 1; i <= 2; i++ {
		add(fmt.Sprintf("ls%d", i), role{to: fmt.Sprintf("lr%d", i), rate: 500 * time.Millisecond, idPrefix: "l"}, false)
		add(fmt.Sprintf("lr%d", i), role{churn: true}, true)
	}
	w.api = &apiPusher{from: "api", to: "ra", s: s, rng: setupRand(seed, s.name+"/api"), rate: 400 * time.Millisecond}
	return w
}

// runSetup runs one setup from start to report; whatever happens, it stops
// every process and removes the database it made.
func runSetup(ctx context.Context, c campaignConfig, name string, sched []Fault) (*Result, error) {
	dir := filepath.Join(c.out, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(c.log, "chaos %s: %s\n", name, fmt.Sprintf(format, args...))
	}
	rec, err := newRecorder(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	defer rec.Close()
	s, err := startSetup(ctx, setupConfig{name: name, nodes: setupNodes[name], cluster: name == "cluster", bin: c.bin, dir: dir, mysqlDSN: c.mysqlDSN, redis: c.redis, keep: c.keep}, rec)
	if err != nil {
		return nil, err
	}
	logf("%d node(s) up, database %s, redis %s (private %v); logs in %s", len(s.nodes), s.db.name, s.redis.addr, s.redis.private, dir)
	closed := false
	defer func() {
		if !closed {
			_ = s.close()
		}
	}()

	if err := drive(ctx, s, c, sched, logf); err != nil {
		return nil, err
	}
	// Stop everything, then look at how the nodes ended.
	closed = true
	if err := s.close(); err != nil {
		s.note("cleanup: %v", err)
	}
	for i, n := range s.nodes {
		for _, line := range n.scanLog() {
			rec.Add(Event{Kind: evLogPanic, Node: i, Detail: line})
		}
	}
	_ = rec.Close()
	res := Check(rec.Events(), name, c.seed, c.duration)
	for _, n := range s.nodes {
		res.Logs = append(res.Logs, n.logPath)
	}
	res.History = filepath.Join(dir, "history.jsonl")
	return res, nil
}

// drive runs the workload, the faults and the final quiet phase.
func drive(ctx context.Context, s *setup, c campaignConfig, sched []Fault, logf func(string, ...any)) error {
	stopSend := make(chan struct{})
	w := buildWorkload(s, c.seed, stopSend)
	s.rec.Add(Event{Kind: evGroup, Group: "g1", Node: -1, Detail: strings.Join(w.members, ",")})
	if err := s.makeGroup(ctx, "g1", w.members); err != nil {
		return err
	}
	cctx, cancelClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancelClients()
		waitGroup(&wg, 15*time.Second)
	}()
	for _, cl := range w.clients {
		wg.Add(1)
		go func() { defer wg.Done(); cl.run(cctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); w.api.run(cctx, stopSend) }()

	if !waitFor(ctx, 30*time.Second, func() bool { return allOnline(w.clients) }) {
		return fmt.Errorf("clients not online within 30 s (logs in %s)", s.dir)
	}
	sleep(ctx, 5*time.Second)
	s.sampleResources(ctx, "warm")

	s.rec.Add(Event{Kind: evPhase, Node: -1, Detail: "faults"})
	logf("faults for %s (%d scheduled)", c.duration, len(sched))
	fctx, cancelFaults := context.WithTimeout(ctx, c.duration+30*time.Second)
	s.runSchedule(fctx, sched)
	cancelFaults()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	s.rec.Add(Event{Kind: evPhase, Node: -1, Detail: "heal"})
	logf("healing")
	hctx, cancelHeal := context.WithTimeout(ctx, 60*time.Second)
	err := s.healAll(hctx)
	cancelHeal()
	if err != nil {
		return err
	}
	if !waitFor(ctx, 90*time.Second, func() bool { ok, _ := s.settled(ctx); return ok }) {
		_, why := s.settled(ctx)
		s.note("not settled 90 s after healing: %s", why)
	}

	// Final: no new messages; every client connects afresh and inits; senders
	// resend what is unacknowledged; wait until nothing moves.
	close(stopSend)
	s.rec.Add(Event{Kind: evPhase, Node: -1, Detail: "final"})
	logf("final: reconnect everyone, wait until quiet")
	for _, cl := range w.clients {
		cl.reconnect()
	}
	if why := waitQuiet(ctx, s, w, 120*time.Second); why != "" {
		s.note("final phase not quiet after 120 s: %s", why)
	}
	// One more init for every receiver: what is still stored must come now.
	s.rec.Add(Event{Kind: evPhase, Node: -1, Detail: "drained"})
	for _, cl := range w.receivers {
		cl.reconnect()
	}
	sleep(ctx, 2*time.Second)
	if why := waitQuiet(ctx, s, w, 60*time.Second); why != "" {
		s.note("drain phase not quiet after 60 s: %s", why)
	}
	s.sampleResources(ctx, "end")
	rows, err := s.db.pendingRows(ctx)
	if err != nil {
		s.note("%v", err)
	}
	for _, r := range rows {
		s.rec.Add(r)
	}
	s.rec.Add(Event{Kind: evPhase, Node: -1, Detail: "done"})
	logf("done; checking")
	return ctx.Err()
}

// waitQuiet waits until every client is online, no sender has anything
// unacknowledged, no message arrived for 3 s and the nodes have written
// everything; it returns what was still moving at the deadline.
func waitQuiet(ctx context.Context, s *setup, w *workload, d time.Duration) string {
	why := ""
	ok := waitFor(ctx, d, func() bool {
		if !allOnline(w.clients) {
			why = "clients not online"
			return false
		}
		for _, cl := range w.senders {
			if n := cl.pending(); n > 0 && cl.role.ack {
				why = fmt.Sprintf("%s has %d unacknowledged", cl.acct, n)
				return false
			}
		}
		for _, cl := range w.receivers {
			if time.Since(cl.lastReceive()) < 3*time.Second {
				why = cl.acct + " still receiving"
				return false
			}
		}
		var settled bool
		settled, why = s.settled(ctx)
		return settled
	})
	if ok {
		return ""
	}
	return why
}

func allOnline(cs []*client) bool {
	for _, c := range cs {
		if !c.isOnline() {
			return false
		}
	}
	return true
}

// waitFor polls cond every 250 ms until it holds, d passes or ctx ends.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// makeGroup sets the group's members through the side API of node 0.
func (s *setup) makeGroup(ctx context.Context, id string, members []string) error {
	body := `{"accounts":[` + quoteJSON(members[0])
	for _, m := range members[1:] {
		body += "," + quoteJSON(m)
	}
	body += "]}"
	var last string
	ok := waitFor(ctx, 20*time.Second, func() bool {
		code, resp, err := s.api(ctx, 0, http.MethodPut, "/api/group/"+id+"/members", body, 5*time.Second)
		last = fmt.Sprintf("%d %s %v", code, resp, err)
		return err == nil && code == http.StatusOK
	})
	if !ok {
		return fmt.Errorf("PUT /api/group/%s/members: %s", id, last)
	}
	return nil
}
