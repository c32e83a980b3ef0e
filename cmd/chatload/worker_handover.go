package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// The handover scenario, worker side. While a server process hands its
// connections over to a new one (README "Upgrades"), every connection that
// the server closes is opened again and inits again, as a client would:
// after a 1012 at a random moment in the window its reason gives
// ("reconnect within <ms> ms"), after any other close 200 ms later. Pairs
// keep chatting meanwhile, with cids and receiver acks (handover_track.go).

// handover is a worker's state in the handover scenario.
type handover struct {
	ctx     context.Context
	flow    *flow
	senders map[string]*pairTrack
	stop    context.CancelFunc // ends the pacing
	paced   chan struct{}      // closed when the pacing returned

	mu         sync.Mutex
	off        bool    // the run is over: no more reconnects
	closes     []int64 // unix ns of each 1012 close
	reconnects []int64 // unix ns of each reconnect, init done
	dialFails  int64
	otherCode  string // the first close that was not a 1012, for the report
}

// hoStat is a worker's handover result.
type hoStat struct {
	Flow       *flowStat `json:"flow"`
	Acked      int64     `json:"acked"`
	Lost       int64     `json:"lost"`    // acknowledged to the sender, never received
	Unacked    int64     `json:"unacked"` // sent, never acknowledged
	Closes     []int64   `json:"closes"`
	Reconnects []int64   `json:"reconnects"`
	DialFails  int64     `json:"dial_fails"`
	OtherClose string    `json:"other_close,omitempty"`
}

var restartWindow = regexp.MustCompile(`reconnect within (\d+) ms`)

// otherCloseWait is the pause before reconnecting after a close that is not a
// 1012 with a window, and between failed dials.
const otherCloseWait = 200 * time.Millisecond

// hoStart sets the pairs up (senders with cids) and starts sending at rate
// msg/s in the background, until hoStop.
func (wk *worker) hoStart(ctx context.Context, specs []pairSpec, p *pairsParams) error {
	if p == nil {
		return errors.New("handover: no parameters")
	}
	h := &handover{ctx: ctx, flow: newFlow(kindPair, wk.setup.Size), senders: map[string]*pairTrack{}, paced: make(chan struct{})}
	for _, s := range specs {
		snd, err1 := wk.conn(s.From)
		rcv, err2 := wk.conn(s.To)
		if err1 != nil || err2 != nil {
			continue // a connection of the pair failed to open: counted by connect
		}
		t := &pairTrack{f: h.flow, from: s.From, to: s.To, sender: snd, cids: true}
		rcv.track.Store(t)
		snd.sends.Store(t)
		wk.mu.Lock()
		wk.expect[s.To] = t // a receiver that reconnects gets its track at dial
		wk.mu.Unlock()
		h.senders[s.From] = t
		h.flow.tracks = append(h.flow.tracks, t)
	}
	if !wk.ho.CompareAndSwap(nil, h) {
		return errors.New("handover: started twice")
	}
	pctx, stop := context.WithCancel(ctx)
	h.stop = stop
	h.flow.running.Store(true)
	go func() {
		defer close(h.paced)
		if len(h.flow.tracks) > 0 && p.Rate > 0 {
			pace(pctx, h.flow.tracks, p.Rate, time.Now().Add(24*time.Hour))
		}
	}()
	return nil
}

// reconnectAfter opens c's account again once the server closed c (nbio's
// close hook, or the TLS reader's end). Only a connection that was up counts.
func (wk *worker) reconnectAfter(c *wsConn) {
	h := wk.ho.Load()
	if h == nil || !c.live.Swap(false) {
		return
	}
	now := time.Now().UnixNano()
	wait := otherCloseWait
	cf := c.closeBy.Load()
	h.mu.Lock()
	if h.off {
		h.mu.Unlock()
		return
	}
	if m := restartMatch(cf); cf != nil && cf.code == 1012 {
		h.closes = append(h.closes, now)
		wk.st.restarts.Add(1)
		if m >= 0 {
			wait = time.Duration(rand.Int64N(m+1)) * time.Millisecond
		}
	} else {
		wk.st.otherCloses.Add(1)
		if h.otherCode == "" {
			h.otherCode = "closed without 1012"
			if cf != nil {
				h.otherCode = strconv.Itoa(cf.code) + " " + cf.reason
			}
		}
	}
	h.mu.Unlock()
	wk.st.reconnecting.Add(1)
	go wk.redial(h, c, wait)
}

// restartMatch is the window (ms) a close reason gives, or -1.
func restartMatch(cf *closeFrame) int64 {
	if cf == nil {
		return -1
	}
	m := restartWindow.FindStringSubmatch(cf.reason)
	if m == nil {
		return -1
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (wk *worker) redial(h *handover, old *wsConn, wait time.Duration) {
	defer wk.st.reconnecting.Add(-1)
	for {
		sleepCtx(h.ctx, wait)
		h.mu.Lock()
		off := h.off
		h.mu.Unlock()
		if off || h.ctx.Err() != nil {
			return
		}
		if err := wk.dial(h.ctx, old.account, old.slot); err == nil {
			break
		}
		h.mu.Lock()
		h.dialFails++
		h.mu.Unlock()
		wait = otherCloseWait
	}
	now := time.Now().UnixNano()
	wk.st.reconnected.Add(1)
	h.mu.Lock()
	h.reconnects = append(h.reconnects, now)
	h.mu.Unlock()
	if t := h.senders[old.account]; t != nil {
		if c, err := wk.conn(old.account); err == nil {
			t.reattach(c) // init done: the unacknowledged messages go first
		}
	}
}

// hoStop stops sending, waits up to grace for every message to be
// acknowledged and every acknowledged one to arrive, then reports.
func (wk *worker) hoStop(ctx context.Context, grace time.Duration) *hoStat {
	h := wk.ho.Load()
	if h == nil {
		return &hoStat{}
	}
	h.stop()
	<-h.paced
	h.flow.running.Store(false)
	settled := func() bool {
		for _, t := range h.flow.tracks {
			if sent, acked, lost := t.ackCounts(); acked < sent || lost > 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(grace)
	for !settled() && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 100*time.Millisecond)
	}
	h.mu.Lock()
	h.off = true
	out := &hoStat{
		Closes: append([]int64(nil), h.closes...), Reconnects: append([]int64(nil), h.reconnects...),
		DialFails: h.dialFails, OtherClose: h.otherCode,
	}
	h.mu.Unlock()
	out.Flow = h.flow.stat()
	for _, t := range h.flow.tracks {
		sent, acked, lost := t.ackCounts()
		out.Acked += acked
		out.Lost += lost
		out.Unacked += sent - acked
	}
	return out
}
