package handlers

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"chatserver/history"
)

// TestChangeFieldsOnlyForTheirFrames: since, sync and recall are read on the
// frames that use them only; a legacy frame carrying those names, of any
// type, is decoded as before.
func TestChangeFieldsOnlyForTheirFrames(t *testing.T) {
	legacy := `{"flag":"msg","from":"a","to":"b","content":"x","since":7,"sync":"x","recall":"yes"}`
	if f, e := Decode([]byte(legacy)); e != nil || f.hasSince || f.Recall {
		t.Fatalf("legacy frame: %+v, %v; want decoded without the new fields", f, e)
	}
	f, e := Decode([]byte(`{"flag":"init","from":"a","recall":true,"sync":{"bob":41,"g:team":0,"7":3}}`))
	if e != nil || !f.Recall || !f.hasSince || len(f.Since) != 3 || f.Since["bob"] != 41 || f.Since["g:team"] != 0 || f.Since["7"] != 3 {
		t.Fatalf("init: %+v, %v", f, e)
	}
	f, e = Decode([]byte(`{"flag":"sync","since":{"bob":1},"limit":5}`))
	if e != nil || f.Since["bob"] != 1 || f.Limit != 5 {
		t.Fatalf("sync: %+v, %v", f, e)
	}
	f, e = Decode([]byte(`{"flag":"recall","group":"team","id":"m1"}`))
	if e != nil || f.Group != "team" || f.ID != "m1" {
		t.Fatalf("recall: %+v, %v", f, e)
	}
	for _, bad := range []string{
		`{"flag":"sync","since":[1]}`,
		`{"flag":"sync","since":{}}`,
		`{"flag":"sync","since":{"bob":-1}}`,
		`{"flag":"sync","since":{"bob":1.5}}`,
		`{"flag":"sync","since":{"bob":"41"}}`,
		`{"flag":"sync","since":{"bob":1},"limit":"x"}`,
		`{"flag":"init","from":"a","sync":7}`,
		`{"flag":"init","from":"a","recall":1}`,
		`{"flag":"recall","group":{"x":1},"id":"m"}`,
	} {
		if _, e := Decode([]byte(bad)); e == nil || e.Code != CodeBadField {
			t.Errorf("%s: %v; want bad_field", bad, e)
		}
	}
}

// TestChangePayloads: the frames recipients and senders get are valid JSON
// with exactly the documented fields.
func TestChangePayloads(t *testing.T) {
	for _, c := range []struct {
		got  []byte
		want string
	}{
		{changePayload(history.Event{Kind: "recall", ID: "m1", From: "alice"}), `{"flag":"recall","from":"alice","id":"m1"}`},
		{changePayload(history.Event{Kind: "edit", ID: "m1", From: "alice", Group: "team", Content: "a \"b\"", Time: 9}),
			`{"flag":"edit","from":"alice","id":"m1","group":"team","content":"a \"b\"","edited":9}`},
		{changeAnswer("recall", "m1", 0, ""), `{"flag":"recall","ok":true,"id":"m1"}`},
		{changeAnswer("edit", "m1", 9, "c1"), `{"flag":"edit","ok":true,"id":"m1","edited":9,"cid":"c1"}`},
	} {
		if string(c.got) != c.want || !json.Valid(c.got) {
			t.Errorf("payload %s; want %s", c.got, c.want)
		}
	}
}

// savedChanges records the events stored for later; the rest of Changes is unused here.
type savedChanges struct {
	History
	mu    sync.Mutex
	saved []history.Event
}

func (s *savedChanges) Flush(context.Context) error { return nil }
func (s *savedChanges) Find(context.Context, string, string) (history.Entry, error) {
	return history.Entry{}, history.ErrUnknownMessage
}
func (s *savedChanges) Recall(context.Context, string, string) error              { return nil }
func (s *savedChanges) Edit(context.Context, string, string, string, int64) error { return nil }
func (s *savedChanges) After(context.Context, string, int64, int) ([]history.Entry, bool, error) {
	return nil, false, nil
}
func (s *savedChanges) Pending(context.Context, string, int) ([]history.Event, error) {
	return nil, nil
}
func (s *savedChanges) DeletePending(context.Context, []int64) error { return nil }
func (s *savedChanges) SavePending(_ context.Context, evs []history.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append(s.saved, evs...)
	return nil
}

// TestChangeFanStoresOnlyWhatNobodyTook: an account is stored for later once
// this node and every node it was sent to answered, only if no connection
// took the frame and it is not skipped (its offline copy was changed, or it is
// the sender); each account once.
func TestChangeFanStoresOnlyWhatNobodyTook(t *testing.T) {
	cs := &savedChanges{}
	h := &Handler{history: cs, log: zerolog.Nop(), cfg: Config{}.withDefaults()}
	f := &changeFan{h: h, ev: history.Event{Kind: "recall", ID: "m1", From: "alice"}, skip: map[string]bool{"alice": true, "dave": true},
		waiting: map[string]int{"bob": 2, "carol": 2, "dave": 1, "alice": 1, "erin": 1, "frank": 2}, reached: map[string]bool{}, left: 6, done: make(chan struct{})}
	f.settle("bob", false)   // here: not taken; another node still to answer
	f.settle("frank", false) // likewise
	f.settle("carol", true)  // taken here
	f.settle("dave", false)  // skipped
	f.settle("alice", false)
	f.settle("erin", false) // nowhere: stored
	select {
	case <-f.done:
		t.Fatal("done before bob and carol's other nodes answered")
	default:
	}
	f.settle("bob", true) // the other node took it
	f.settle("carol", false)
	f.settle("frank", false) // gone there too
	select {
	case <-f.done:
	default:
		t.Fatal("not done after every answer")
	}
	f.stores.Wait()
	var to []string
	for _, ev := range cs.saved {
		to = append(to, ev.To)
	}
	sort.Strings(to)
	if strings.Join(to, ",") != "erin,frank" {
		t.Fatalf("stored for %v; want erin and frank", to)
	}
}
