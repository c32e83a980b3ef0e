package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Finding is one rule broken: a failure, or a case the README documents.
type Finding struct {
	Rule      string // lost, order, phantom, misdelivered, duplicate, pending, crash, panic, resources
	ID        string
	Sender    string
	Recipient string
	Ack       string   // "pushed id=...", "stored id=...", "none"
	Nodes     string   // where the sender sent it and where the recipient was
	Faults    []string // faults active around then
	Detail    string
	// Moved: an order finding where the sender's earlier message entered
	// through another node than the one that overtook it, and that node was
	// cut off (stopped, killed, without Redis or MySQL) in between: README
	// "Several nodes" documents that order then holds per entry node only.
	Moved bool
	// Refused: the recipient's init got unavailable between the send and the
	// receipt (its backlog could not be read, it chatted live): the README
	// documents that older stored messages then come after newer live ones.
	Refused bool
}

// Result is what the checker found in one setup's history.
type Result struct {
	Setup    string
	Seed     uint64
	Duration time.Duration

	FaultsByKind map[string]int

	Sent, Acked, Received, Lost, OutOfOrder, Duplicates      int
	LegacySent, LegacyReceived, LegacyLost, LegacyOutOfOrder int
	LegacyDuplicates                                         int // of Duplicates: received twice by a legacy client

	Failures []Finding
	// Documented: order findings the README documents (an init that got
	// unavailable chats live, its older backlog comes at a later init; a
	// sender that changed node while the one it left was cut off).
	Documented []Finding
	Notes      []string
	Logs       []string
	History    string
}

// Failed: something broke a rule (documented cases aside).
func (r *Result) Failed() bool { return len(r.Failures) > 0 }

// msgInfo is everything the history says about one message.
type msgInfo struct {
	id, sender, to, group string
	legacy, api           bool
	seq                   int
	sendNodes             map[int]bool
	firstSend, lastSend   time.Time
	settled               time.Time // after this the server cannot take it again
	acked                 bool
	ack                   string
	errors                []string
}

type interval struct {
	node       int
	start, end time.Time
}

type faultSpan struct {
	kind, detail string
	node         int
	start, end   time.Time
}

var forever = time.Unix(math.MaxInt32, 0)

// history is the indexed form of the events.
type history struct {
	msgs    map[string]*msgInfo
	order   []string           // message ids in first-send order
	recv    map[string][]Event // account -> receipts in time order
	conns   map[string][]interval
	faults  []faultSpan
	members map[string][]string
	drained time.Time              // start of the last drain; zero if the run did not get there
	inits   map[string][]time.Time // account -> times its inits finished
	refused map[string][]time.Time // account -> times its init's backlog was refused (unavailable)
	end     time.Time
}

func index(events []Event) *history {
	h := &history{msgs: map[string]*msgInfo{}, recv: map[string][]Event{}, conns: map[string][]interval{}, members: map[string][]string{}, refused: map[string][]time.Time{}, inits: map[string][]time.Time{}}
	open := map[string]*interval{}       // client/conn -> connection
	openFault := map[string]*faultSpan{} // detail -> span
	sort.SliceStable(events, func(i, j int) bool { return events[i].T.Before(events[j].T) })
	for _, e := range events {
		if e.T.After(h.end) {
			h.end = e.T
		}
		switch e.Kind {
		case evSend:
			m := h.msgs[e.ID]
			if m == nil {
				m = &msgInfo{id: e.ID, sender: e.Client, to: e.To, group: e.Group, legacy: e.Legacy, api: strings.HasPrefix(e.ID, "a:"),
					sendNodes: map[int]bool{}, firstSend: e.T, seq: seqOf(e.ID)}
				h.msgs[e.ID] = m
				h.order = append(h.order, e.ID)
			}
			m.sendNodes[e.Node] = true
			m.lastSend, m.settled = e.T, e.T
		case evAck:
			if m := h.msgs[e.ID]; m != nil {
				if !m.acked {
					m.ack = strings.TrimSpace(e.Status + " id=" + e.MsgID)
				}
				m.acked = true
				if m.api {
					m.settled = e.T
				}
			}
		case evSendError:
			if m := h.msgs[e.ID]; m != nil {
				m.errors = append(m.errors, e.Code)
				if m.api {
					m.settled = e.T
					if e.Uncertain {
						m.settled = forever
					}
				}
			}
		case evRecv:
			h.recv[e.Client] = append(h.recv[e.Client], e)
		case evOpen:
			open[connKey(e.Client, e.Conn)] = &interval{node: e.Node, start: e.T, end: forever}
		case evConnect:
			if open[connKey(e.Client, e.Conn)] == nil { // a history without open events
				open[connKey(e.Client, e.Conn)] = &interval{node: e.Node, start: e.T, end: forever}
			}
			h.inits[e.Client] = append(h.inits[e.Client], e.T)
		case evDisconnect:
			if iv := open[connKey(e.Client, e.Conn)]; iv != nil {
				iv.end = e.T
				h.conns[e.Client] = append(h.conns[e.Client], *iv)
				delete(open, connKey(e.Client, e.Conn))
			}
		case evNote:
			if e.Code == "unavailable" && e.Client != "" {
				h.refused[e.Client] = append(h.refused[e.Client], e.T)
			}
		case evGroup:
			h.members[e.Group] = strings.Split(e.Detail, ",")
		case evFaultStart:
			openFault[e.Detail] = &faultSpan{kind: e.Code, detail: e.Detail, node: e.Node, start: e.T, end: forever}
		case evFaultEnd:
			if f := openFault[e.Detail]; f != nil {
				f.end = e.T
				h.faults = append(h.faults, *f)
				delete(openFault, e.Detail)
			}
		case evPhase:
			if e.Detail == "drained" {
				h.drained = e.T
			}
		}
	}
	for k, iv := range open {
		client := k[:strings.LastIndex(k, "#")]
		h.conns[client] = append(h.conns[client], *iv)
	}
	for _, f := range openFault {
		h.faults = append(h.faults, *f)
	}
	return h
}

func connKey(client string, conn int) string { return client + "#" + strconv.Itoa(conn) }

// seqOf reads the sender's sequence number from "<kind>:<sender>:<seq>".
func seqOf(id string) int {
	n, _ := strconv.Atoi(id[strings.LastIndex(id, ":")+1:])
	return n
}

// recipients of m: its addressee, or every member of its group but the sender.
func (h *history) recipients(m *msgInfo) []string {
	if m.group == "" {
		return []string{m.to}
	}
	var out []string
	for _, a := range h.members[m.group] {
		if a != m.sender {
			out = append(out, a)
		}
	}
	return out
}

// Check applies every rule to a setup's history.
func Check(events []Event, setup string, seed uint64, d time.Duration) *Result {
	h := index(events)
	r := &Result{Setup: setup, Seed: seed, Duration: d, FaultsByKind: map[string]int{}}
	cluster := setup == "cluster"
	for _, e := range events {
		switch e.Kind {
		case evFaultStart:
			r.FaultsByKind[e.Code]++
		case evNote:
			r.Notes = append(r.Notes, strings.TrimSpace(fmt.Sprintf("%s %s %s", e.Client, e.Code, e.Detail)))
		case evNodeExit:
			if e.Status == "unexpected" {
				r.add(Finding{Rule: "crash", Nodes: fmt.Sprintf("node %d", e.Node), Detail: e.Detail})
			}
		case evLogPanic:
			r.add(Finding{Rule: "panic", Nodes: fmt.Sprintf("node %d", e.Node), Detail: e.Detail})
		}
	}

	// First receipts, duplicates, and what was never sent.
	first := map[string]map[string]Event{} // account -> id -> first receipt
	for acct, rs := range h.recv {
		first[acct] = map[string]Event{}
		for _, e := range rs {
			m := h.msgs[e.ID]
			if prev, seen := first[acct][e.ID]; seen {
				r.Duplicates++
				if m != nil && m.legacy {
					r.LegacyDuplicates++
				}
				if e.MsgID == "" || e.MsgID != prev.MsgID {
					r.add(Finding{Rule: "duplicate", ID: e.ID, Sender: e.From, Recipient: acct,
						Detail: fmt.Sprintf("received again with id %q, first with %q: not droppable by id", e.MsgID, prev.MsgID)})
				}
				continue
			}
			first[acct][e.ID] = e
			switch {
			case m == nil:
				r.add(Finding{Rule: "phantom", ID: e.ID, Sender: e.From, Recipient: acct, Nodes: fmt.Sprintf("received on node %d", e.Node),
					Detail: "received, never sent"})
			case e.From != m.sender || !contains(h.recipients(m), acct):
				r.add(Finding{Rule: "misdelivered", ID: e.ID, Sender: m.sender, Recipient: acct,
					Detail: fmt.Sprintf("from %q to %q received by %q as from %q", m.sender, strings.Join(h.recipients(m), ","), acct, e.From)})
			}
		}
	}

	// Every message acknowledged reached every recipient; legacy counts.
	for _, id := range h.order {
		m := h.msgs[id]
		if m.legacy {
			r.LegacySent++
		} else {
			r.Sent++
			if m.acked {
				r.Acked++
			}
		}
		for _, to := range h.recipients(m) {
			_, got := first[to][id]
			switch {
			case m.legacy && got:
				r.LegacyReceived++
			case m.legacy:
				r.LegacyLost++
			case got:
				r.Received++
			case m.acked:
				r.Lost++
				f := h.finding("lost", m, to, m.firstSend, m.settled, "acknowledged, never received")
				if h.pushedThenKilled(m, to) {
					// README, delivery table: a message acked pushed that its
					// receiver had not acknowledged is lost with a killed node.
					f.Detail += "; pushed, then the recipient's node was SIGKILLed before the receiver acknowledged it (README: not yet durable)"
					r.Documented = append(r.Documented, f)
					continue
				}
				r.add(f)
			}
		}
	}

	// Order of first receipts per sender and recipient.
	type pair struct{ from, to string }
	byPair := map[pair][]*msgInfo{}
	for _, id := range h.order {
		m := h.msgs[id]
		for _, to := range h.recipients(m) {
			if _, got := first[to][id]; got {
				byPair[pair{m.sender, to}] = append(byPair[pair{m.sender, to}], m)
			}
		}
	}
	pairs := make([]pair, 0, len(byPair))
	for p := range byPair {
		pairs = append(pairs, p)
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].from+pairs[i].to < pairs[j].from+pairs[j].to })
	for _, p := range pairs {
		ms := byPair[p]
		sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
		for i, a := range ms {
			ta := first[p.to][a.id].T
			var overtaken []string
			for _, b := range ms[i+1:] {
				// b was sent only after a could no longer be taken again, yet
				// arrived first.
				if a.settled.Before(b.firstSend) && first[p.to][b.id].T.Before(ta) {
					overtaken = append(overtaken, b.id)
				}
			}
			if len(overtaken) == 0 {
				continue
			}
			if a.legacy {
				r.LegacyOutOfOrder++
			} else {
				r.OutOfOrder++
			}
			f := h.finding("order", a, p.to, a.firstSend, ta, fmt.Sprintf("received at %s after %d later message(s), first %s", ta.Format("15:04:05.000"), len(overtaken), overtaken[0]))
			if cluster {
				if b := h.msgs[overtaken[0]]; h.movedAround(a, b, p.to, first[p.to][b.id].T) {
					f.Moved = true
					f.Detail += fmt.Sprintf("; the sender changed node (%v, then %v) while the first, or the recipient's, was cut off (README, Several nodes: order per entry node during a fault)",
						keys(a.sendNodes), keys(b.sendNodes))
				}
			}
			r.add(f)
		}
	}

	// Rows left unsent for recipients that drained at the end.
	if !h.drained.IsZero() {
		for _, e := range events {
			if e.Kind != evPending {
				continue
			}
			if h.connectedAfter(e.To, h.drained) {
				r.add(Finding{Rule: "pending", ID: e.ID, Sender: e.From, Recipient: e.To, Ack: "msg_id=" + e.MsgID,
					Detail: "row still status=0 after the recipient's last init"})
			}
		}
	} else {
		r.Notes = append(r.Notes, "the run did not reach the final drain: pending rows not checked")
	}
	r.checkResources(events)
	return r
}

func (r *Result) add(f Finding) {
	if f.Rule == "order" && (f.Refused || f.Moved) {
		r.Documented = append(r.Documented, f)
		return
	}
	r.Failures = append(r.Failures, f)
}

// finding describes m's trouble at recipient to, with the nodes and faults
// around [from, until].
func (h *history) finding(rule string, m *msgInfo, to string, from, until time.Time, detail string) Finding {
	ack := "none"
	if m.acked {
		ack = m.ack
	}
	if len(m.errors) > 0 {
		ack += " (errors: " + strings.Join(m.errors, ",") + ")"
	}
	lo, hi := window(m, m.firstSend, m.settled)
	var faults []string
	for _, f := range h.faults {
		if f.start.Before(hi) && f.end.After(lo) {
			faults = append(faults, f.detail)
		}
	}
	refused := false
	for _, t := range h.refused[to] {
		if t.After(m.firstSend) && t.Before(until) {
			detail += fmt.Sprintf("; the recipient's init at %s got `unavailable` (backlog held back, chatting live: README, MySQL outage)", t.Format("15:04:05.000"))
			refused = true
			break
		}
	}
	return Finding{Rule: rule, ID: m.id, Sender: m.sender, Recipient: to, Ack: ack,
		Nodes:  fmt.Sprintf("sent via %v, recipient on %v", keys(m.sendNodes), keys(h.nodesOf(to, lo, hi))),
		Faults: faults, Detail: detail, Refused: refused}
}

// pushedThenKilled: m was acknowledged pushed, and a node the recipient was
// connected to was SIGKILLed after the send and around then.
func (h *history) pushedThenKilled(m *msgInfo, to string) bool {
	if !strings.HasPrefix(m.ack, "pushed") {
		return false
	}
	lo, hi := window(m, m.firstSend, m.settled)
	on := h.nodesOf(to, lo, hi)
	for _, f := range h.faults {
		if f.kind == fKill && on[f.node] && f.start.After(m.firstSend) && f.start.Before(hi) {
			return true
		}
	}
	return false
}

// window is "around then": from 5 s before the first send to 20 s after the
// message settled (or was received).
func window(m *msgInfo, from, until time.Time) (time.Time, time.Time) {
	if until.Equal(forever) || until.Before(m.lastSend) {
		until = m.lastSend
	}
	return from.Add(-5 * time.Second), until.Add(20 * time.Second)
}

// nodesOf: the nodes where account had a connection between lo and hi.
func (h *history) nodesOf(acct string, lo, hi time.Time) map[int]bool {
	out := map[int]bool{}
	for _, iv := range h.conns[acct] {
		if iv.start.Before(hi) && iv.end.After(lo) {
			out[iv.node] = true
		}
	}
	return out
}

// redisSettle is how long after a Redis fault healed the nodes' account map
// entries take to be written again (each node's writer retries with a backoff
// of up to 5 s, and a liveness key lasts 6 s): until then a node may still
// take another's accounts for gone.
const redisSettle = 10 * time.Second

// mysqlSettle is how long after a MySQL fault healed a node may still hold
// rows in its spool (its writer retries with a backoff of up to 5 s, then
// moves the spool): until they are in the table, it stores later messages to
// the same recipients behind them, while another node pushes them live.
const mysqlSettle = 10 * time.Second

// movedAround: b (sent after a) entered, at least once, through a node a did
// not enter through, and
// one of a's nodes or of the recipient's was stopped, killed, or cut off from
// Redis or MySQL (or all nodes were) at some time from a's send until b
// arrived (tb). Nodes cut off from each other store what they cannot route,
// or keep it behind rows they cannot commit, and the node the sender moved to
// cannot know: order holds per entry node.
func (h *history) movedAround(a, b *msgInfo, to string, tb time.Time) bool {
	moved := false
	for n := range b.sendNodes { // b may have been sent again, through another node
		if !a.sendNodes[n] {
			moved = true
		}
	}
	if !moved {
		return false
	}
	recipient := h.nodesOf(to, a.firstSend, tb)
	for _, f := range h.faults {
		end := f.end
		switch f.kind {
		case fRedisCut, fRedisBlackhole, fRedisRestart:
			end = end.Add(redisSettle)
		case fMySQLCut, fMySQLBlackhole, fMySQLDelay:
			end = end.Add(mysqlSettle)
		}
		if !(f.start.Before(tb) && end.After(a.firstSend)) {
			continue
		}
		if f.node < 0 || a.sendNodes[f.node] || recipient[f.node] {
			return true
		}
	}
	return false
}

func (h *history) connectedAfter(acct string, t time.Time) bool {
	for _, it := range h.inits[acct] {
		if it.After(t) {
			return true
		}
	}
	return false
}

// checkResources compares the end of the run with the warm-up: goroutines and
// RSS should come back near where they were (the baseline is the largest
// warm-up figure of the setup, since restarted nodes have none of their own).
func (r *Result) checkResources(events []Event) {
	var baseRSS int64
	baseG := 0
	for _, e := range events {
		if e.Kind == evResource && e.Code == "warm" {
			baseRSS = max(baseRSS, e.RSSKB)
			baseG = max(baseG, e.Goroutines)
		}
	}
	for _, e := range events {
		if e.Kind != evResource || e.Code != "end" {
			continue
		}
		if e.Detail != "" {
			r.Notes = append(r.Notes, fmt.Sprintf("node %d: %s", e.Node, e.Detail))
		}
		if baseG > 0 && e.Goroutines > 2*baseG+100 {
			r.add(Finding{Rule: "resources", Nodes: fmt.Sprintf("node %d", e.Node), Detail: fmt.Sprintf("%d goroutines at the end, %d after warm-up", e.Goroutines, baseG)})
		}
		if baseRSS > 0 && e.RSSKB > 2*baseRSS+100*1024 {
			r.add(Finding{Rule: "resources", Nodes: fmt.Sprintf("node %d", e.Node), Detail: fmt.Sprintf("RSS %d KiB at the end, %d KiB after warm-up", e.RSSKB, baseRSS)})
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
