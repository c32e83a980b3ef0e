package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

const heapMetric = "go_memstats_heap_inuse_bytes"

// idle opens connections step by step; with -pid it samples the server's
// RSS (all its processes together) after each step once it has settled, and
// reports ΔRSS/Δconns.
func (c *coord) idle(ctx context.Context) error {
	cfg := c.cfg
	steps := cfg.steps
	if len(steps) == 0 {
		steps = []int{cfg.conns}
	}
	r := &idleResult{}
	c.res.Idle = r
	prevConns, prevRSS := int64(0), int64(0)
	var prevHeap *float64
	if len(cfg.pids) > 0 {
		c.setPhase("idle: baseline RSS")
		rss, _, err := settleRSS(ctx, cfg.pids, cfg.settleMax, cfg.gcSignal)
		if err != nil {
			return err
		}
		r.BaselineRSS, prevRSS = rss, rss
		r.BaselineHeap = c.heap(ctx)
		prevHeap = r.BaselineHeap
	}
	name := func(i int) string { return cfg.prefix + "i" + strconv.Itoa(i) }
	done := 0
	for _, step := range steps {
		c.setPhase("idle: connecting to %d", step)
		lists := make([][]string, len(c.pool.procs))
		for i := done; i < step; i++ {
			w := i % len(lists)
			lists[w] = append(lists[w], name(i))
		}
		st, err := c.connect(ctx, lists)
		if err != nil {
			return err
		}
		done = step
		open, err := c.openConns(ctx)
		if err != nil {
			return err
		}
		s := idleStep{Conns: open, ConnectPerSec: st.PerSec}
		if len(cfg.pids) > 0 {
			c.setPhase("idle: settling at %d", open)
			if s.RSS, s.Settled, err = settleRSS(ctx, cfg.pids, cfg.settleMax, cfg.gcSignal); err != nil {
				return err
			}
			if d := open - prevConns; d > 0 {
				s.Slope = ptr(float64(s.RSS-prevRSS) / float64(d))
				s.HeapInuse = c.heap(ctx)
				if s.HeapInuse != nil && prevHeap != nil {
					s.HeapSlope = ptr((*s.HeapInuse - *prevHeap) / float64(d))
				}
			}
			prevConns, prevRSS, prevHeap = open, s.RSS, s.HeapInuse
		}
		r.Steps = append(r.Steps, s)
	}
	if n := len(r.Steps); len(cfg.pids) > 0 && n > 1 {
		first, last := r.Steps[0], r.Steps[n-1]
		if d := last.Conns - first.Conns; d > 0 {
			r.SlopeFirstLast = ptr(float64(last.RSS-first.RSS) / float64(d))
		}
	}
	if cfg.hold > 0 {
		c.setPhase("idle: holding %s", cfg.hold)
		sleepCtx(ctx, cfg.hold)
	}
	return ctx.Err()
}

func (c *coord) heap(ctx context.Context) *float64 {
	if c.cfg.metricsURL == "" {
		return nil
	}
	if v, ok := scrapeMetric(ctx, c.cfg.metricsURL, heapMetric); ok {
		return &v
	}
	return nil
}

// openConns is the number of connections the workers hold open now.
func (c *coord) openConns(ctx context.Context) (int64, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := c.pool.status(sctx)
	if err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	return st.Open, nil
}
