package handlers

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/cluster"
	"chatserver/hub"
	"chatserver/offline"
	"chatserver/presence"
)

// fakeRemote is another node as the routing sees it: where accounts are,
// and the envelopes sent, each answered when the test says.
type fakeRemote struct {
	mu    sync.Mutex
	where map[string][]string
	sent  []sentEnvelope
	gone  bool // Send answers ErrInboxGone
}

type sentEnvelope struct {
	node string
	env  cluster.Envelope
	done func([]cluster.Outcome)
}

func (f *fakeRemote) Locate(_ context.Context, accounts []string) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for _, a := range accounts {
		if n := f.where[a]; len(n) > 0 {
			out[a] = n
		}
	}
	return out, nil
}

func (f *fakeRemote) Where(ctx context.Context, a string) ([]string, error) {
	m, err := f.Locate(ctx, []string{a})
	return m[a], err
}

func (f *fakeRemote) Send(_ context.Context, node string, env cluster.Envelope, done func([]cluster.Outcome)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return cluster.ErrInboxGone
	}
	f.sent = append(f.sent, sentEnvelope{node, env, done})
	return nil
}

func (f *fakeRemote) Broadcast(context.Context, cluster.Envelope) error { return nil }
func (f *fakeRemote) Control(context.Context, cluster.Envelope) error   { return nil }

func (f *fakeRemote) set(account string, nodes ...string) {
	f.mu.Lock()
	f.where[account] = nodes
	f.mu.Unlock()
}

func (f *fakeRemote) envelopes() []sentEnvelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentEnvelope(nil), f.sent...)
}

// crossFixture is node n1, on a memory store, routing to other nodes through
// remote; set adjusts its Config.
func crossFixture(t *testing.T, remote *fakeRemote, set func(*Config)) *fixture {
	table := hub.NewTable(100)
	st := newMemStore()
	cfg := Config{Node: "n1", Broadcasters: []string{"*"}}
	if set != nil {
		set(&cfg)
	}
	h := New(cfg, Deps{
		Table: table, Queue: st, Backlog: st, Presence: presence.NewLocal("n1"), Remote: remote,
		Groups: memGroups{}, Log: zerolog.New(zerolog.NewTestWriter(t)),
	})
	return &fixture{h: h, table: table, store: st}
}

// TestCrossOrderKeepsStoredMessagesFirst: bob is on n2. m1 goes there and is
// not answered; n2 is then skipped, so m2 is stored here: it waits behind m1,
// which is stored when its wait times out, so the rows are in send order.
// Once committed, n2 is asked to drain bob before the acks go and before m3,
// which goes to n2 after the request.
func TestCrossOrderKeepsStoredMessagesFirst(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{"bob": {"n2"}}}
	fx := crossFixture(t, remote, nil)
	st := fx.store
	alice, ac := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)

	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	remote.set("bob") // n2 skipped: found nowhere
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	if n := st.unsent(); n != 0 {
		t.Fatalf("%d rows stored while m1 still waits for n2's answer; want m2 kept behind it", n)
	}
	remote.set("bob", "n2") // n2 answers again, as far as the map says
	sent := remote.envelopes()
	if len(sent) != 1 || sent[0].env.Content != "m1" {
		t.Fatalf("envelopes %+v; want m1 only", sent)
	}
	sent[0].done([]cluster.Outcome{cluster.NotTaken}) // timed out: stored here

	deadline := time.Now().Add(5 * time.Second)
	for len(remote.envelopes()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st.mu.Lock()
	var contents []string
	for _, r := range st.rows {
		contents = append(contents, r.Content)
	}
	st.mu.Unlock()
	if len(contents) != 2 || contents[0] != "m1" || contents[1] != "m2" {
		t.Fatalf("rows %v; want m1, m2 in send order", contents)
	}
	sent = remote.envelopes()
	if len(sent) != 2 || sent[1].env.Kind != "drain" || sent[1].node != "n2" || sent[1].env.To[0] != "bob" {
		t.Fatalf("envelopes %+v; want a drain request for bob to n2 after the commit", sent)
	}
	acks := 0
	for time.Now().Before(deadline) && acks < 2 {
		acks = 0
		for _, p := range ac.payloads(t) {
			if p["flag"] == "ack" && p["status"] == "stored" {
				acks++
			}
		}
		time.Sleep(time.Millisecond)
	}
	if acks != 2 {
		t.Fatalf("alice got %d stored acks; want 2 once the drain request is sent", acks)
	}
	sent[1].done([]cluster.Outcome{cluster.Pushed})

	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m3","cid":"3"}`)
	sent = remote.envelopes()
	if len(sent) != 3 || sent[2].env.Content != "m3" || sent[2].node != "n2" {
		t.Fatalf("envelopes %+v; want m3 to n2 after the drain request", sent)
	}
}

// TestCrossOrderLocalWaitsBehindInFlight: m1 goes to n2, where bob was; bob
// then connects here and m2 would be pushed to him at once. m2 waits behind
// m1 instead; n2 does not answer, so m1 is written to bob's connection here
// (not stored for a later init), then m2: bob gets both, in order, live.
func TestCrossOrderLocalWaitsBehindInFlight(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{"bob": {"n2"}}}
	fx := crossFixture(t, remote, nil)
	table, st := fx.table, fx.store
	alice, _ := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)

	remote.set("bob") // bob left n2 and connects here
	bob, bc := fx.conn("bob")
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	deadline := time.Now().Add(5 * time.Second)
	for !table.Online("bob") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	var got []string
	messages := func() []string {
		var out []string
		for _, p := range bc.payloads(t) {
			if c, ok := p["content"].(string); ok {
				out = append(out, c)
			}
		}
		return out
	}
	if got = messages(); len(got) != 0 {
		t.Fatalf("bob got %v while m1 was still in flight to n2; want m2 kept behind m1", got)
	}
	sent := remote.envelopes()
	if len(sent) != 1 || sent[0].env.Content != "m1" {
		t.Fatalf("envelopes %+v; want m1 only", sent)
	}
	sent[0].done([]cluster.Outcome{cluster.NotTaken}) // n2 did not take it
	for len(got) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		got = messages()
	}
	if len(got) != 2 || got[0] != "m1" || got[1] != "m2" {
		t.Fatalf("bob got %v; want m1, m2 live, in order", got)
	}
	if n := st.unsent(); n != 0 {
		t.Fatalf("%d rows stored; want none (bob was here to take m1)", n)
	}
}

// TestCrossOrderInboxLostInFlight: m1 is in flight to n2 when n2's inbox is
// lost (Redis restarted); m2 cannot be sent there. m2 is stored behind m1,
// which is stored once its wait times out: the rows are in send order.
func TestCrossOrderInboxLostInFlight(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{"bob": {"n2"}}}
	fx := crossFixture(t, remote, nil)
	st := fx.store
	alice, _ := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	remote.mu.Lock()
	remote.gone = true
	remote.mu.Unlock()
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	if n := st.unsent(); n != 0 {
		t.Fatalf("%d rows stored while m1 is still in flight; want m2 kept behind it", n)
	}
	remote.envelopes()[0].done([]cluster.Outcome{cluster.NotTaken})
	deadline := time.Now().Add(5 * time.Second)
	for st.unsent() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st.mu.Lock()
	var contents []string
	for _, r := range st.rows {
		contents = append(contents, r.Content)
	}
	st.mu.Unlock()
	if len(contents) != 2 || contents[0] != "m1" || contents[1] != "m2" {
		t.Fatalf("rows %v; want m1, m2 in send order", contents)
	}
}

// TestCrossOrderNewConnectionElsewhereWaits: m1 is in flight to n2 when bob
// connects on n3 too. m2 is not sent to n3 (it would reach bob's new
// connection before m1, which n2 may not take): it is stored behind m1, and
// once both are committed every node bob is on is asked to drain him.
func TestCrossOrderNewConnectionElsewhereWaits(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{"bob": {"n2"}}}
	fx := crossFixture(t, remote, nil)
	st := fx.store
	alice, _ := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	remote.set("bob", "n2", "n3")
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	if sent := remote.envelopes(); len(sent) != 1 {
		t.Fatalf("envelopes %+v; want m1 only (m2 kept back from bob's new connection on n3)", sent)
	}
	remote.envelopes()[0].done([]cluster.Outcome{cluster.NotTaken})
	deadline := time.Now().Add(5 * time.Second)
	drains := map[string]bool{}
	for len(drains) < 2 && time.Now().Before(deadline) {
		for _, e := range remote.envelopes() {
			if e.env.Kind == "drain" {
				drains[e.node] = true
			}
		}
		time.Sleep(time.Millisecond)
	}
	st.mu.Lock()
	var contents []string
	for _, r := range st.rows {
		contents = append(contents, r.Content)
	}
	st.mu.Unlock()
	if len(contents) != 2 || contents[0] != "m1" || contents[1] != "m2" {
		t.Fatalf("rows %v; want m1, m2 in send order", contents)
	}
	if !drains["n2"] || !drains["n3"] {
		t.Fatalf("drain requests to %v; want n2 and n3", drains)
	}
}

// TestCrossOrderStoredThereWhileConnectingHere: m1 goes to n2, where bob was;
// bob leaves n2 and connects here, and his init reads an empty backlog; then
// n2 answers that it stored m1 (committed after that read). m2, sent next,
// must not reach bob before m1: bob's backlog is read again first.
func TestCrossOrderStoredThereWhileConnectingHere(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{"bob": {"n2"}}}
	fx := crossFixture(t, remote, nil)
	table, st := fx.table, fx.store
	alice, _ := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	remote.set("bob")
	bob, bc := fx.conn("bob")
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	deadline := time.Now().Add(5 * time.Second)
	for !table.Online("bob") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // bob's init has read his (empty) backlog
	env := remote.envelopes()[0].env
	st.mu.Lock() // n2 commits m1 to the shared table
	st.addLocked(offline.Message{To: "bob", From: env.From, Content: env.Content, ID: env.ID})
	st.mu.Unlock()
	remote.envelopes()[0].done([]cluster.Outcome{cluster.Stored})
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	var got []string
	for len(got) < 2 && time.Now().Before(deadline) {
		got = nil
		for _, p := range bc.payloads(t) {
			if c, ok := p["content"].(string); ok {
				got = append(got, c)
			}
		}
		time.Sleep(time.Millisecond)
	}
	if len(got) != 2 || got[0] != "m1" || got[1] != "m2" {
		t.Fatalf("bob got %v; want m1 (stored on n2, read again here) then m2", got)
	}
}

// TestCrossOrderFoundNowhereThenSomewhere: m1 is stored for bob, found
// nowhere; right after, bob shows up on n2 (a node back from a Redis outage
// writing its entries again, whose re-read may have missed m1's row). m2 to
// n2 carries a drain request, so n2 reads bob's backlog before m2.
func TestCrossOrderFoundNowhereThenSomewhere(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{}}
	fx := crossFixture(t, remote, nil)
	alice, ac := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		for _, p := range ac.payloads(t) {
			if p["flag"] == "ack" {
				n++
			}
		}
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	remote.set("bob", "n2")
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	sent := remote.envelopes()
	if len(sent) != 1 || sent[0].env.Content != "m2" || len(sent[0].env.Drain) != 1 || sent[0].env.Drain[0] != "bob" {
		t.Fatalf("envelopes %+v; want m2 to n2 carrying a drain request for bob", sent)
	}
}

// TestCrossOrderOtherConnectionNotTakenIsNotDeliveredAgain: bob is here and,
// as far as the account map says, on n2 too (an entry of a node that has just
// died). m1 is pushed to bob here and a copy without the storing duty goes to
// n2; m2 follows. n2 does not answer m1's copy: bob must not get m1 a second
// time, after m2.
func TestCrossOrderOtherConnectionNotTakenIsNotDeliveredAgain(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{}}
	fx := crossFixture(t, remote, nil)
	table, st := fx.table, fx.store
	alice, ac := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	bob, bc := fx.conn("bob")
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	deadline := time.Now().Add(5 * time.Second)
	for !table.Online("bob") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	remote.set("bob", "n2")
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	sent := remote.envelopes()
	if len(sent) != 2 || sent[0].env.Store || sent[0].env.Content != "m1" {
		t.Fatalf("envelopes %+v; want m1 and m2 to n2, without the storing duty", sent)
	}
	sent[0].done([]cluster.Outcome{cluster.NotTaken})
	sent[1].done([]cluster.Outcome{cluster.NotTaken})
	acks := 0
	for acks < 2 && time.Now().Before(deadline) {
		acks = 0
		for _, p := range ac.payloads(t) {
			if p["flag"] == "ack" {
				if p["status"] != "pushed" {
					t.Fatalf("alice got %v; want pushed (bob is here)", p)
				}
				acks++
			}
		}
		time.Sleep(time.Millisecond)
	}
	if acks != 2 {
		t.Fatalf("alice got %d acks; want 2", acks)
	}
	time.Sleep(50 * time.Millisecond)
	var got []string
	for _, p := range bc.payloads(t) {
		if c, ok := p["content"].(string); ok {
			got = append(got, c)
		}
	}
	if len(got) != 2 || got[0] != "m1" || got[1] != "m2" {
		t.Fatalf("bob got %v; want m1, m2 once each", got)
	}
	if n := st.unsent(); n != 0 {
		t.Fatalf("%d rows stored; want none", n)
	}
}

// TestCrossOrderOtherConnectionInitializingWaits: bob is on n2 (a node that
// has just died, as far as the map says) and has just connected on n3, whose
// init is still reading his backlog. m1 goes to n2 with the storing duty and
// to n3 without it; n3 is not live for bob yet and drops its copy. m2 must
// not go to n3 (bob's connection there is live by then and would get m2
// before m1, which n2 does not take): it is stored behind m1, and n3 is
// asked to drain bob once both rows are committed.
func TestCrossOrderOtherConnectionInitializingWaits(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{"bob": {"n2", "n3"}}}
	fx := crossFixture(t, remote, nil)
	st := fx.store
	alice, _ := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	sent := remote.envelopes()
	if len(sent) != 2 || sent[0].node != "n2" || !sent[0].env.Store || sent[1].node != "n3" || sent[1].env.Store {
		t.Fatalf("envelopes %+v; want m1 to n2 with the storing duty and to n3 without", sent)
	}
	sent[1].done([]cluster.Outcome{cluster.Gone}) // bob's init on n3 is reading his backlog

	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	for _, e := range remote.envelopes()[2:] {
		if e.env.Content == "m2" {
			t.Fatalf("m2 sent to %s while m1 was in flight and n3 had dropped its copy; want m2 stored behind m1", e.node)
		}
	}
	sent[0].done([]cluster.Outcome{cluster.NotTaken}) // n2 is dead: stored here
	deadline := time.Now().Add(5 * time.Second)
	drains := map[string]bool{}
	for !drains["n3"] && time.Now().Before(deadline) {
		for _, e := range remote.envelopes() {
			if e.env.Kind == "drain" {
				drains[e.node] = true
			}
		}
		time.Sleep(time.Millisecond)
	}
	st.mu.Lock()
	var contents []string
	for _, r := range st.rows {
		contents = append(contents, r.Content)
	}
	st.mu.Unlock()
	if len(contents) != 2 || contents[0] != "m1" || contents[1] != "m2" {
		t.Fatalf("rows %v; want m1, m2 in send order", contents)
	}
	if !drains["n3"] {
		t.Fatalf("drain requests to %v; want n3 (bob's connection there read his backlog before m1 was stored)", drains)
	}
}

// TestCrossOrderOverdueInFlightWaits: m1 goes to n2, and this node freezes
// before n2's answer (or its timeout) is handled; n2 meanwhile left m1 to
// this node (read too late). On waking, this node handles m2 before m1's
// timeout: m2 must not go to n2, which takes an envelope sent that much
// later and would push it before m1 is stored. m2 is stored behind m1.
func TestCrossOrderOverdueInFlightWaits(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{"bob": {"n2"}}}
	const confirm = 20 * time.Millisecond
	fx := crossFixture(t, remote, func(c *Config) { c.ConfirmTimeout = confirm })
	st := fx.store
	alice, _ := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	time.Sleep(confirm) // frozen: m1's timeout is due, not handled yet
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	sent := remote.envelopes()
	if len(sent) != 1 || sent[0].env.Content != "m1" {
		t.Fatalf("envelopes %+v; want m1 only (m2 kept behind m1, which n2 may have left to us)", sent)
	}
	sent[0].done([]cluster.Outcome{cluster.NotTaken}) // the timeout, handled now
	deadline := time.Now().Add(5 * time.Second)
	for st.unsent() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st.mu.Lock()
	var contents []string
	for _, r := range st.rows {
		contents = append(contents, r.Content)
	}
	st.mu.Unlock()
	if len(contents) != 2 || contents[0] != "m1" || contents[1] != "m2" {
		t.Fatalf("rows %v; want m1, m2 in send order", contents)
	}
}

// TestCrossOrderStoredFromClosedConnectionFirst: m1 is pushed to bob here,
// who acknowledges what he gets, and his connection closes before he
// acknowledged it: m1 is stored here again. bob is on n2 now. m2 must not
// reach him there before m1: n2 is asked to drain bob before m2, or m2
// carries the request.
func TestCrossOrderStoredFromClosedConnectionFirst(t *testing.T) {
	remote := &fakeRemote{where: map[string][]string{}}
	fx := crossFixture(t, remote, func(c *Config) { c.MaxUnacked = 16 })
	table, st := fx.table, fx.store
	alice, _ := fx.conn("alice")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	bob, bc := fx.conn("bob")
	fx.send(bob, `{"flag":"init","from":"bob","ack":true}`)
	deadline := time.Now().Add(5 * time.Second)
	for !table.Online("bob") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m1","cid":"1"}`)
	for len(bc.payloads(t)) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	fx.h.Closed(bob, fx.table.Remove(bob)) // m1 not acknowledged: stored again
	for st.unsent() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	remote.set("bob", "n2")
	time.Sleep(20 * time.Millisecond) // the drain request, if any, is on its way
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"m2","cid":"2"}`)
	for _, e := range remote.envelopes() {
		if e.env.Kind == cluster.KindDrain || slices.Contains(e.env.Drain, "bob") {
			return // bob reads his backlog there before m2
		}
		if e.env.Content == "m2" {
			t.Fatalf("m2 went to n2 without a drain request for bob before it (m1 is stored here): %+v", remote.envelopes())
		}
	}
}
