package main

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// broadcast connects -conns accounts (one of them the broadcaster) and
// sends -k "all" frames one after another, each waiting until every open
// connection has it (or -round-timeout).
func (c *coord) broadcast(ctx context.Context) error {
	cfg := c.cfg
	c.setPhase("broadcast: connecting")
	lists := spread(len(c.pool.procs), cfg.conns-1, func(i int) string { return cfg.prefix + "b" + strconv.Itoa(i) })
	lists[0] = append([]string{cfg.broadcaster}, lists[0]...)
	if _, err := c.connect(ctx, lists); err != nil {
		return err // failed dials are reported; every open conn is a receiver
	}
	r := &broadcastResult{Rounds: cfg.k}
	c.res.Broadcast = r
	var total time.Duration
	cpu := c.startCPU()
	for seq := int64(1); seq <= int64(cfg.k); seq++ {
		c.setPhase("broadcast: round %d/%d", seq, cfg.k)
		got, want, lat, err := c.broadcastRound(ctx, seq)
		if err != nil {
			return err
		}
		r.Receivers = want
		r.Delivered += got
		r.Missing += want - got
		if got >= want {
			r.Complete++
		}
		r.RoundsMs = append(r.RoundsMs, ms(lat))
		total += lat
	}
	c.res.CPU = cpu.stop(r.Delivered)
	sorted := slices.Clone(r.RoundsMs)
	slices.Sort(sorted)
	r.P50ms, r.P99ms, r.MaxMs = quantileSorted(sorted, 0.50), quantileSorted(sorted, 0.99), sorted[len(sorted)-1]
	if total > 0 {
		r.DeliveriesPerSec = float64(r.Delivered) / total.Seconds()
	}
	return nil
}

// broadcastRound sends one "all" frame and returns deliveries, expected
// deliveries and the fan-out completion time (slowest receipt).
func (c *coord) broadcastRound(ctx context.Context, seq int64) (got, want int64, lat time.Duration, err error) {
	var mu sync.Mutex
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- c.pool.all(func(_ int, wp *workerProc) error {
			res, err := wp.call(ctx, "bcast_wait", args{Seq: seq, TimeoutN: int64(c.cfg.roundTimeout)})
			if err != nil {
				return err
			}
			mu.Lock()
			got += res.Bcast.Count
			want += res.Bcast.Expect
			lat = max(lat, time.Duration(res.Bcast.MaxLatNs))
			mu.Unlock()
			return nil
		})
	}()
	if _, err := c.pool.procs[0].call(ctx, "bcast_send", args{Account: c.cfg.broadcaster, Seq: seq}); err != nil {
		return 0, 0, 0, err
	}
	if err := <-waitErr; err != nil {
		return 0, 0, 0, err
	}
	return got, want, lat, nil
}

// quantileSorted is the nearest-rank quantile of an ascending slice.
func quantileSorted(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
