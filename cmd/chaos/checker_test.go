package main

import (
	"strings"
	"testing"
	"time"
)

// hist builds a hand-made history; each event is 100 ms after the previous.
type hist struct {
	t0 time.Time
	ev []Event
}

func (h *hist) add(e Event) *hist {
	e.T = h.t0.Add(time.Duration(len(h.ev)) * 100 * time.Millisecond)
	h.ev = append(h.ev, e)
	return h
}

func (h *hist) send(from, to, id string) *hist {
	return h.add(Event{Kind: evSend, Client: from, To: to, ID: id, Node: 0, Legacy: strings.HasPrefix(id, "l:")})
}

func (h *hist) ack(from, id, msgID string) *hist {
	return h.add(Event{Kind: evAck, Client: from, ID: id, MsgID: msgID, Status: "pushed", Node: 0})
}

func (h *hist) recv(acct, from, id, msgID string) *hist {
	return h.add(Event{Kind: evRecv, Client: acct, From: from, ID: id, MsgID: msgID, Node: 0})
}

func newHist() *hist {
	h := &hist{t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.add(Event{Kind: evConnect, Client: "r1", Conn: 1, Node: 0})
	return h
}

func rules(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule+":"+f.ID)
	}
	return strings.Join(out, " ")
}

func TestCheckCleanHistoryPasses(t *testing.T) {
	h := newHist().send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1").recv("r1", "s1", "m:s1:1", "x1").
		send("s1", "r1", "m:s1:2").ack("s1", "m:s1:2", "x2").recv("r1", "s1", "m:s1:2", "x2")
	r := Check(h.ev, "single", 1, time.Minute)
	if r.Failed() || r.Sent != 2 || r.Acked != 2 || r.Received != 2 {
		t.Fatalf("clean history: failures %q, sent %d acked %d received %d; want none, 2, 2, 2", rules(r.Failures), r.Sent, r.Acked, r.Received)
	}
}

func TestCheckAcknowledgedLoss(t *testing.T) {
	h := newHist().send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1").
		send("s1", "r1", "m:s1:2") // not acknowledged: its loss is allowed
	r := Check(h.ev, "single", 1, time.Minute)
	if r.Lost != 1 || rules(r.Failures) != "lost:m:s1:1" {
		t.Fatalf("lost %d, failures %q; want 1, lost:m:s1:1", r.Lost, rules(r.Failures))
	}
	if f := r.Failures[0]; f.Sender != "s1" || f.Recipient != "r1" || !strings.Contains(f.Ack, "pushed id=x1") {
		t.Fatalf("finding %+v does not name sender, recipient and ack", f)
	}
}

func TestCheckGroupLossAtOneMember(t *testing.T) {
	h := newHist()
	h.add(Event{Kind: evGroup, Group: "g1", Detail: "gs,gm1,gm2", Node: -1})
	h.add(Event{Kind: evSend, Client: "gs", Group: "g1", ID: "g:gs:1"})
	h.ack("gs", "g:gs:1", "x1").recv("gm1", "gs", "g:gs:1", "x1")
	r := Check(h.ev, "single", 1, time.Minute)
	if rules(r.Failures) != "lost:g:gs:1" || r.Failures[0].Recipient != "gm2" {
		t.Fatalf("failures %q (%+v); want the loss at gm2 only", rules(r.Failures), r.Failures)
	}
}

func TestCheckReorder(t *testing.T) {
	h := newHist().send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1").
		send("s1", "r1", "m:s1:2").ack("s1", "m:s1:2", "x2").
		recv("r1", "s1", "m:s1:2", "x2").recv("r1", "s1", "m:s1:1", "x1")
	r := Check(h.ev, "single", 1, time.Minute)
	if r.OutOfOrder != 1 || rules(r.Failures) != "order:m:s1:1" {
		t.Fatalf("out of order %d, failures %q; want 1, order:m:s1:1", r.OutOfOrder, rules(r.Failures))
	}
}

// A reorder around an init that got unavailable is what the README documents
// (the connection chats live, its older backlog comes at a later init): it is
// reported apart, not a failure. Without that init it is a failure.
func TestCheckReorderAfterRefusedInitIsDocumented(t *testing.T) {
	h := newHist().send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1")
	h.add(Event{Kind: evNote, Client: "r1", Code: "unavailable"})
	h.send("s1", "r1", "m:s1:2").ack("s1", "m:s1:2", "x2").
		recv("r1", "s1", "m:s1:2", "x2").recv("r1", "s1", "m:s1:1", "x1")
	r := Check(h.ev, "single", 1, time.Minute)
	if r.Failed() || rules(r.Documented) != "order:m:s1:1" {
		t.Fatalf("failures %q, documented %q; want none, order:m:s1:1", rules(r.Failures), rules(r.Documented))
	}
}

// A message resent after the next one was first sent may arrive after it:
// the sender, not the server, changed the order.
func TestCheckResentAfterLaterIsNotReorder(t *testing.T) {
	h := newHist().send("s1", "r1", "m:s1:1").send("s1", "r1", "m:s1:2").ack("s1", "m:s1:2", "x2").
		send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1").
		recv("r1", "s1", "m:s1:2", "x2").recv("r1", "s1", "m:s1:1", "x1")
	if r := Check(h.ev, "single", 1, time.Minute); r.Failed() {
		t.Fatalf("failures %q; want none", rules(r.Failures))
	}
}

func TestCheckDuplicates(t *testing.T) {
	h := newHist().send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1").
		recv("r1", "s1", "m:s1:1", "x1").recv("r1", "s1", "m:s1:1", "x1") // droppable
	r := Check(h.ev, "single", 1, time.Minute)
	if r.Failed() || r.Duplicates != 1 {
		t.Fatalf("droppable duplicate: failures %q, duplicates %d; want none, 1", rules(r.Failures), r.Duplicates)
	}
	h.recv("r1", "s1", "m:s1:1", "other") // a different id: not droppable
	r = Check(h.ev, "single", 1, time.Minute)
	if r.Duplicates != 2 || rules(r.Failures) != "duplicate:m:s1:1" {
		t.Fatalf("duplicates %d, failures %q; want 2, duplicate:m:s1:1", r.Duplicates, rules(r.Failures))
	}
}

func TestCheckPhantomAndMisdelivered(t *testing.T) {
	h := newHist().send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1").recv("r1", "s1", "m:s1:1", "x1").
		recv("r1", "s1", "m:s1:9", "x9"). // never sent
		recv("r2", "s1", "m:s1:1", "x1")  // not addressed to r2
	r := Check(h.ev, "single", 1, time.Minute)
	if got := rules(r.Failures); got != "phantom:m:s1:9 misdelivered:m:s1:1" && got != "misdelivered:m:s1:1 phantom:m:s1:9" {
		t.Fatalf("failures %q; want a phantom and a misdelivery", got)
	}
}

func TestCheckLegacyLossIsReportedOrderIsNot(t *testing.T) {
	h := newHist().send("ls1", "lr1", "l:ls1:1").send("ls1", "lr1", "l:ls1:2").recv("lr1", "ls1", "l:ls1:2", "y2")
	r := Check(h.ev, "single", 1, time.Minute)
	if r.Failed() || r.LegacySent != 2 || r.LegacyReceived != 1 || r.LegacyLost != 1 {
		t.Fatalf("legacy loss: failures %q, sent/received/lost %d/%d/%d; want none, 2/1/1", rules(r.Failures), r.LegacySent, r.LegacyReceived, r.LegacyLost)
	}
	h.recv("lr1", "ls1", "l:ls1:1", "y1") // arrives after the later one
	r = Check(h.ev, "single", 1, time.Minute)
	if r.LegacyOutOfOrder != 1 || rules(r.Failures) != "order:l:ls1:1" {
		t.Fatalf("legacy reorder: out of order %d, failures %q; want 1, order:l:ls1:1", r.LegacyOutOfOrder, rules(r.Failures))
	}
}

// Several nodes have no known failures: a loss around a node's fault is a
// failure in the cluster as on one node.
func TestCheckLossAroundANodeFaultFails(t *testing.T) {
	h := &hist{t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.add(Event{Kind: evConnect, Client: "r1", Conn: 1, Node: 1})
	h.add(Event{Kind: evFaultStart, Code: fStop, Node: 1, Detail: "stop 1"})
	h.send("s1", "r1", "m:s1:1").ack("s1", "m:s1:1", "x1") // sent via node 0
	h.add(Event{Kind: evFaultEnd, Code: fStop, Node: 1, Detail: "stop 1"})
	for _, setup := range []string{"cluster", "single"} {
		if r := Check(h.ev, setup, 1, time.Minute); rules(r.Failures) != "lost:m:s1:1" {
			t.Fatalf("%s: failures %q; want lost:m:s1:1", setup, rules(r.Failures))
		}
	}
}

// A sender whose earlier message entered through a node that was then cut
// off, and whose later one entered through another node and arrived first:
// documented in the cluster (order holds per entry node during a fault).
// Through one node, or without a fault on the first node, it is a failure.
func TestCheckSenderMovedDuringFault(t *testing.T) {
	build := func(faultNode, secondNode int) []Event {
		h := &hist{t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		h.add(Event{Kind: evConnect, Client: "r1", Conn: 1, Node: 2})
		h.add(Event{Kind: evSend, Client: "s1", To: "r1", ID: "m:s1:1", Node: 1})
		h.add(Event{Kind: evAck, Client: "s1", ID: "m:s1:1", MsgID: "x1", Status: "stored", Node: 1})
		h.add(Event{Kind: evFaultStart, Code: fRedisBlackhole, Node: faultNode, Detail: "redis blackhole"})
		h.add(Event{Kind: evSend, Client: "s1", To: "r1", ID: "m:s1:2", Node: secondNode})
		h.add(Event{Kind: evAck, Client: "s1", ID: "m:s1:2", MsgID: "x2", Status: "pushed", Node: secondNode})
		h.add(Event{Kind: evRecv, Client: "r1", From: "s1", ID: "m:s1:2", MsgID: "x2", Node: 2})
		h.add(Event{Kind: evFaultEnd, Code: fRedisBlackhole, Node: faultNode, Detail: "redis blackhole"})
		h.add(Event{Kind: evRecv, Client: "r1", From: "s1", ID: "m:s1:1", MsgID: "x1", Node: 2})
		return h.ev
	}
	if r := Check(build(1, 0), "cluster", 1, time.Minute); r.Failed() || len(r.Documented) != 1 {
		t.Fatalf("moved while the first node was cut off: failures %q, documented %d; want 1 documented", rules(r.Failures), len(r.Documented))
	}
	if r := Check(build(1, 0), "single", 1, time.Minute); rules(r.Failures) != "order:m:s1:1" {
		t.Fatalf("one node: failures %q; want order:m:s1:1", rules(r.Failures))
	}
	if r := Check(build(1, 1), "cluster", 1, time.Minute); rules(r.Failures) != "order:m:s1:1" {
		t.Fatalf("same entry node: failures %q; want order:m:s1:1", rules(r.Failures))
	}
	if r := Check(build(2, 0), "cluster", 1, time.Minute); r.Failed() || len(r.Documented) != 1 {
		t.Fatalf("moved while the recipient's node was cut off: failures %q; want it documented", rules(r.Failures))
	}
	if r := Check(build(0, 0), "cluster", 1, time.Minute); rules(r.Failures) != "order:m:s1:1" {
		t.Fatalf("fault on the node moved to only: failures %q; want order:m:s1:1", rules(r.Failures))
	}
}

func TestCheckPendingCrashPanicResources(t *testing.T) {
	h := newHist()
	h.add(Event{Kind: evResource, Code: "warm", Node: 0, RSSKB: 20000, Goroutines: 30})
	h.add(Event{Kind: evPhase, Detail: "drained", Node: -1})
	h.add(Event{Kind: evConnect, Client: "r1", Conn: 2, Node: 0})
	h.add(Event{Kind: evPending, To: "r1", From: "s1", ID: "m:s1:5", MsgID: "x5", Node: -1})
	h.add(Event{Kind: evPending, To: "nobody", From: "s1", ID: "m:s1:6", Node: -1}) // never drained: not checked
	h.add(Event{Kind: evNodeExit, Status: "unexpected", Node: 0, Detail: "exit status 2"})
	h.add(Event{Kind: evNodeExit, Status: "expected", Node: 0, Detail: "signal: killed"})
	h.add(Event{Kind: evLogPanic, Node: 0, Detail: "panic: boom"})
	h.add(Event{Kind: evResource, Code: "end", Node: 0, RSSKB: 25000, Goroutines: 500})
	r := Check(h.ev, "single", 1, time.Minute)
	if got := rules(r.Failures); got != "crash: panic: pending:m:s1:5 resources:" {
		t.Fatalf("failures %q; want crash, panic, pending for r1, goroutines", got)
	}
}

// A message acked pushed and lost because the recipient's node was killed
// before the receiver acknowledged it is the loss the README documents; the
// same loss of a message acked stored is a failure.
func TestCheckPushedLostWithKilledNode(t *testing.T) {
	build := func(status string) []Event {
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		return []Event{
			{T: t0, Kind: evConnect, Client: "r1", Conn: 1, Node: 0},
			{T: t0.Add(time.Second), Kind: evSend, Client: "s1", To: "r1", ID: "m:s1:1", Node: 0},
			{T: t0.Add(time.Second + time.Millisecond), Kind: evAck, Client: "s1", ID: "m:s1:1", MsgID: "x1", Status: status, Node: 0},
			{T: t0.Add(2 * time.Second), Kind: evFaultStart, Code: fKill, Node: 0, Detail: "kill 0"},
			{T: t0.Add(4 * time.Second), Kind: evFaultEnd, Code: fKill, Node: 0, Detail: "kill 0"},
		}
	}
	r := Check(build("pushed"), "single", 1, time.Minute)
	if r.Failed() || rules(r.Documented) != "lost:m:s1:1" || r.Lost != 1 {
		t.Fatalf("pushed then killed: failures %q, documented %q, lost %d; want documented, counted lost", rules(r.Failures), rules(r.Documented), r.Lost)
	}
	if r := Check(build("stored"), "single", 1, time.Minute); rules(r.Failures) != "lost:m:s1:1" {
		t.Fatalf("stored then killed: failures %q; want a failure", rules(r.Failures))
	}
}

// After a MySQL fault healed, a node may hold rows in its spool for a few
// seconds more and store later messages behind them: a sender that moved to
// another node then is documented within mysqlSettle, a failure after it.
func TestCheckSenderMovedWhileSpoolMoves(t *testing.T) {
	build := func(after time.Duration) []Event {
		h := &hist{t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		h.add(Event{Kind: evConnect, Client: "r1", Conn: 1, Node: 2})
		h.add(Event{Kind: evFaultStart, Code: fMySQLBlackhole, Node: -1, Detail: "mysql blackhole"})
		h.add(Event{Kind: evFaultEnd, Code: fMySQLBlackhole, Node: -1, Detail: "mysql blackhole"})
		ev := h.ev
		at := ev[len(ev)-1].T.Add(after)
		for i, e := range []Event{
			{Kind: evSend, Client: "s1", To: "r1", ID: "m:s1:1", Node: 1},
			{Kind: evAck, Client: "s1", ID: "m:s1:1", MsgID: "x1", Status: "stored", Node: 1},
			{Kind: evSend, Client: "s1", To: "r1", ID: "m:s1:2", Node: 0},
			{Kind: evAck, Client: "s1", ID: "m:s1:2", MsgID: "x2", Status: "pushed", Node: 0},
			{Kind: evRecv, Client: "r1", From: "s1", ID: "m:s1:2", MsgID: "x2", Node: 2},
			{Kind: evRecv, Client: "r1", From: "s1", ID: "m:s1:1", MsgID: "x1", Node: 2},
		} {
			e.T = at.Add(time.Duration(i) * 100 * time.Millisecond)
			ev = append(ev, e)
		}
		return ev
	}
	if r := Check(build(2*time.Second), "cluster", 1, time.Minute); r.Failed() || len(r.Documented) != 1 {
		t.Fatalf("moved 2 s after MySQL healed: failures %q, documented %d; want 1 documented", rules(r.Failures), len(r.Documented))
	}
	if r := Check(build(mysqlSettle+time.Second), "cluster", 1, time.Minute); rules(r.Failures) != "order:m:s1:1" {
		t.Fatalf("moved long after MySQL healed: failures %q; want order:m:s1:1", rules(r.Failures))
	}
}
