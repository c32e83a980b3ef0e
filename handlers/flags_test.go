package handlers

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"chatserver/hub"
	"chatserver/metrics"
	"chatserver/offline"
	"chatserver/presence"
)

// TestFramesCountedByFlag: chat_frames_in_total counts each frame under its
// flag, a heartbeat under heart, and anything else under unknown or invalid;
// the unknown_flag error names exactly the requests a client may send.
func TestFramesCountedByFlag(t *testing.T) {
	m := metrics.New(func() float64 { return 0 }, func() float64 { return 0 }, func() float64 { return 0 })
	table := hub.NewTable(100)
	st := newMemStore()
	h := New(Config{Node: "n1", Limits: offline.Limits{AccountChars: 32, ContentChars: 100}, Broadcasters: []string{"*"}}, Deps{
		Table: table, Queue: st, Backlog: st, Presence: presence.NewLocal("n1"),
		Groups: memGroups{}, Metrics: m, Log: zerolog.New(zerolog.NewTestWriter(t)),
	})
	fx := &fixture{h: h, table: table}
	c, fc := fx.conn("c1")
	for _, f := range []string{
		`{"flag":"init","from":"alice"}`, `{"flag":"ping"}`, `{"flag":"ping"}`, `{"type":"heart"}`,
		`{"flag":"pong"}`, `{"flag":"online","to":"bob"}`, `{"flag":"dance"}`, `{"flag":`,
	} {
		fx.send(c, f)
	}
	got := fc.payloads(t)
	last := got[len(got)-2] // the answer to dance; the broken frame's comes after
	if last["code"] != CodeUnknownFlag || !strings.HasSuffix(last["message"].(string), "known: init, msg, group, all, online, ping, auth, history, read, unread, conversations, recall, edit, sync") {
		t.Fatalf("unknown flag answered %v; want unknown_flag listing init, msg, group, all, online, ping, auth, history, read, unread, conversations, recall, edit, sync", last)
	}

	counts := map[string]float64{}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "chat_frames_in_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			counts[s.GetLabel()[0].GetValue()] = s.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"init": 1, "msg": 0, "group": 0, "all": 0, "online": 1, "ping": 2, "pong": 1,
		"ack": 0, "auth": 0, "history": 0, "read": 0, "unread": 0, "conversations": 0, "recall": 0, "edit": 0, "sync": 0, "heart": 1, "unknown": 1, "invalid": 1}
	for label, n := range want {
		if got, ok := counts[label]; !ok || got != n {
			t.Errorf("chat_frames_in_total{flag=%q} = %v (present %v); want %v", label, got, ok, n)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("labels %v; want exactly %v", counts, want)
	}
}
