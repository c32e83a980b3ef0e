package main

import (
	"errors"
	"strconv"
	"time"
)

// The send side of a stream in the handover scenario. Each message carries
// its seq as its cid; the server acknowledges it once pushed or stored. A
// message the server never acknowledged (its connection closed first) is
// written again, with the same cid, once the sender is back on a new
// connection, before anything newer, as the JavaScript client does. Lost
// then means: acknowledged to the sender, and never received.

var errReconnecting = errors.New("sender is reconnecting")

// sendWithCID writes the next message with its cid. While the sender has no
// open connection it sends nothing (no seq is used): it waits, as a client
// queues. Caller holds smu.
func (t *pairTrack) sendWithCID() error {
	c := t.sender
	if c == nil || c.closed.Load() {
		return errReconnecting
	}
	t.nextSeq++
	now := time.Now().UnixNano()
	t.buf = t.appendMsg(t.buf[:0], t.nextSeq, now)
	// A failed write is the connection closing: the message is written
	// again on the next one (it is not acknowledged).
	_ = c.writeText(t.buf)
	c.w.st.sent.Add(1)
	t.sent++
	if t.firstSend == 0 {
		t.firstSend = now
	}
	t.lastSend = now
	return nil
}

func (t *pairTrack) appendMsg(b []byte, seq, now int64) []byte {
	b = append(b, `{"flag":"msg","from":"`...)
	b = append(b, t.from...)
	b = append(b, `","to":"`...)
	b = append(b, t.to...)
	b = append(b, `","content":"`...)
	b = appendContent(b, t.f.kind, seq, now, t.f.size)
	b = append(b, `","cid":"`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, `"}`...)
}

// acked records the server's ack of the message with cid.
func (t *pairTrack) acked(cid []byte) {
	seq, err := strconv.ParseInt(string(cid), 10, 64)
	if err != nil || seq <= 0 {
		return
	}
	t.smu.Lock()
	defer t.smu.Unlock()
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	for len(t.ackBits) <= w {
		t.ackBits = append(t.ackBits, 0)
	}
	if t.ackBits[w]&bit == 0 {
		t.ackBits[w] |= bit
		t.nacked++
	}
}

func (t *pairTrack) isAcked(seq int64) bool {
	w := int(seq / 64)
	return w < len(t.ackBits) && t.ackBits[w]&(uint64(1)<<(seq%64)) != 0
}

// reattach makes c the stream's sender (a new connection of the same
// account, init done) and writes every unacknowledged message again, oldest
// first, before anything new.
func (t *pairTrack) reattach(c *wsConn) {
	t.smu.Lock()
	defer t.smu.Unlock()
	t.sender = c
	c.sends.Store(t)
	for seq := int64(1); seq <= t.nextSeq; seq++ {
		if t.isAcked(seq) {
			continue
		}
		// The original send time: latency counts from the first write.
		t.buf = t.appendMsg(t.buf[:0], seq, time.Now().UnixNano())
		_ = c.writeText(t.buf)
	}
}

// ackCounts returns how many messages were sent, how many acknowledged,
// and how many of those the receiver never got.
func (t *pairTrack) ackCounts() (sent, acked, lost int64) {
	t.smu.Lock()
	n := t.nextSeq
	bits := append([]uint64(nil), t.ackBits...)
	acked = t.nacked
	t.smu.Unlock()
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for seq := int64(1); seq <= n; seq++ {
		w, bit := int(seq/64), uint64(1)<<(seq%64)
		if w < len(bits) && bits[w]&bit != 0 && (w >= len(t.seen) || t.seen[w]&bit == 0) {
			lost++
		}
	}
	return n, acked, lost
}

// ackReceived acknowledges a message to the server (receiver acks).
func (c *wsConn) ackReceived(id []byte) {
	b := make([]byte, 0, len(id)+24)
	b = append(b, `{"flag":"ack","id":"`...)
	b = append(b, id...)
	b = append(b, `"}`...)
	_ = c.writeText(b)
}
