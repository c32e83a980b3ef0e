package main

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// broadcast connects -conns accounts and sends -k announcements one after
// another, each waiting until every open connection has it (or
// -round-timeout). By default one connection is -broadcaster and sends "all"
// frames; with -broadcast-api each announcement is a POST to the side API
// and every connection is a receiver.
func (c *coord) broadcast(ctx context.Context) error {
	cfg := c.cfg
	c.setPhase("broadcast: connecting")
	var send func(ctx context.Context, seq int64) error
	var api *apiSender
	if cfg.broadcastAPI != "" {
		api = newAPISender(cfg.broadcastAPI, cfg.apiSecret, cfg.broadcaster, cfg.size, cfg.roundTimeout, cfg.protocol == protoCentrifugo)
		send = api.send
	} else {
		send = func(ctx context.Context, seq int64) error {
			_, err := c.pool.procs[0].call(ctx, "bcast_send", args{Account: cfg.broadcaster, Seq: seq})
			return err
		}
	}
	receivers := cfg.conns
	if api == nil {
		receivers-- // the broadcaster is the first connection
	}
	lists := spread(len(c.pool.procs), receivers, func(i int) string { return cfg.prefix + "b" + strconv.Itoa(i) })
	if api == nil {
		lists[0] = append([]string{cfg.broadcaster}, lists[0]...)
	}
	if _, err := c.connect(ctx, lists); err != nil {
		return err // failed dials are reported; every open conn is a receiver
	}
	r := &broadcastResult{Rounds: cfg.k, Via: "all frame"}
	if api != nil {
		r.Via = "side API " + cfg.broadcastAPI
	}
	c.res.Broadcast = r
	var total time.Duration
	cpu := c.startCPU()
	for seq := int64(1); seq <= int64(cfg.k); seq++ {
		c.setPhase("broadcast: round %d/%d", seq, cfg.k)
		got, want, lat, err := c.broadcastRound(ctx, seq, send)
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
	if api != nil {
		r.APIConnections = api.lastCount
	}
	sorted := slices.Clone(r.RoundsMs)
	slices.Sort(sorted)
	r.P50ms, r.P99ms, r.MaxMs = quantileSorted(sorted, 0.50), quantileSorted(sorted, 0.99), sorted[len(sorted)-1]
	if total > 0 {
		r.DeliveriesPerSec = float64(r.Delivered) / total.Seconds()
	}
	// A copy that comes after its round is over is still a duplicate: give
	// late ones -grace to arrive, then count every connection's copies.
	c.setPhase("broadcast: waiting %s for late copies", cfg.grace)
	sleepCtx(ctx, cfg.grace)
	return c.broadcastTotals(ctx, r)
}

// broadcastRound sends one announcement and returns deliveries, expected
// deliveries and the fan-out completion time (slowest receipt).
func (c *coord) broadcastRound(ctx context.Context, seq int64, send func(context.Context, int64) error) (got, want int64, lat time.Duration, err error) {
	var mu sync.Mutex
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- c.pool.all(func(_ int, wp *workerProc) error {
			res, err := wp.call(wctx, "bcast_wait", args{Seq: seq, TimeoutN: int64(c.cfg.roundTimeout)})
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
	if err := send(ctx, seq); err != nil {
		cancel()
		<-waitErr
		return 0, 0, 0, err
	}
	werr := <-waitErr // the waits end at the round timeout at the latest
	if werr != nil {
		return 0, 0, 0, werr
	}
	return got, want, lat, nil
}

// broadcastTotals adds the duplicates and the per-connection latency of the
// whole run, from every worker.
func (c *coord) broadcastTotals(ctx context.Context, r *broadcastResult) error {
	var (
		mu sync.Mutex
		h  hist
	)
	err := c.pool.all(func(_ int, wp *workerProc) error {
		res, err := wp.call(ctx, "bcast_total", args{})
		if err != nil {
			return err
		}
		mu.Lock()
		r.Duplicates += res.Bcast.Dup
		h.merge(res.Bcast.Hist, res.Bcast.MaxLatNs)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	r.ConnP50ms, r.ConnP99ms, r.ConnMaxMs = ms(h.quantile(0.50)), ms(h.quantile(0.99)), ms(time.Duration(h.max))
	return nil
}

// quantileSorted is the nearest-rank quantile of an ascending slice.
func quantileSorted(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
