package handlers

import (
	"encoding/json"
	"testing"
)

// TestLateWaitsBounded: past maxLateWaits read frames waiting for another
// node's history writer, the next one does not wait; a release makes room.
func TestLateWaitsBounded(t *testing.T) {
	var l lateWaits
	for i := range maxLateWaits {
		if !l.tryAcquire() {
			t.Fatalf("wait %d refused; want %d allowed", i+1, maxLateWaits)
		}
	}
	if l.tryAcquire() {
		t.Fatalf("wait %d allowed; want at most %d", maxLateWaits+1, maxLateWaits)
	}
	l.release()
	if !l.tryAcquire() {
		t.Fatal("a released wait was not given again")
	}
}

// TestReadPayloads: the reader's answer, a receipt and a group count carry
// exactly their fields.
func TestReadPayloads(t *testing.T) {
	for _, c := range []struct {
		got  []byte
		want string
	}{
		{readPayload("", "bob", "", "m1", -1, true), `{"flag":"read","to":"bob","id":"m1","ok":true}`},
		{readPayload("alice", "bob", "", "m1", -1, false), `{"flag":"read","from":"alice","to":"bob","id":"m1"}`},
		{readPayload("", "", "team", "m1", 0, false), `{"flag":"read","group":"team","id":"m1","count":0}`},
	} {
		if string(c.got) != c.want || !json.Valid(c.got) {
			t.Errorf("payload %s; want %s", c.got, c.want)
		}
	}
}
