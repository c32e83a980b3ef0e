package app

import (
	"context"
	"errors"
	"fmt"

	"chatserver/groups"
	"chatserver/handlers"
	"chatserver/history"
	"chatserver/offline"
)

// rememberedConversations bounds the one-to-one conversations the
// conversation index remembers as written (about 100 bytes each).
const rememberedConversations = 200_000

// readState is the read cursors with the flush of this node's history
// writers (a message just accepted may still wait in one).
type readState struct {
	history.ReadState
	flush func(context.Context) error
}

func (r readState) Flush(ctx context.Context) error { return r.flush(ctx) }

// openReads starts the read state beside the history (its tables come with
// the history's migrations): the cursors and the conversation index, whose
// writer a.convs is. It returns what the handler reads and records.
func (a *App) openReads() (handlers.Reads, history.Recorders, error) {
	db, dialect, table := a.store.DB(), history.Dialect(a.store.Dialect()), a.cfg.History.Table
	members := groups.NewStore(db, a.cfg.Groups.Table, a.store.Dialect() == offline.SQLite)
	reads, err := history.NewReads(db, dialect, table, members.Of)
	if err != nil {
		return nil, nil, fmt.Errorf("read state: %w", err)
	}
	hc := a.cfg.History
	rlog := a.log.With().Str("component", "read_state").Logger()
	a.convs = history.NewConvIndex(db, dialect, table, history.WriterConfig{BatchSize: hc.BatchSize, QueueLimit: hc.QueueLimit},
		rememberedConversations, rlog)
	a.cursors = history.NewCursorWriter(reads, hc.BatchSize, hc.QueueLimit, rlog)
	flush := func(ctx context.Context) error {
		if err := a.history.Flush(ctx); err != nil {
			return err
		}
		return a.convs.Flush(ctx)
	}
	return readState{history.ReadState{Reads: reads, W: a.cursors}, flush}, history.Recorders{a.history, a.convs}, nil
}

// closeReads writes what the read state's writers hold, until ctx ends.
func (a *App) closeReads(ctx context.Context) error {
	var errs []error
	if a.cursors != nil {
		errs = append(errs, a.cursors.Close(ctx))
	}
	if a.convs != nil {
		errs = append(errs, a.convs.Close(ctx))
	}
	return errors.Join(errs...)
}

// historyDeps is the history as the handlers see it: every message recorded
// by the history writer and the conversation index, read from the store, and
// Flush (recall and edit wait for the history writer before they look a
// message up).
type historyDeps struct {
	history.Recorders
	*history.Store
	writer *history.Writer
}

func (h historyDeps) Flush(ctx context.Context) error { return h.writer.Flush(ctx) }
