package hub

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// sink is a handwritten transport: it keeps what was written.
type sink struct {
	mu     sync.Mutex
	frames []string
	closed int // close code, 0 while open
	fail   bool
}

func (s *sink) WriteFrame(f []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail || s.closed != 0 {
		return errors.New("closed")
	}
	s.frames = append(s.frames, string(f[2:])) // payloads here are < 126 bytes
	return nil
}
func (s *sink) Close(code int, _ string) { s.mu.Lock(); s.closed = code; s.mu.Unlock() }
func (s *sink) RemoteAddr() string       { return "test" }
func (s *sink) Execute(job func()) bool  { job(); return true }
func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.frames...)
}

// testSeq numbers the tests' connections as Table.NewConn would.
var testSeq atomic.Uint64

// newConn makes a connection; its argument only labels it in the test.
func newConn(string) (*Conn, *sink) {
	s := &sink{}
	return &Conn{seq: testSeq.Add(1), t: s}, s
}

// store counts what the table hands to the offline store.
type store struct{ msgs []string }

type testItem struct {
	id string
	st *store
}

func (i *testItem) ID() string   { return i.id }
func (i *testItem) Store() error { i.st.msgs = append(i.st.msgs, i.id); return nil }

func (st *store) fn(m string) Item { return &testItem{m, st} }

func mustBind(t *testing.T, tb *Table, c *Conn, account, peer string) uint64 {
	t.Helper()
	seq, _, _, err := tb.Bind(c, account, peer, 0)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func mustLive(t *testing.T, tb *Table, c *Conn, seq uint64) {
	t.Helper()
	if _, ok := tb.GoLive(c, seq); !ok {
		t.Fatal("GoLive refused with no store in between")
	}
}

func TestDeliverLiveAndOffline(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, bs := newConn("b1")
	tb.Add(bob)
	mustLive(t, tb, bob, mustBind(t, tb, bob, "bob", ""))

	d, err := tb.Deliver("bob", "alice", TextFrame([]byte("hi")), st.fn("hi"))
	if err != nil || d.Pushed != 1 || d.Stored {
		t.Fatalf("deliver to live bob = %+v, %v; want pushed to 1", d, err)
	}
	d, _ = tb.Deliver("carol", "alice", TextFrame([]byte("x")), st.fn("x"))
	if !d.Stored || len(st.msgs) != 1 {
		t.Fatalf("deliver to absent carol = %+v; want stored", d)
	}
	if got := bs.got(); len(got) != 1 || got[0] != "hi" {
		t.Fatalf("bob got %v; want [hi]", got)
	}
}

func TestDrainingAloneStoresAndBlocksGoLive(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, bs := newConn("b1")
	seq := mustBind(t, tb, bob, "bob", "")
	// bob's only connection is draining: the message must go to the store, where
	// the drain will find it, not to the socket ahead of the backlog.
	d, _ := tb.Deliver("bob", "alice", TextFrame([]byte("m1")), st.fn("m1"))
	if !d.Stored || len(bs.got()) != 0 {
		t.Fatalf("deliver while draining = %+v, pushed %v; want stored, nothing pushed", d, bs.got())
	}
	next, ok := tb.GoLive(bob, seq)
	if ok {
		t.Fatal("GoLive succeeded although a message was stored after the drain read")
	}
	mustLive(t, tb, bob, next)
	d, _ = tb.Deliver("bob", "alice", TextFrame([]byte("m2")), st.fn("m2"))
	if d.Pushed != 1 {
		t.Fatalf("after GoLive deliver = %+v; want pushed", d)
	}
}

func TestSecondConnectionQueuesBehindBacklog(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	tab1, s1 := newConn("b1")
	mustLive(t, tb, tab1, mustBind(t, tb, tab1, "bob", ""))
	tab2, s2 := newConn("b2")
	seq := mustBind(t, tb, tab2, "bob", "")
	for i := 0; i < 3; i++ {
		m := fmt.Sprint("m", i)
		if d, _ := tb.Deliver("bob", "alice", TextFrame([]byte(m)), st.fn(m)); d.Pushed != 1 || d.Stored {
			t.Fatalf("deliver %s = %+v; want pushed to the live tab only", m, d)
		}
	}
	if len(s2.got()) != 0 {
		t.Fatalf("draining tab got %v before its backlog; want nothing yet", s2.got())
	}
	mustLive(t, tb, tab2, seq)
	want := []string{"m0", "m1", "m2"}
	for _, s := range []*sink{s1, s2} {
		if got := s.got(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("tab got %v; want %v", got, want)
		}
	}
	if len(st.msgs) != 0 {
		t.Fatalf("stored %v; want nothing (a live tab had them)", st.msgs)
	}
}

func TestPeerFilterLetsOtherSendersThrough(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, bs := newConn("b1")
	mustBind(t, tb, bob, "bob", "alice") // init with to=alice
	if d, _ := tb.Deliver("bob", "carol", TextFrame([]byte("c")), st.fn("c")); d.Pushed != 1 {
		t.Fatalf("carol's message while draining alice's = %+v; want pushed", d)
	}
	if d, _ := tb.Deliver("bob", "alice", TextFrame([]byte("a")), st.fn("a")); !d.Stored {
		t.Fatalf("alice's message while draining alice's = %+v; want stored behind the backlog", d)
	}
	if got := bs.got(); len(got) != 1 || got[0] != "c" {
		t.Fatalf("bob got %v; want [c]", got)
	}
}

func TestQueueOverflowClosesSlowDrainer(t *testing.T) {
	tb := NewTable(2)
	st := &store{}
	live, _ := newConn("b1")
	mustLive(t, tb, live, mustBind(t, tb, live, "bob", ""))
	slow, ss := newConn("b2")
	mustBind(t, tb, slow, "bob", "")
	for i := 0; i < 3; i++ {
		_, _ = tb.Deliver("bob", "alice", TextFrame([]byte("m")), st.fn("m"))
	}
	if ss.closed != int(CloseQueueFull) {
		t.Fatalf("slow drainer close code = %d; want %d", ss.closed, CloseQueueFull)
	}
}

func TestAllTargetsClosingStoresInstead(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, bs := newConn("b1")
	mustLive(t, tb, bob, mustBind(t, tb, bob, "bob", ""))
	bs.fail = true
	d, err := tb.Deliver("bob", "alice", TextFrame([]byte("m")), st.fn("m"))
	if err != nil || !d.Stored || len(st.msgs) != 1 {
		t.Fatalf("deliver to a closing socket = %+v, %v; want stored", d, err)
	}
}

func TestRemoveAndRebind(t *testing.T) {
	tb := NewTable(10)
	a1, _ := newConn("a1")
	a2, _ := newConn("a2")
	tb.Add(a1)
	tb.Add(a2)
	mustBind(t, tb, a1, "alice", "")
	mustBind(t, tb, a2, "alice", "")
	if _, _, _, err := tb.Bind(a1, "mallory", "", 0); err == nil {
		t.Fatal("rebinding a connection to another account succeeded")
	}
	if r := tb.Remove(a1); r.Account != "alice" || r.Last {
		t.Fatalf("remove a1 = %+v; want alice, not last", r)
	}
	if !tb.Online("alice") {
		t.Fatal("alice offline with a2 still connected")
	}
	if r := tb.Remove(a2); r.Account != "alice" || !r.Last {
		t.Fatalf("remove a2 = %+v; want alice, last", r)
	}
	if tb.Online("alice") || tb.Len() != 0 {
		t.Fatalf("after removing both: online %v, len %d; want false, 0", tb.Online("alice"), tb.Len())
	}
}

// TestBindLimit: past the limit a first binding is refused and leaves the
// connection unbound; a later init of a bound connection is not counted; a
// place freed by a close is taken again; 0 is no limit.
func TestBindLimit(t *testing.T) {
	tb := NewTable(10)
	a1, _ := newConn("a1")
	a2, _ := newConn("a2")
	a3, _ := newConn("a3")
	for _, c := range []*Conn{a1, a2, a3} {
		tb.Add(c)
	}
	for _, c := range []*Conn{a1, a2} {
		if _, _, _, err := tb.Bind(c, "alice", "", 2); err != nil {
			t.Fatalf("binding within the limit: %v", err)
		}
	}
	_, _, _, err := tb.Bind(a3, "alice", "", 2)
	var full *ErrAccountFull
	if !errors.As(err, &full) || full.Limit != 2 || full.Account != "alice" {
		t.Fatalf("third binding with limit 2: %v; want *ErrAccountFull{alice, 2}", err)
	}
	if a3.Account() != "" || a3.bound() || len(tb.Conns("alice")) != 2 {
		t.Fatalf("refused connection bound to %q (bound %v), alice has %d connections; want unbound, 2",
			a3.Account(), a3.bound(), len(tb.Conns("alice")))
	}
	if _, _, _, err := tb.Bind(a1, "alice", "", 2); err != nil {
		t.Fatalf("a second init of a bound connection at the limit: %v", err)
	}
	tb.Remove(a1)
	if _, _, _, err := tb.Bind(a3, "alice", "", 2); err != nil {
		t.Fatalf("binding after a close freed a place: %v", err)
	}
	b, _ := newConn("b")
	tb.Add(b)
	if _, _, _, err := tb.Bind(b, "alice", "", 0); err != nil {
		t.Fatalf("limit 0: %v", err)
	}
}

func TestBroadcastReachesEveryConnection(t *testing.T) {
	tb := NewTable(10)
	var sinks []*sink
	for i := 0; i < 2000; i++ {
		c, s := newConn(fmt.Sprint("c", i))
		tb.Add(c)
		if i != 11 { // c11 never sent init (or its init was refused)
			mustBind(t, tb, c, fmt.Sprint("acct", i), "")
		}
		sinks = append(sinks, s)
	}
	sinks[7].fail = true
	if n := tb.Broadcast(TextFrame([]byte("all")), false); n != 1998 {
		t.Fatalf("broadcast wrote to %d; want 1998 (one socket failing, one not bound)", n)
	}
	for i, s := range sinks {
		want := 1
		if i == 7 || i == 11 {
			want = 0
		}
		if len(s.got()) != want {
			t.Fatalf("conn %d got %d frames; want %d", i, len(s.got()), want)
		}
	}
}

// TestBroadcastToUnbound: with unbound set, a connection that never sent init
// gets the announcement too (the PHP server's behaviour).
func TestBroadcastToUnbound(t *testing.T) {
	tb := NewTable(10)
	bound, bs := newConn("bound")
	guest, gs := newConn("guest")
	tb.Add(bound)
	tb.Add(guest)
	mustBind(t, tb, bound, "alice", "")
	if n := tb.Broadcast(TextFrame([]byte("a")), true); n != 2 || len(gs.got()) != 1 || len(bs.got()) != 1 {
		t.Fatalf("broadcast with unbound wrote %d (guest %v, bound %v); want 2, one each", n, gs.got(), bs.got())
	}
}

func TestTextFrameHeader(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := TextFrame(make([]byte, n))
		var hdr int
		switch {
		case n < 126:
			hdr = 2
		case n <= 65535:
			hdr = 4
		default:
			hdr = 10
		}
		if f[0] != 0x81 || len(f) != hdr+n {
			t.Errorf("TextFrame(%d): first byte %#x, len %d; want 0x81, %d", n, f[0], len(f), hdr+n)
		}
	}
}

func TestSweep(t *testing.T) {
	tb := NewTable(10)
	quiet, _ := newConn("q")
	busy, _ := newConn("b")
	tb.Add(quiet)
	tb.Add(busy)
	quiet.Touch(10)
	busy.Touch(70)
	idle, expired := tb.Sweep(60, 1000)
	if len(idle) != 1 || idle[0] != quiet || len(expired) != 0 {
		t.Fatalf("Sweep(60) = %v, %v; want only the connection last seen at 10 idle, none expired", idle, expired)
	}
	tb.Remove(quiet)
	if idle, _ := tb.Sweep(60, 1000); len(idle) != 0 {
		t.Fatalf("idle after removal = %v; want none", idle)
	}
}

// TestSweepExpired: a connection whose expiry has come is swept as expired
// (once it is at or before now); a later SetExpiry moves it; a connection
// without one never expires.
func TestSweepExpired(t *testing.T) {
	tb := NewTable(10)
	token, _ := newConn("token")
	plain, _ := newConn("plain")
	tb.Add(token)
	tb.Add(plain)
	token.SetExpiry(time.Unix(1000, 0))
	if _, expired := tb.Sweep(0, 999); len(expired) != 0 {
		t.Fatalf("expired before its time: %v", expired)
	}
	if _, expired := tb.Sweep(0, 1000); len(expired) != 1 || expired[0] != token {
		t.Fatalf("Sweep at the expiry = %v; want the connection with the token", expired)
	}
	token.SetExpiry(time.Unix(2000, 0)) // a newer token
	if _, expired := tb.Sweep(0, 1500); len(expired) != 0 {
		t.Fatalf("expired after a newer token: %v", expired)
	}
	if _, expired := tb.Sweep(0, math.MaxUint32); len(expired) != 1 || expired[0] != token {
		t.Fatalf("Sweep at the end of time = %v; want only the connection with a token", expired)
	}
	token.SetExpiry(time.Unix(1<<40, 0))
	if token.Expired(math.MaxUint32 - 1) {
		t.Fatal("an expiry past 2106 counted as reached")
	}
}

func TestRateWait(t *testing.T) {
	c, _ := newConn("c")
	const second = int64(1e9)
	interval := second / 10 // 10 per second
	ok := 0
	var waits []int64
	for i := 0; i < 8; i++ { // 8 at once: the burst of 5 goes now, the rest waits a slot each
		w := c.RateWait(0, interval, 5)
		if w == 0 {
			ok++
		} else {
			waits = append(waits, w)
		}
		c.TakeRate(0, interval)
	}
	if ok != 5 || fmt.Sprint(waits) != fmt.Sprint([]int64{interval, 2 * interval, 3 * interval}) {
		t.Fatalf("8 at once: %d now, waits %v; want 5 now and waits of 1, 2, 3 intervals", ok, waits)
	}
	// Frames refused rather than waiting take no slot: RateWait alone reserves nothing.
	c, _ = newConn("d")
	for i := 0; i < 50; i++ {
		if c.RateWait(0, interval, 5) == 0 {
			c.TakeRate(0, interval)
		}
	}
	ok = 0
	for ms := int64(0); ms < 2000; ms += 10 { // 2 s at 100 frames/s
		if c.RateWait(second+ms*1e6, interval, 5) == 0 {
			c.TakeRate(second+ms*1e6, interval)
			ok++
		}
	}
	if ok < 20 || ok > 26 {
		t.Fatalf("over 2 s at 10/s with burst 5 allowed %d; want about 20-25", ok)
	}
}

// TestAcknowledgingConnection: unacked messages of a connection that closes go
// back to the store, oldest first, before anything newer; acked ones do not.
func TestAcknowledgingConnection(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, bs := newConn("b1")
	tb.Add(bob)
	seq := mustBind(t, tb, bob, "bob", "")
	tb.EnableReceiverAcks(bob, 100)
	mustLive(t, tb, bob, seq)
	for _, m := range []string{"m1", "m2", "m3"} {
		if d, _ := tb.Deliver("bob", "alice", TextFrame([]byte(m)), st.fn(m)); d.Pushed != 1 {
			t.Fatalf("deliver %s = %+v", m, d)
		}
	}
	if acked := bob.ReceiverAck("m1"); len(acked) != 1 {
		t.Fatalf("ack m1 removed %d; want 1", len(acked))
	}
	// The socket dies: the next write fails; m2, m3 are stored before m4.
	bs.fail = true
	d, _ := tb.Deliver("bob", "alice", TextFrame([]byte("m4")), st.fn("m4"))
	if !d.Stored || strings.Join(st.msgs, ",") != "m2,m3,m4" {
		t.Fatalf("after the socket died: %+v, stored %v; want m2,m3,m4 in order", d, st.msgs)
	}
	if n := tb.Remove(bob).Requeued; n != 0 {
		t.Fatalf("close requeued %d more; want 0 (already stored)", n)
	}
}

func TestCloseRequeuesUnacked(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, _ := newConn("b1")
	tb.Add(bob)
	seq := mustBind(t, tb, bob, "bob", "")
	tb.EnableReceiverAcks(bob, 2)
	mustLive(t, tb, bob, seq)
	tb.Deliver("bob", "alice", TextFrame([]byte("m1")), st.fn("m1"))
	tb.Deliver("bob", "alice", TextFrame([]byte("m2")), st.fn("m2"))
	bob.ReceiverAck("m1")
	if n := tb.Remove(bob).Requeued; n != 1 || strings.Join(st.msgs, ",") != "m2" {
		t.Fatalf("close requeued %d (%v); want m2 only", n, st.msgs)
	}
}

// TestTooManyUnackedCloses: an acknowledging connection past its limit is
// closed with its own code (4009), not the slow drainer's (4008).
func TestTooManyUnackedCloses(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, bs := newConn("b1")
	tb.Add(bob)
	seq := mustBind(t, tb, bob, "bob", "")
	tb.EnableReceiverAcks(bob, 2)
	mustLive(t, tb, bob, seq)
	for _, m := range []string{"m1", "m2", "m3"} {
		tb.Deliver("bob", "alice", TextFrame([]byte(m)), st.fn(m))
	}
	bs.mu.Lock()
	code := bs.closed
	bs.mu.Unlock()
	if code != int(CloseUnacked) {
		t.Fatalf("close code past max unacked = %d; want %d (%s)", code, CloseUnacked, CloseUnacked.Reason())
	}
}

// TestConnStaysInItsSizeClass: hub.Conn is 96 bytes, a size class of the Go
// allocator; one more field moves every connection to the 112-byte class (16
// bytes each, 16 MB a million connections). Grow it knowingly: put rarely used
// state behind Conn.extra, or change this figure and docs/benchmarks.md.
func TestConnStaysInItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 96 {
		t.Fatalf("hub.Conn is %d bytes, over 96: every connection now costs the next size class", n)
	}
}

// TestRetireTakesAnOpenConnectionOffOnce: a connection retired while open
// (a handover) stores again what it had not acknowledged, gets nothing more
// (a message for its account is stored), is never bound again, and its
// socket's close later does nothing twice.
func TestRetireTakesAnOpenConnectionOffOnce(t *testing.T) {
	tb := NewTable(10)
	st := &store{}
	bob, bs := newConn("b1")
	tb.Add(bob)
	seq := mustBind(t, tb, bob, "bob", "")
	tb.EnableReceiverAcks(bob, 10)
	mustLive(t, tb, bob, seq)
	tb.Deliver("bob", "alice", TextFrame([]byte("m1")), st.fn("m1"))
	r, ok := tb.Retire(bob)
	if !ok || r.Account != "bob" || !r.Last || r.Requeued != 1 || strings.Join(st.msgs, ",") != "m1" {
		t.Fatalf("Retire = %+v, %v (stored %v); want bob's last connection, m1 stored again", r, ok, st.msgs)
	}
	if d, _ := tb.Deliver("bob", "alice", TextFrame([]byte("m2")), st.fn("m2")); !d.Stored || d.Pushed != 0 {
		t.Fatalf("deliver after the retire = %+v; want stored", d)
	}
	if got := bs.got(); len(got) != 1 {
		t.Fatalf("the retired connection was written %v; want m1 only", got)
	}
	if _, _, _, err := tb.Bind(bob, "bob", "", 0); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Bind after the retire: %v; want ErrRemoved", err)
	}
	if _, ok := tb.Retire(bob); ok {
		t.Fatal("a second Retire took it off again")
	}
	if r := tb.Remove(bob); !r.Again || r.Requeued != 0 {
		t.Fatalf("Remove after Retire = %+v; want Again and nothing done", r)
	}
	if tb.Len() != 0 || tb.Online("bob") {
		t.Fatalf("table after the retire: %d connections, bob online %v", tb.Len(), tb.Online("bob"))
	}
	// A connection never bound is taken off the list the same way.
	anon, _ := newConn("a1")
	tb.Add(anon)
	if _, ok := tb.Retire(anon); !ok || tb.Len() != 0 {
		t.Fatalf("retire of an unbound connection: ok %v, %d left", ok, tb.Len())
	}
	if _, _, _, err := tb.Bind(anon, "carol", "", 0); !errors.Is(err, ErrRemoved) || tb.Online("carol") {
		t.Fatalf("Bind of a retired unbound connection: %v; want ErrRemoved and nothing bound", err)
	}
}
