package offline

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
)

type countingInserter struct{ rows int }

func (c *countingInserter) Insert(_ context.Context, m []Message) error { c.rows += len(m); return nil }

// BenchmarkWriterEnqueue: the cost on the message path of handing a message to
// the batch writer (the INSERT itself runs on the writer's goroutine).
func BenchmarkWriterEnqueue(b *testing.B) {
	ins := &countingInserter{}
	w := NewWriter(ins, WriterConfig{QueueLimit: 1 << 30}, zerolog.Nop())
	m := Message{To: "bob", From: "alice", Content: "hello there, how are you doing today?", AddTime: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Enqueue(m); err != nil {
			b.Fatal(err)
		}
	}
	_ = w.Close(context.Background())
}

// BenchmarkInsertStatement: building one 500-row INSERT and its arguments,
// without a database (the statement text and the argument slice).
func BenchmarkInsertStatement(b *testing.B) {
	s := &Store{q: buildQueries(MySQL, "app_offline")}
	msgs := make([]Message, 500)
	for i := range msgs {
		msgs[i] = Message{To: "bob", From: "alice", Content: "hello there", AddTime: 1}
	}
	b.ReportAllocs()
	for b.Loop() {
		q, args := s.insertStatement(msgs)
		if len(args) != 2000 || len(q) == 0 {
			b.Fatal("bad statement")
		}
	}
}
