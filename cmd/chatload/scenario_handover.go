package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// handover measures a server process handing its connections over to a new
// one on the same port (README "Upgrades"): -conns connections, -pairs of
// them chatting at -rate msg/s in total (cids and receiver acks), the rest
// idle. After -before, SIGUSR2 goes to -handover-pid (the old process, with
// the new one already started beside it); every connection it closes comes
// back (handover_track.go, worker_handover.go). Once all are back, pairs go on
// for -after, then sending stops and -grace is left for the last acks.
func (c *coord) handover(ctx context.Context) error {
	cfg := c.cfg
	n := len(c.pool.procs)
	lists := make([][]string, n)
	specs := make([][]pairSpec, n)
	for i := range cfg.pairs {
		s, r := cfg.prefix+"s"+strconv.Itoa(i), cfg.prefix+"r"+strconv.Itoa(i)
		lists[i%n] = append(lists[i%n], s, r)
		specs[i%n] = append(specs[i%n], pairSpec{From: s, To: r})
	}
	for i := range cfg.conns - 2*cfg.pairs {
		lists[i%n] = append(lists[i%n], cfg.prefix+"i"+strconv.Itoa(i))
	}
	c.setPhase("handover: connecting")
	cs, err := c.connect(ctx, lists)
	if err != nil {
		return err
	}
	err = c.pool.all(func(i int, wp *workerProc) error {
		run := &pairsParams{Rate: cfg.rate * float64(len(specs[i])) / float64(max(cfg.pairs, 1))}
		_, err := wp.call(ctx, "ho_start", args{Pairs: specs[i], Run: run})
		return err
	})
	if err != nil {
		return err
	}
	c.setPhase("handover: chatting")
	sleepCtx(ctx, cfg.before)
	sig := syscall.SIGUSR2
	if cfg.handoverSignal == "TERM" {
		sig = syscall.SIGTERM
	}
	c.setPhase("handover: SIG%s sent", cfg.handoverSignal)
	signalled := time.Now()
	if err := syscall.Kill(cfg.handoverPID, sig); err != nil {
		return fmt.Errorf("-handover-pid %d: %s: %w", cfg.handoverPID, sig, err)
	}
	var oldExit time.Duration
	deadline := signalled.Add(cfg.handoverTimeout)
	for {
		if oldExit == 0 && !alive(cfg.handoverPID) {
			oldExit = time.Since(signalled)
		}
		st, err := c.pool.status(ctx)
		if err != nil {
			return err
		}
		if st.Restarts+st.OtherCloses >= int64(cs.OK) && st.Reconnecting == 0 && st.Open >= int64(cs.OK) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("handover: after %v, %d of %d connections closed, %d still reconnecting, %d open",
				cfg.handoverTimeout, st.Restarts+st.OtherCloses, cs.OK, st.Reconnecting, st.Open)
		}
		sleepCtx(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	c.setPhase("handover: all back, chatting")
	sleepCtx(ctx, cfg.after)
	for oldExit == 0 && alive(cfg.handoverPID) && time.Since(signalled) < cfg.handoverTimeout {
		sleepCtx(ctx, 100*time.Millisecond)
	}
	if oldExit == 0 && !alive(cfg.handoverPID) {
		oldExit = time.Since(signalled)
	}
	c.setPhase("handover: last acks")
	var (
		mu    sync.Mutex
		agg   = &flowStat{}
		h     hist
		res   = &handoverResult{Conns: cs.OK, Pairs: cfg.pairs, Rate: cfg.rate, Signal: "SIG" + cfg.handoverSignal}
		other string
	)
	var closes, backs []int64
	err = c.pool.all(func(i int, wp *workerProc) error {
		r, err := wp.call(ctx, "ho_stop", args{TimeoutN: int64(cfg.grace)})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		agg.merge(r.Ho.Flow)
		h.merge(r.Ho.Flow.Hist, r.Ho.Flow.MaxLatNs)
		res.Acked += r.Ho.Acked
		res.Lost += r.Ho.Lost
		res.Unacked += r.Ho.Unacked
		res.DialFailures += r.Ho.DialFails
		closes = append(closes, r.Ho.Closes...)
		backs = append(backs, r.Ho.Reconnects...)
		if other == "" {
			other = r.Ho.OtherClose
		}
		return nil
	})
	if err != nil {
		return err
	}
	if st, err := c.pool.status(ctx); err == nil {
		res.OtherCloses = st.OtherCloses
	}
	res.OtherClose = other
	res.Restarts = int64(len(closes))
	res.Reconnected = int64(len(backs))
	res.fill(signalled, closes, backs)
	if oldExit > 0 {
		res.OldExitS = oldExit.Seconds()
	}
	res.Sent, res.Delivered, res.Duplicated, res.OutOfOrder, res.WrongFrom = agg.Sent, agg.Unique, agg.Dup, agg.OutOfOrder, agg.WrongFrom
	res.LatP50ms, res.LatP99ms, res.LatMaxMs = ms(h.quantile(0.50)), ms(h.quantile(0.99)), ms(time.Duration(h.max))
	c.res.Handover = res
	return nil
}

// handoverResult is what the handover scenario reports.
type handoverResult struct {
	Signal       string  `json:"signal"`
	Conns        int     `json:"conns"`
	Pairs        int     `json:"pairs"`
	Rate         float64 `json:"rate"`
	Restarts     int64   `json:"closes_1012"`
	OtherCloses  int64   `json:"other_closes"`
	OtherClose   string  `json:"other_close,omitempty"`
	Reconnected  int64   `json:"reconnected"`
	DialFailures int64   `json:"dial_failures"` // dials that failed and were tried again
	// Times from SIGUSR2, in seconds.
	FirstCloseS      float64 `json:"first_close_s"`
	LastCloseS       float64 `json:"last_close_s"`
	LastReconnectS   float64 `json:"last_reconnect_s"` // the whole move
	OldExitS         float64 `json:"old_exit_s,omitempty"`
	CloseRate        float64 `json:"close_rate"`        // closes a second, first to last
	PeakCloses       int     `json:"peak_closes_per_s"` // most closes in one second
	PeakReconnects   int     `json:"peak_reconnects_per_s"`
	PeakReconnect100 int     `json:"peak_reconnects_per_100ms"`
	// Closes and reconnects in each second after the signal.
	ClosesPerS     []int `json:"closes_each_s"`
	ReconnectsPerS []int `json:"reconnects_each_s"`
	// Messages: with cids; lost = acknowledged to the sender and never
	// received; unacked = never acknowledged by the end.
	Sent       int64   `json:"sent"`
	Acked      int64   `json:"acked"`
	Delivered  int64   `json:"delivered"`
	Lost       int64   `json:"lost"`
	Unacked    int64   `json:"unacked"`
	Duplicated int64   `json:"duplicated"` // repeats with an id already seen (the client drops them)
	OutOfOrder int64   `json:"out_of_order"`
	WrongFrom  int64   `json:"wrong_from"`
	LatP50ms   float64 `json:"latency_p50_ms"`
	LatP99ms   float64 `json:"latency_p99_ms"`
	LatMaxMs   float64 `json:"latency_max_ms"`
}

// fill computes the timings from the closes' and reconnects' times (unix ns).
func (r *handoverResult) fill(t0 time.Time, closes, backs []int64) {
	slices.Sort(closes)
	slices.Sort(backs)
	s := func(ns int64) float64 { return time.Duration(ns - t0.UnixNano()).Seconds() }
	if len(closes) > 0 {
		r.FirstCloseS, r.LastCloseS = s(closes[0]), s(closes[len(closes)-1])
		if d := r.LastCloseS - r.FirstCloseS; d > 0 {
			r.CloseRate = float64(len(closes)) / d
		}
		r.PeakCloses = peak(closes, time.Second)
	}
	r.ClosesPerS, r.ReconnectsPerS = perSecond(closes, t0), perSecond(backs, t0)
	if len(backs) > 0 {
		r.LastReconnectS = s(backs[len(backs)-1])
		r.PeakReconnects = peak(backs, time.Second)
		r.PeakReconnect100 = peak(backs, 100*time.Millisecond)
	}
}

// perSecond counts the events (sorted unix ns) in each second from t0.
func perSecond(ts []int64, t0 time.Time) []int {
	var out []int
	for _, t := range ts {
		i := int(max(t-t0.UnixNano(), 0) / int64(time.Second))
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

// peak is the most events (sorted unix ns) in any window of width w.
func peak(ts []int64, w time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for ts[i]-ts[j] >= int64(w) {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// alive reports whether pid is a running process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func printHandover(row rowFunc, r *handoverResult) {
	if r == nil {
		return
	}
	row("handover", "%s: %d connections, %d pairs chatting at %.0f msg/s", r.Signal, r.Conns, r.Pairs, r.Rate)
	row("closed by the old process", "%d with 1012, %d otherwise%s", r.Restarts, r.OtherCloses, optStr("  (", r.OtherClose, ")"))
	row("closes", "from %.2f s to %.2f s after the signal = %.0f/s, at most %d in one second", r.FirstCloseS, r.LastCloseS, r.CloseRate, r.PeakCloses)
	row("reconnected", "%d (dials retried %d), the last %.2f s after the signal; peak %d/s (%d in 100 ms)",
		r.Reconnected, r.DialFailures, r.LastReconnectS, r.PeakReconnects, r.PeakReconnect100)
	row("each second", "closes %v, reconnects %v", r.ClosesPerS, r.ReconnectsPerS)
	if r.OldExitS > 0 {
		row("old process exited", "%.2f s after the signal", r.OldExitS)
	}
	row("messages", "%d sent, %d acknowledged, %d delivered", r.Sent, r.Acked, r.Delivered)
	row("lost / unacked / dup / out-of-order", "%d / %d / %d / %d  (wrong sender %d)", r.Lost, r.Unacked, r.Duplicated, r.OutOfOrder, r.WrongFrom)
	row("latency", "p50 %.2f ms  p99 %.2f ms  max %.2f ms", r.LatP50ms, r.LatP99ms, r.LatMaxMs)
}

func optStr(pre, s, post string) string {
	if s == "" {
		return ""
	}
	return pre + s + post
}
