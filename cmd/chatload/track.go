package main

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Message content carried by the tool: "<kind>.<seq>.<sendUnixNano>" then
// optional padding ".xxxx" up to the requested size. The sender's wall
// clock is compared with the receiver's: every process is on one machine.
const (
	kindBroadcast = 'b'
	kindPair      = 'p'
	kindOffline   = 'o'
)

func appendContent(dst []byte, kind byte, seq, ns int64, size int) []byte {
	start := len(dst)
	dst = append(dst, kind, '.')
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, ns, 10)
	if pad := size - (len(dst) - start); pad > 1 {
		dst = append(dst, '.')
		for range pad - 1 {
			dst = append(dst, 'x')
		}
	}
	return dst
}

func parseContent(b []byte) (kind byte, seq, ns int64, ok bool) {
	parts := bytes.SplitN(b, []byte("."), 4)
	if len(parts) < 3 || len(parts[0]) != 1 {
		return 0, 0, 0, false
	}
	seq, err1 := strconv.ParseInt(string(parts[1]), 10, 64)
	ns, err2 := strconv.ParseInt(string(parts[2]), 10, 64)
	return parts[0][0], seq, ns, err1 == nil && err2 == nil
}

// flow aggregates the streams of one run (pairs or offline) in a worker.
type flow struct {
	kind       byte
	size       int
	closedLoop bool
	running    atomic.Bool // closed loop: a receipt triggers the next send

	mu sync.Mutex // guards h
	h  hist

	want     atomic.Int64 // unique receipts that complete the run (0 = not known yet)
	got      atomic.Int64
	done     chan struct{}
	doneOnce sync.Once
	tracks   []*pairTrack
}

func newFlow(kind byte, size int) *flow {
	return &flow{kind: kind, size: size, done: make(chan struct{})}
}

func (f *flow) checkDone() {
	if w := f.want.Load(); w > 0 && f.got.Load() >= w {
		f.doneOnce.Do(func() { close(f.done) })
	}
}

// pairTrack is one sender -> receiver stream: sequence numbers out, and on
// the receiver side loss, duplicates and order.
type pairTrack struct {
	f      *flow
	from   string
	to     string
	sender *wsConn // nil when the sender lives elsewhere (offline receiver side)
	quota  int64   // offline: messages to send

	smu       sync.Mutex // guards the send side; held across seq and write so wire order = seq order
	cids      bool       // handover scenario: each message carries its seq as cid (handover_track.go)
	ackBits   []uint64   // with cids: seqs the server acknowledged
	nacked    int64
	nextSeq   int64
	buf       []byte
	sent      int64
	firstSend int64
	lastSend  int64

	rmu       sync.Mutex // guards the receive side
	seen      []uint64   // bitset of received sequence numbers
	maxSeq    int64
	unique    int64
	dup       int64
	ooo       int64
	wrongFrom int64
	lastRecv  int64
}

// send writes the next message of the stream.
func (t *pairTrack) send() error {
	t.smu.Lock()
	defer t.smu.Unlock()
	if t.cids {
		return t.sendWithCID()
	}
	t.nextSeq++
	now := time.Now().UnixNano()
	var b []byte
	if t.sender.w.setup.Proto == protoCentrifugo {
		b = appendCfPublishHead(t.buf[:0], t.sender.cfNext.Add(1)+cfFirstFreeID-1, t.to, t.from)
		b = appendContent(b, t.f.kind, t.nextSeq, now, t.f.size)
		b = append(b, cfPublishTail...)
	} else {
		b = append(t.buf[:0], `{"flag":"msg","from":"`...)
		b = append(b, t.from...)
		b = append(b, `","to":"`...)
		b = append(b, t.to...)
		b = append(b, `","content":"`...)
		b = appendContent(b, t.f.kind, t.nextSeq, now, t.f.size)
		b = append(b, `"}`...)
	}
	t.buf = b
	if err := t.sender.writeText(b); err != nil {
		t.nextSeq--
		return err
	}
	t.sender.w.st.sent.Add(1)
	t.sent++
	if t.firstSend == 0 {
		t.firstSend = now
	}
	t.lastSend = now
	return nil
}

// receive records one delivered message (called in the poller).
func (t *pairTrack) receive(from, content []byte) {
	now := time.Now().UnixNano()
	_, seq, ns, ok := parseContent(content)
	t.rmu.Lock()
	if !ok || string(from) != t.from || seq <= 0 {
		t.wrongFrom++
		t.rmu.Unlock()
		return
	}
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	for len(t.seen) <= w {
		t.seen = append(t.seen, 0)
	}
	isNew := t.seen[w]&bit == 0
	switch {
	case !isNew:
		t.dup++
	case seq < t.maxSeq:
		t.ooo++
	}
	if isNew {
		t.seen[w] |= bit
		t.unique++
	}
	t.maxSeq = max(t.maxSeq, seq)
	t.lastRecv = now
	t.rmu.Unlock()
	if !isNew {
		return
	}
	f := t.f
	f.mu.Lock()
	f.h.record(time.Duration(now - ns))
	f.mu.Unlock()
	f.got.Add(1)
	f.checkDone()
	if f.closedLoop && f.running.Load() && t.sender != nil {
		_ = t.send()
	}
}

// stat sums the flow's streams.
func (f *flow) stat() *flowStat {
	out := &flowStat{}
	for _, t := range f.tracks {
		t.smu.Lock()
		out.Sent += t.sent
		out.FirstSendNs = minNonZero(out.FirstSendNs, t.firstSend)
		out.LastSendNs = max(out.LastSendNs, t.lastSend)
		t.smu.Unlock()
		t.rmu.Lock()
		out.Unique += t.unique
		out.Dup += t.dup
		out.OutOfOrder += t.ooo
		out.WrongFrom += t.wrongFrom
		out.LastRecvNs = max(out.LastRecvNs, t.lastRecv)
		t.rmu.Unlock()
	}
	out.Expected = f.want.Load()
	f.mu.Lock()
	out.Hist, out.MaxLatNs = f.h.entries(), f.h.max
	f.mu.Unlock()
	return out
}

func minNonZero(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
