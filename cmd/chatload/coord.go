package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
)

// coord runs one scenario from the coordinator process.
type coord struct {
	cfg   *config
	pool  *pool
	log   io.Writer
	res   *result
	pmu   sync.Mutex // guards phase
	phase string
	start time.Time
}

func runScenario(ctx context.Context, cfg *config, log io.Writer) (*result, error) {
	total := scenarioConns(cfg)
	n := cfg.workers
	if n <= 0 {
		n = (total + cfg.perWorker - 1) / cfg.perWorker
	}
	n = max(1, min(n, total))
	switch {
	case len(cfg.srcIPs) == 1 && cfg.srcIPs[0] == "off":
		cfg.srcIPs = nil
	case cfg.srcIPs == nil:
		cfg.srcIPs = autoSrcIPs(strings.Split(cfg.addr, ",")[0], total)
	}
	p, err := startPool(ctx, n, log)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	c := &coord{cfg: cfg, pool: p, log: log, start: time.Now(),
		res: &result{Scenario: cfg.scenario, Target: cfg.addr + cfg.path, Prefix: cfg.prefix, Workers: n}}
	if err := c.setup(ctx); err != nil {
		return nil, err
	}
	pctx, stopProgress := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.progress(pctx) }()
	switch cfg.scenario {
	case "idle":
		err = c.idle(ctx)
	case "broadcast":
		err = c.broadcast(ctx)
	case "pairs":
		err = c.pairs(ctx)
	case "offline":
		err = c.offline(ctx)
	case "handover":
		err = c.handover(ctx)
	}
	stopProgress()
	<-done
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, serr := p.status(sctx); serr == nil {
		c.res.Client = st
	}
	c.res.ElapsedS = time.Since(c.start).Seconds()
	return c.res, err
}

// scenarioConns is how many connections the scenario opens in total.
func scenarioConns(cfg *config) int {
	switch cfg.scenario {
	case "idle":
		if len(cfg.steps) > 0 {
			return cfg.steps[len(cfg.steps)-1]
		}
	case "pairs":
		return 2 * cfg.pairs
	case "offline":
		return 2 * cfg.accounts
	}
	return cfg.conns
}

// autoSrcIPs spreads connections to a loopback target over several source
// addresses, one per 5,000 connections. One source has 28k ephemeral ports
// per target, connect() slows down as they fill, and a previous run's
// TIME_WAIT sockets hold theirs for 60 s: so each run picks a random
// 127.a.b.0/24 block.
func autoSrcIPs(addr string, total int) []string {
	const perIP = 5000
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if total <= perIP || ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil
	}
	a, b := 1+rand.IntN(254), rand.IntN(256)
	var out []string
	for i := 1; i <= min((total+perIP-1)/perIP, 254); i++ {
		out = append(out, fmt.Sprintf("127.%d.%d.%d", a, b, i))
	}
	return out
}

func (c *coord) setup(ctx context.Context) error {
	s := &setupArgs{
		Addr: c.cfg.addr, Path: c.cfg.path, SrcIPs: c.cfg.srcIPs, DialConc: c.cfg.dialConc, TLS: c.cfg.tls, Insecure: c.cfg.insecure,
		ConnectTimeout: int64(c.cfg.connectTimeout), InitWait: int64(c.cfg.initWait),
		Heartbeat: int64(c.cfg.heartbeat), AppHeartbeat: c.cfg.appHeartbeat, Size: c.cfg.size,
		AckInit: c.cfg.scenario == "handover", Proto: c.cfg.protocol,
	}
	if s.Proto == protoCentrifugo {
		s.Heartbeat = 0 // Centrifugo pings every client itself; the worker answers
	}
	return c.pool.all(func(_ int, wp *workerProc) error {
		_, err := wp.call(ctx, "setup", args{Setup: s})
		return err
	})
}

func (c *coord) setPhase(format string, a ...any) {
	c.pmu.Lock()
	c.phase = fmt.Sprintf(format, a...)
	c.pmu.Unlock()
}

// connect opens the given accounts (one list per worker) concurrently and
// adds the outcome to the result's connect statistics.
func (c *coord) connect(ctx context.Context, lists [][]string) (*connectStats, error) {
	st := &connectStats{}
	var mu sync.Mutex
	start := time.Now()
	offset := 0
	offsets := make([]int, len(lists))
	for i, l := range lists {
		offsets[i] = offset
		offset += len(l)
		st.Attempted += len(l)
	}
	err := c.pool.all(func(i int, wp *workerProc) error {
		if i >= len(lists) || len(lists[i]) == 0 {
			return nil
		}
		res, err := wp.call(ctx, "connect", args{Accounts: lists[i], IPOffset: offsets[i]})
		if err != nil {
			return err
		}
		mu.Lock()
		st.OK += res.Conn.OK
		st.Failed += res.Conn.Failed
		if st.FirstError == "" {
			st.FirstError = res.Conn.FirstErr
		}
		mu.Unlock()
		return nil
	})
	st.Seconds = time.Since(start).Seconds()
	if st.Seconds > 0 {
		st.PerSec = float64(st.OK) / st.Seconds
	}
	c.res.Connect = c.res.Connect.plus(st)
	if err == nil && st.OK == 0 && st.Attempted > 0 {
		err = fmt.Errorf("no connection succeeded: %s", st.FirstError)
	}
	return st, err
}

// spread assigns account i to worker i % n.
func spread(n int, count int, name func(i int) string) [][]string {
	lists := make([][]string, n)
	for i := range count {
		lists[i%n] = append(lists[i%n], name(i))
	}
	return lists
}

// cpuMeter measures the server's CPU time over a phase (all -pid processes
// together; without -pid only the client's), and the worker processes' for
// comparison: on one box they share the cores.
type cpuMeter struct {
	pids    []int
	workers []int
	start   float64
	wstart  float64
	err     error
}

func (c *coord) startCPU() *cpuMeter {
	m := &cpuMeter{pids: c.cfg.pids}
	for _, wp := range c.pool.procs {
		m.workers = append(m.workers, wp.cmd.Process.Pid)
	}
	if len(m.pids) > 0 {
		m.start, m.err = totalCPU(m.pids)
	}
	m.wstart = sumCPU(m.workers)
	return m
}

// sumCPU sums the CPU time of the processes it can still read (workers).
func sumCPU(pids []int) float64 {
	var sum float64
	for _, p := range pids {
		if s, err := readCPU(p); err == nil {
			sum += s
		}
	}
	return sum
}

func (m *cpuMeter) stop(delivered int64) *cpuResult {
	r := &cpuResult{Delivered: delivered, ClientSeconds: sumCPU(m.workers) - m.wstart}
	if len(m.pids) > 0 && m.err == nil {
		if end, err := totalCPU(m.pids); err == nil {
			r.Seconds, r.Processes = end-m.start, len(m.pids)
		}
	}
	if delivered > 0 {
		r.PerThousand = r.Seconds / float64(delivered) * 1000
	}
	return r
}

// progress prints one status line per second to the log until ctx ends.
func (c *coord) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prevRecv int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
		st, err := c.pool.status(sctx)
		cancel()
		if err != nil {
			continue
		}
		c.pmu.Lock()
		phase := c.phase
		c.pmu.Unlock()
		recv := st.Recv + st.BcastIn
		var errs int64
		for _, v := range st.Errors {
			errs += v
		}
		fmt.Fprintf(c.log, "chatload %5.0fs %-28s open=%d failed=%d sent=%d recv=%d (%d/s) server-errors=%d unexpected=%d\n",
			time.Since(c.start).Seconds(), phase, st.Open, st.Failed, st.Sent, recv, recv-prevRecv, errs, st.Unexpected)
		prevRecv = recv
	}
}
