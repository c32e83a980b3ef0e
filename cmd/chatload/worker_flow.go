package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// bcastTrack counts receipts (guarded by worker.bmu) of one broadcast in this worker.
type bcastTrack struct {
	expect  int64 // 0 until bcast_wait registered
	count   int64 // connections that have it
	dup     int64 // copies to a connection that already had it
	lastNs  int64 // latest first receipt
	maxLat  int64 // max(receipt - embedded send time)
	done    chan struct{}
	isClose bool
}

func (wk *worker) bcastTrack(seq int64) *bcastTrack {
	t := wk.bcast[seq]
	if t == nil {
		t = &bcastTrack{done: make(chan struct{})}
		wk.bcast[seq] = t
	}
	return t
}

func (t *bcastTrack) check() {
	if !t.isClose && t.expect > 0 && t.count >= t.expect {
		t.isClose = true
		close(t.done)
	}
}

// onBroadcast records one announcement received on c: the first copy
// counts towards its round and the latency histogram, a further copy of the
// same seq is a duplicate.
func (wk *worker) onBroadcast(c *wsConn, content []byte) {
	now := time.Now().UnixNano()
	kind, seq, ns, ok := parseContent(content)
	if !ok || kind != kindBroadcast || seq <= 0 {
		return // someone else's broadcast
	}
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	wk.bmu.Lock()
	defer wk.bmu.Unlock()
	t := wk.bcastTrack(seq)
	for len(c.bseen) <= w {
		c.bseen = append(c.bseen, 0)
	}
	if c.bseen[w]&bit != 0 {
		t.dup++
		wk.bdup++
		return
	}
	c.bseen[w] |= bit
	t.count++
	t.lastNs = now
	t.maxLat = max(t.maxLat, now-ns)
	wk.bhist.record(time.Duration(now - ns))
	t.check()
}

// bcastWait registers the expected count (every open connection of this
// worker) and waits until all have the broadcast or the timeout passes.
func (wk *worker) bcastWait(ctx context.Context, seq int64, timeout time.Duration) *bcastStat {
	wk.bmu.Lock()
	t := wk.bcastTrack(seq)
	t.expect = max(wk.st.open.Load(), 1)
	t.check()
	wk.bmu.Unlock()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-t.done:
	case <-tm.C:
	case <-ctx.Done():
	}
	wk.bmu.Lock()
	defer wk.bmu.Unlock()
	return &bcastStat{Expect: t.expect, Count: t.count, Dup: t.dup, LastNs: t.lastNs, MaxLatNs: t.maxLat}
}

// bcastTotal sums every broadcast of the run in this worker: first copies,
// duplicates (also those that came after their round ended) and the
// per-connection latency histogram.
func (wk *worker) bcastTotal() *bcastStat {
	wk.bmu.Lock()
	defer wk.bmu.Unlock()
	out := &bcastStat{Dup: wk.bdup, Hist: wk.bhist.entries(), MaxLatNs: wk.bhist.max}
	for _, t := range wk.bcast {
		out.Count += t.count
		out.LastNs = max(out.LastNs, t.lastNs)
	}
	return out
}

func (wk *worker) bcastSend(account string, seq int64) (*bcastStat, error) {
	c, err := wk.conn(account)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixNano()
	b := fmt.Appendf(nil, `{"flag":"all","from":%q,"content":"`, account)
	b = appendContent(b, kindBroadcast, seq, now, wk.setup.Size)
	b = append(b, `"}`...)
	if err := c.writeText(b); err != nil {
		return nil, fmt.Errorf("broadcast %d: %w", seq, err)
	}
	wk.st.sent.Add(1)
	return &bcastStat{SentNs: now}, nil
}

// runPairs drives local sender -> receiver pairs for the run's duration,
// then waits (up to Grace) for everything sent to arrive.
func (wk *worker) runPairs(ctx context.Context, specs []pairSpec, p *pairsParams) (*flowStat, error) {
	if p == nil || len(specs) == 0 {
		return nil, errors.New("pairs: no pairs or parameters")
	}
	f := newFlow(kindPair, wk.setup.Size)
	f.closedLoop = p.Rate <= 0
	skipped := int64(0)
	for _, s := range specs {
		snd, err1 := wk.conn(s.From)
		rcv, err2 := wk.conn(s.To)
		if err1 != nil || err2 != nil {
			skipped++ // a connection of this pair failed to open
			continue
		}
		t := &pairTrack{f: f, from: s.From, to: s.To, sender: snd}
		rcv.track.Store(t)
		f.tracks = append(f.tracks, t)
	}
	if len(f.tracks) == 0 {
		return &flowStat{Skipped: skipped}, nil
	}
	var pg *pinger
	stopPing := func() {}
	if p.PingConns > 0 && p.PingEvery > 0 {
		conns := make([]*wsConn, 0, p.PingConns)
		for _, t := range f.tracks[:min(p.PingConns, len(f.tracks))] {
			conns = append(conns, t.sender)
		}
		pg = newPinger(conns)
		pctx, cancel := context.WithCancel(ctx)
		stopPing = cancel
		go pg.run(pctx, time.Duration(p.PingEvery))
	}
	f.running.Store(true)
	end := time.Now().Add(time.Duration(p.Duration))
	var behind int64
	if f.closedLoop {
		for range max(p.Window, 1) {
			for _, t := range f.tracks {
				_ = t.send()
			}
		}
		sleepCtx(ctx, time.Until(end))
	} else {
		behind = pace(ctx, f.tracks, p.Rate, end)
	}
	f.running.Store(false)
	stopPing()
	st := f.stat()
	f.want.Store(max(st.Sent, 1))
	f.checkDone()
	drainStart := time.Now()
	drain(ctx, f.done, time.Duration(p.Grace))
	st = f.stat()
	st.Behind, st.Skipped = behind, skipped
	if pg != nil {
		pg.settle(ctx, time.Duration(p.Grace)-time.Since(drainStart))
		st.Ping = pg.stop()
	}
	return st, nil
}

// pace sends round-robin over tracks at rate msg/s until end and returns
// how many sends went out more than 10 ms behind schedule (the client, not
// the server, could not keep the rate).
func pace(ctx context.Context, tracks []*pairTrack, rate float64, end time.Time) int64 {
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var sent, behind int64
	late := int64(rate/100) + 1
	for i := 0; ; {
		now := time.Now()
		if !now.Before(end) {
			return behind
		}
		due := int64(rate * now.Sub(start).Seconds())
		for ; sent < due; sent++ {
			if due-sent > late {
				behind++
			}
			_ = tracks[i%len(tracks)].send()
			i++
		}
		select {
		case <-ctx.Done():
			return behind
		case <-tick.C:
		}
	}
}

func drain(ctx context.Context, done <-chan struct{}, grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// offlineSend sends N messages per spec to (absent) receivers, round-robin,
// paced when Rate > 0.
func (wk *worker) offlineSend(ctx context.Context, specs []pairSpec, p *pairsParams) (*flowStat, error) {
	f := newFlow(kindOffline, wk.setup.Size)
	var total int64
	var skipped int64
	for _, s := range specs {
		snd, err := wk.conn(s.From)
		if err != nil {
			skipped++ // this sender failed to connect: its messages are not sent
			continue
		}
		f.tracks = append(f.tracks, &pairTrack{f: f, from: s.From, to: s.To, sender: snd, quota: s.N})
		total += s.N
	}
	interval := time.Duration(0)
	if p != nil && p.Rate > 0 {
		interval = time.Duration(float64(time.Second) / p.Rate)
	}
	start := time.Now()
	for sent := int64(0); sent < total; {
		progressed := false
		for _, t := range f.tracks {
			if t.nextSeq >= t.quota {
				continue
			}
			if err := t.send(); err != nil {
				return f.stat(), fmt.Errorf("offline send: %w", err)
			}
			sent++
			progressed = true
			if interval > 0 {
				if d := time.Until(start.Add(time.Duration(sent) * interval)); d > time.Millisecond {
					sleepCtx(ctx, d)
				}
			}
		}
		if !progressed || ctx.Err() != nil {
			break
		}
	}
	st := f.stat()
	st.Skipped = skipped
	return st, nil
}

// offlineExpect prepares receiver-side tracks; receivers connecting later
// pick them up at dial, before their first byte arrives.
func (wk *worker) offlineExpect(specs []pairSpec) {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if wk.offline == nil {
		wk.offline = newFlow(kindOffline, 0)
	}
	f := wk.offline
	for _, s := range specs {
		t := &pairTrack{f: f, from: s.From, to: s.To}
		wk.expect[s.To] = t
		f.tracks = append(f.tracks, t)
		f.want.Add(s.N)
	}
}

func (wk *worker) offlineWait(ctx context.Context, timeout time.Duration) *flowStat {
	wk.mu.Lock()
	f := wk.offline
	wk.mu.Unlock()
	if f == nil {
		return &flowStat{}
	}
	f.checkDone()
	drain(ctx, f.done, timeout)
	return f.stat()
}
