package handlers

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"chatserver/hub"
	"chatserver/offline"
	"chatserver/presence"
)

// discard is a transport that drops what is written: the benchmarks measure our
// code, not the kernel's send path (see docs/benchmarks.md for that).
type discard struct{}

func (discard) WriteFrame([]byte) error { return nil }
func (discard) Close(int, string)       {}
func (discard) RemoteAddr() string      { return "bench" }
func (discard) Execute(job func()) bool { job(); return true }

// nopStore takes every message and keeps none.
type nopStore struct{ *memStore }

func (*nopStore) Enqueue(offline.Message) (uint64, error)         { return 0, nil }
func (*nopStore) EnqueueAccepted(offline.Message) (uint64, error) { return 0, nil }
func (*nopStore) Reserve(string, string, int) error               { return nil }
func (*nopStore) Release(string)                                  {}

func benchHandler(b *testing.B) (*Handler, *hub.Table) {
	table := hub.NewTable(100)
	nop := &nopStore{memStore: newMemStore()}
	h := New(Config{Node: "n1", Broadcasters: []string{"*"}}, Deps{
		Table: table, Queue: nop, Backlog: nop, Presence: presence.NewLocal("n1"),
		Groups: memGroups{}, Log: zerolog.Nop(),
	})
	return h, table
}

func bind(b *testing.B, h *Handler, table *hub.Table, account string) *hub.Conn {
	c := table.NewConn(discard{})
	table.Add(c)
	h.Handle(c, true, []byte(`{"flag":"init","from":"`+account+`"}`))
	if c.Account() != account {
		b.Fatalf("init %s failed", account)
	}
	return c
}

var msgFrame = []byte(`{"flag":"msg","from":"alice","to":"bob","content":"hello there, how are you doing today?"}`)

// BenchmarkDecode: one legacy msg frame decoded and validated.
func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msgFrame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMsgLocalPush: decode + dispatch + encode + push to one local
// connection, the hot path of one-to-one chat.
func BenchmarkMsgLocalPush(b *testing.B) {
	h, table := benchHandler(b)
	alice := bind(b, h, table, "alice")
	bind(b, h, table, "bob")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.Handle(alice, true, msgFrame)
	}
}

// BenchmarkMsgOffline: the same frame for an account that is not connected, up
// to the hand-off to the batch writer.
func BenchmarkMsgOffline(b *testing.B) {
	h, table := benchHandler(b)
	alice := bind(b, h, table, "alice")
	frame := []byte(`{"flag":"msg","from":"alice","to":"nobody","content":"hello there, how are you doing today?"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.Handle(alice, true, frame)
	}
}

// BenchmarkBroadcast: one `all` frame to N connections (encode once, write N).
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1000, 19000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h, table := benchHandler(b)
			admin := bind(b, h, table, "admin")
			for i := 1; i < n; i++ {
				table.Add(table.NewConn(discard{}))
			}
			frame := []byte(`{"flag":"all","from":"admin","content":"maintenance tonight at 2"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.Handle(admin, true, frame)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/recipient")
		})
	}
}
