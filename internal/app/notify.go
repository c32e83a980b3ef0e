package app

import (
	"context"
	"fmt"
	"io/fs"

	"chatserver/notify"
)

// openNotify creates the outbox (notify.url set) and starts the sender that
// posts its events; the notifier it returns goes to the handler. Every node
// runs a sender: rows are claimed one by one, so a node's rows outlive it.
func (a *App) openNotify(ctx context.Context, node string) (*notify.Notifier, error) {
	c := a.cfg.Notify
	out, err := notify.NewOutbox(a.store.DB(), string(a.store.Dialect()), c.Table)
	if err != nil {
		return nil, err
	}
	files, err := fs.Sub(a.assets.Migrations, "notify")
	if err != nil {
		return nil, fmt.Errorf("notify migrations: %w", err)
	}
	if err := out.Migrate(ctx, files); err != nil {
		return nil, err
	}
	online := func(ctx context.Context, account string) (bool, error) {
		// Set before the server accepts a connection, so before any message.
		return a.handler.Online(ctx, account)
	}
	// The presence record is shared through Redis when there is one (several
	// nodes); a node alone keeps it in memory.
	var states notify.States = notify.NewMemoryStates()
	if a.rdb != nil {
		states = notify.NewRedisStates(a.rdb, a.cfg.Redis.KeyPrefix)
	}
	var stream notify.Streamer
	if c.Stream != "" {
		stream = notify.NewRedisStream(a.rdb, c.Stream, c.StreamMaxLen)
	}
	n, err := notify.New(notify.Config{
		URL: c.URL, Secret: c.Secret, Grace: c.Grace, BatchWindow: c.BatchWindow, PreviewBytes: c.PreviewBytes,
		Table: c.Table, RetryBase: c.RetryBase, MaxAttempts: c.MaxAttempts, Node: node,
		Presence: c.Presence, PresenceDebounce: c.PresenceDebounce,
	}, notify.Deps{
		Outbox: out, Online: online, States: states, Stream: stream, Registry: a.metrics.Registry,
		Log: a.log.With().Str("component", "notify").Logger(),
	})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(sctx)
	}()
	a.stopNotify = func() {
		if left := n.Stop(); left > 0 {
			a.log.Info().Int("accounts", left).Msg("notify: events still in their grace period left in the outbox for any node to send once due")
		}
		cancel()
		<-done
	}
	return n, nil
}
