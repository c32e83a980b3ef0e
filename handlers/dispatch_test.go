package handlers

import (
	"chatserver/offline"
	"strings"
	"sync"
	"testing"
)

func TestBadInputGetsErrorFrameAndChangesNothing(t *testing.T) {
	cases := []struct {
		name  string
		init  bool // send a valid init first
		frame string
		code  string
	}{
		{"invalid json", false, `{"flag":"msg",`, CodeBadJSON},
		{"empty", false, ``, CodeBadJSON},
		{"array", false, `[{"flag":"init"}]`, CodeBadFrame},
		{"string", false, `"init"`, CodeBadFrame},
		{"no flag", false, `{"from":"a"}`, CodeMissingField},
		{"unknown flag", false, `{"flag":"dance"}`, CodeUnknownFlag},
		{"flag not string", false, `{"flag":1}`, CodeBadField},
		{"init without from", false, `{"flag":"init"}`, CodeMissingField},
		{"init from object", false, `{"flag":"init","from":{"x":1}}`, CodeBadField},
		{"init from float", false, `{"flag":"init","from":1.5}`, CodeBadField},
		{"init from bool", false, `{"flag":"init","from":true}`, CodeBadField},
		{"init from empty", false, `{"flag":"init","from":""}`, CodeBadField},
		{"init from too long", false, `{"flag":"init","from":"` + strings.Repeat("x", 33) + `"}`, CodeTooLong},
		{"init from control char", false, `{"flag":"init","from":"a\u0000b"}`, CodeBadField},
		{"msg before init", false, `{"flag":"msg","from":"alice","to":"bob","content":"hi"}`, CodeNotInitialized},
		{"all before init", false, `{"flag":"all","from":"alice","content":"hi"}`, CodeNotInitialized},
		{"online before init", false, `{"flag":"online","to":"bob"}`, CodeNotInitialized},
		{"msg spoofed from", true, `{"flag":"msg","from":"mallory","to":"bob","content":"hi"}`, CodeWrongSender},
		{"msg without from", true, `{"flag":"msg","to":"bob","content":"hi"}`, CodeMissingField},
		{"msg without to", true, `{"flag":"msg","from":"alice","content":"hi"}`, CodeMissingField},
		{"msg without content", true, `{"flag":"msg","from":"alice","to":"bob"}`, CodeMissingField},
		{"msg content number", true, `{"flag":"msg","from":"alice","to":"bob","content":5}`, CodeBadField},
		{"msg content too long", true, `{"flag":"msg","from":"alice","to":"bob","content":"` + strings.Repeat("é", 101) + `"}`, CodeTooLong},
		{"msg to array", true, `{"flag":"msg","from":"alice","to":["bob"],"content":"hi"}`, CodeBadField},
		{"all spoofed", true, `{"flag":"all","from":"admin","content":"hi"}`, CodeWrongSender},
		{"re-init as another account", true, `{"flag":"init","from":"mallory"}`, CodeWrongSender},
		{"group by a non-member", true, `{"flag":"group","from":"alice","to":"g2","content":"hi"}`, CodeForbidden},
		{"group without to", true, `{"flag":"group","from":"alice","content":"hi"}`, CodeMissingField},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			c, fc := fx.conn("c1")
			bob, bobc := fx.conn("c2")
			fx.send(bob, `{"flag":"init","from":"bob"}`)
			if tc.init {
				fx.send(c, `{"flag":"init","from":"alice"}`)
			}
			fc.payloads(t)
			bobc.payloads(t)

			fx.send(c, tc.frame)
			got := fc.payloads(t)
			if len(got) != 1 || got[0]["flag"] != "error" || got[0]["code"] != tc.code {
				t.Fatalf("reply = %v; want one error frame with code %s", got, tc.code)
			}
			if msg, _ := got[0]["message"].(string); msg == "" {
				t.Fatalf("error frame has no message: %v", got[0])
			}
			if other := bobc.payloads(t); len(other) != 0 {
				t.Fatalf("bob received %v; bad input must reach nobody", other)
			}
			if n := fx.store.unsent(); n != 0 {
				t.Fatalf("%d rows stored; bad input must store nothing", n)
			}
			// The connection stays usable.
			fx.send(c, `{"flag":"ping"}`)
			if p := fc.payloads(t); len(p) != 1 || p[0]["flag"] != "pong" {
				t.Fatalf("after the error, ping got %v; want pong", p)
			}
		})
	}
}

func TestBinaryFrameRefused(t *testing.T) {
	fx := newFixture(t)
	c, fc := fx.conn("c1")
	fx.h.Handle(c, false, []byte{1, 2, 3})
	if got := fc.payloads(t); len(got) != 1 || got[0]["code"] != CodeBinary {
		t.Fatalf("binary frame reply = %v; want error %s", got, CodeBinary)
	}
}

func TestLegacyFlow(t *testing.T) {
	fx := newFixture(t)
	alice, ac := fx.conn("a")
	fx.send(alice, `{"flag":"init","from":"alice","to":"bob"}`)

	// bob offline: stored.
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"while you were out"}`)
	if len(ac.payloads(t)) != 0 || fx.store.unsent() != 1 {
		t.Fatal("message to offline bob was not stored silently")
	}
	// bob inits: gets it in the legacy shape, and the row is marked sent.
	bob, bc := fx.conn("b")
	fx.send(bob, `{"flag":"init","from":"bob","to":"alice"}`)
	got := bc.payloads(t)
	if id, _ := got[0]["id"].(string); len(got) != 1 || got[0]["from"] != "alice" || got[0]["content"] != "while you were out" || id == "" || len(got[0]) != 3 {
		t.Fatalf("bob's drain = %v; want the legacy {from:alice, content:...} plus its id", got)
	}
	if fx.store.unsent() != 0 {
		t.Fatal("drained row still unsent")
	}
	// bob online: pushed.
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"hi 😀 <b>"}`)
	if got := bc.payloads(t); len(got) != 1 || got[0]["content"] != "hi 😀 <b>" {
		t.Fatalf("live push = %v", got)
	}
	// Numeric ids, as PHP clients send them.
	n, nc := fx.conn("n")
	fx.send(n, `{"flag":"init","from":42}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":42,"content":"num"}`)
	if got := nc.payloads(t); len(got) != 1 || got[0]["content"] != "num" {
		t.Fatalf("numeric account got %v", got)
	}
	// online
	fx.send(alice, `{"flag":"online","to":"bob"}`)
	fx.send(alice, `{"flag":"online","to":"zed"}`)
	got = ac.payloads(t)
	if len(got) != 2 || got[0]["online"] != true || got[1]["online"] != false {
		t.Fatalf("online replies = %v; want bob true, zed false", got)
	}
	// heartbeats
	fx.send(alice, `{"type":"heart"}`)
	fx.send(alice, `{"flag":"ping"}`)
	got = ac.payloads(t)
	if len(got) != 2 || got[0]["flag"] != "pong" || got[0]["type"] != "heart" || got[1]["flag"] != "pong" {
		t.Fatalf("heartbeat replies = %v", got)
	}
	// all reaches every connection, the sender's too.
	fx.send(alice, `{"flag":"all","from":"alice","content":"notice"}`)
	for _, fc := range []*fakeConn{ac, bc, nc} {
		if got := fc.payloads(t); len(got) != 1 || got[0]["flag"] != "all" || got[0]["content"] != "notice" || got[0]["from"] != "alice" {
			t.Fatalf("announcement = %v", got)
		}
	}
}

func TestDrainFailureKeepsConnectionLive(t *testing.T) {
	fx := newFixture(t)
	bob, bc := fx.conn("b")
	fx.store.pendErr = errTest
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	if got := bc.payloads(t); len(got) != 1 || got[0]["code"] != CodeUnavailable {
		t.Fatalf("init with storage down = %v; want error %s", got, CodeUnavailable)
	}
	alice, _ := fx.conn("a")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"live"}`)
	if got := bc.payloads(t); len(got) != 1 || got[0]["content"] != "live" {
		t.Fatalf("bob after a failed drain got %v; want the live message", got)
	}
}

func TestPanicContained(t *testing.T) {
	fx := newFixture(t)
	fx.h.presence = nil // registering the account at init now panics
	c, fc := fx.conn("c")
	fx.send(c, `{"flag":"init","from":"alice"}`)
	if got := fc.payloads(t); len(got) != 1 || got[0]["code"] != CodeInternal {
		t.Fatalf("reply after a panic = %v; want one internal error", got)
	}
}

// TestDrainSettlesUnderAStream: a sender that keeps writing while the recipient
// drains would keep an optimistic drain from ever going live; in the last pass
// new messages are held for the connection instead of stored, and it settles.
// Every message arrives once, in order.
func TestDrainSettlesUnderAStream(t *testing.T) {
	fx := newFixture(t)
	alice, _ := fx.conn("a")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	for i := 0; i < 3; i++ {
		fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"`+string(rune('a'+i))+`"}`)
	}
	bob, bc := fx.conn("b")
	// A new message from alice lands before every drain read, sent from
	// alice's own flow (another goroutine, in order).
	sent := 3
	var inflight sync.WaitGroup
	var order sync.Mutex
	fx.store.onPending = func() {
		if sent >= 12 {
			return
		}
		content := string(rune('a' + sent))
		sent++
		inflight.Add(1)
		order.Lock() // alice's frames are handled one after another
		done := make(chan struct{})
		go func() {
			defer inflight.Done()
			defer order.Unlock()
			defer close(done)
			fx.h.Handle(alice, true, []byte(`{"flag":"msg","from":"alice","to":"bob","content":"`+content+`"}`))
		}()
		<-done
	}
	fx.send(bob, `{"flag":"init","from":"bob"}`)
	inflight.Wait()
	fx.store.onPending = nil
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"live"}`)
	var got []string
	for _, p := range bc.payloads(t) {
		got = append(got, p["content"].(string))
	}
	var want []string
	for i := 0; i < sent; i++ {
		want = append(want, string(rune('a'+i)))
	}
	want = append(want, "live")
	if sent < 3+unlockedPasses+1 {
		t.Fatalf("only %d messages raced with the drain; the test must reach the last pass", sent-3)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("bob got %v; want %s", got, want)
	}
	if fx.store.unsent() != 0 {
		t.Fatalf("%d rows left unsent", fx.store.unsent())
	}
}

// TestSenderAcks: a msg with a cid is acknowledged with the message's id and
// whether it was pushed or stored; a retried cid is acknowledged again and not
// delivered twice; an error carries the cid; frames without a cid get no ack.
func TestSenderAcks(t *testing.T) {
	fx := newFixture(t)
	alice, ac := fx.conn("a")
	fx.send(alice, `{"flag":"init","from":"alice"}`)
	bob, bc := fx.conn("b")
	fx.send(bob, `{"flag":"init","from":"bob"}`)

	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"one","cid":"c1"}`)
	got := ac.payloads(t)
	if len(got) != 1 || got[0]["flag"] != "ack" || got[0]["cid"] != "c1" || got[0]["status"] != "pushed" {
		t.Fatalf("ack = %v; want pushed ack for c1", got)
	}
	id := got[0]["id"]
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"one","cid":"c1"}`) // retry
	if again := ac.payloads(t); len(again) != 1 || again[0]["id"] != id || again[0]["status"] != "pushed" {
		t.Fatalf("retry ack = %v; want the same ack", again)
	}
	if b := bc.payloads(t); len(b) != 1 || b[0]["id"] != id {
		t.Fatalf("bob got %v; want the message once, with the acked id", b)
	}
	fx.send(alice, `{"flag":"msg","from":"alice","to":"zed","content":"later","cid":7}`)
	if got := ac.payloads(t); len(got) != 1 || got[0]["status"] != "stored" || got[0]["cid"] != "7" {
		t.Fatalf("offline ack = %v; want stored", got)
	}
	fx.store.enqErr = offline.ErrBusy
	fx.send(alice, `{"flag":"msg","from":"alice","to":"zed","content":"x","cid":"c9"}`)
	if got := ac.payloads(t); len(got) != 1 || got[0]["code"] != CodeBusy || got[0]["cid"] != "c9" {
		t.Fatalf("busy = %v; want an error carrying cid c9", got)
	}
	fx.store.enqErr = nil
	fx.send(alice, `{"flag":"msg","from":"alice","to":"bob","content":"legacy"}`)
	if got := ac.payloads(t); len(got) != 0 {
		t.Fatalf("a frame without cid got %v; want no ack", got)
	}
}

// TestBinaryAsText: with BinaryAsText (compat: legacy) a binary frame holding
// JSON is served as text; one that is not UTF-8 is refused (the offline table
// takes UTF-8 only); without it every binary frame is refused.
func TestBinaryAsText(t *testing.T) {
	for _, on := range []bool{true, false} {
		fx := newFixtureWith(t, Config{BinaryAsText: on})
		alice, ac := fx.conn("alice")
		bob, bc := fx.conn("bob")
		fx.send(alice, `{"flag":"init","from":"alice"}`)
		fx.send(bob, `{"flag":"init","from":"bob"}`)
		fx.h.Handle(alice, false, []byte(`{"flag":"msg","from":"alice","to":"bob","content":"bin"}`))
		fx.h.Handle(alice, false, []byte("{\"flag\":\"msg\",\"from\":\"alice\",\"to\":\"bob\",\"content\":\"\xff\"}"))
		got, errs := bc.payloads(t), ac.payloads(t)
		if on {
			if len(got) != 1 || got[0]["content"] != "bin" || len(errs) != 1 || errs[0]["code"] != CodeBadJSON {
				t.Fatalf("binary as text: bob got %v, alice %v; want the message, and bad_json for the non-UTF-8 one", got, errs)
			}
			continue
		}
		if len(got) != 0 || len(errs) != 2 || errs[0]["code"] != CodeBinary || errs[1]["code"] != CodeBinary {
			t.Fatalf("binary refused: bob got %v, alice %v; want nothing, and two binary_frame errors", got, errs)
		}
	}
}
