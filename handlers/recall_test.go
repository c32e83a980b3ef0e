package handlers

import (
	"encoding/json"
	"testing"

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
