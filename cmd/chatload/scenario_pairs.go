package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// pairs runs -pairs one-to-one streams for -duration and reports delivered
// msg/s, latency and loss. Both ends of a pair live in the same worker.
func (c *coord) pairs(ctx context.Context) error {
	cfg := c.cfg
	n := len(c.pool.procs)
	lists := make([][]string, n)
	specs := make([][]pairSpec, n)
	for i := range cfg.pairs {
		s, r := cfg.prefix+"s"+strconv.Itoa(i), cfg.prefix+"r"+strconv.Itoa(i)
		lists[i%n] = append(lists[i%n], s, r)
		specs[i%n] = append(specs[i%n], pairSpec{From: s, To: r})
	}
	c.setPhase("pairs: connecting")
	if _, err := c.connect(ctx, lists); err != nil {
		return err
	}
	c.setPhase("pairs: sending")
	var (
		mu    sync.Mutex
		agg   = &flowStat{}
		h     hist
		pings pingAgg
	)
	if err := c.signalFault(syscall.SIGUSR1); err != nil {
		return err
	}
	cpu := c.startCPU()
	err := c.pool.all(func(i int, wp *workerProc) error {
		if len(specs[i]) == 0 {
			return nil
		}
		run := &pairsParams{
			Rate:   cfg.rate * float64(len(specs[i])) / float64(cfg.pairs),
			Window: cfg.window, Duration: int64(cfg.duration), Grace: int64(cfg.grace),
			PingConns: share(cfg.pingConns, n, i), PingEvery: int64(cfg.pingEvery),
		}
		res, err := wp.call(ctx, "pairs", args{Pairs: specs[i], Run: run})
		if err != nil {
			return err
		}
		mu.Lock()
		agg.merge(res.Flow)
		h.merge(res.Flow.Hist, res.Flow.MaxLatNs)
		pings.add(res.Flow.Ping)
		mu.Unlock()
		return nil
	})
	if ferr := c.signalFault(syscall.SIGUSR2); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	c.res.CPU = cpu.stop(agg.Unique + agg.Dup)
	r := &pairsResult{
		Pairs: cfg.pairs, Rate: cfg.rate, DurationS: cfg.duration.Seconds(),
		Sent: agg.Sent, Delivered: agg.Unique, Lost: agg.Sent - agg.Unique, Duplicated: agg.Dup,
		OutOfOrder: agg.OutOfOrder, WrongFrom: agg.WrongFrom, Behind: agg.Behind, Skipped: agg.Skipped,
		LatP50ms: ms(h.quantile(0.50)), LatP99ms: ms(h.quantile(0.99)), LatMaxMs: ms(time.Duration(h.max)),
	}
	if cfg.rate == 0 {
		r.Window = cfg.window
	}
	if cfg.pingConns > 0 {
		r.Ping = pings.result(cfg.pingEvery)
	}
	if d := time.Duration(agg.LastSendNs - agg.FirstSendNs); d > 0 {
		r.SentPerSec = float64(agg.Sent) / d.Seconds()
	}
	if d := time.Duration(agg.LastRecvNs - agg.FirstSendNs); d > 0 {
		r.DeliveredPerSec = float64(agg.Unique) / d.Seconds()
	}
	c.res.Pairs = r
	return nil
}

// share is worker i's part of total spread over n workers.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// signalFault tells the -fault-pid process that the sending phase starts
// (SIGUSR1) or is over (SIGUSR2), so a fault is on exactly while it runs.
func (c *coord) signalFault(sig syscall.Signal) error {
	if c.cfg.faultPID == 0 {
		return nil
	}
	if err := syscall.Kill(c.cfg.faultPID, sig); err != nil {
		return fmt.Errorf("-fault-pid %d: %s: %w", c.cfg.faultPID, sig, err)
	}
	return nil
}

// merge adds another worker's flow summary (histograms are merged apart).
func (a *flowStat) merge(b *flowStat) {
	a.Sent += b.Sent
	a.Expected += b.Expected
	a.Unique += b.Unique
	a.Dup += b.Dup
	a.OutOfOrder += b.OutOfOrder
	a.WrongFrom += b.WrongFrom
	a.Behind += b.Behind
	a.Skipped += b.Skipped
	a.FirstSendNs = minNonZero(a.FirstSendNs, b.FirstSendNs)
	a.LastSendNs = max(a.LastSendNs, b.LastSendNs)
	a.LastRecvNs = max(a.LastRecvNs, b.LastRecvNs)
	a.MaxLatNs = max(a.MaxLatNs, b.MaxLatNs)
}
