package offline

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// probe answers "has this account anything pending?" for many inits with one
// query. In a reconnect storm most accounts have nothing waiting; without it
// every init costs a round trip to the database, which caps the connect rate at
// what the database answers one query at a time. Requests that arrive while a
// query runs share the next one.
type probe struct {
	db      *sql.DB
	dialect Dialect
	table   string
	reqs    chan probeReq
	done    chan struct{}
}

type probeReq struct {
	account string
	ctx     context.Context
	reply   chan probeReply
}

type probeReply struct {
	has bool
	err error
}

// maxProbe bounds the accounts in one query.
const maxProbe = 500

func newProbe(db *sql.DB, dialect Dialect, table string) *probe {
	p := &probe{db: db, dialect: dialect, table: table, reqs: make(chan probeReq, 4096), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *probe) stop() { close(p.done) }

// has reports whether account may have unsent rows (false means certainly none).
func (p *probe) has(ctx context.Context, account string) (bool, error) {
	r := probeReq{account: account, ctx: ctx, reply: make(chan probeReply, 1)}
	select {
	case p.reqs <- r:
	case <-ctx.Done():
		return false, fmt.Errorf("offline: probe %q: %w", account, ctx.Err())
	case <-p.done:
		return false, fmt.Errorf("offline: probe %q: store closed", account)
	}
	select {
	case rep := <-r.reply:
		return rep.has, rep.err
	case <-ctx.Done():
		return false, fmt.Errorf("offline: probe %q: %w", account, ctx.Err())
	}
}

func (p *probe) run() {
	batch := make([]probeReq, 0, maxProbe)
	for {
		batch = batch[:0]
		select {
		case r := <-p.reqs:
			batch = append(batch, r)
		case <-p.done:
			return
		}
	more:
		for len(batch) < maxProbe {
			select {
			case r := <-p.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		found, err := p.query(batch)
		for _, r := range batch {
			_, has := found[r.account]
			r.reply <- probeReply{has: has, err: err}
		}
	}
}

// query returns the set of accounts (compared byte for byte, whatever the
// table's collation) that have unsent rows.
func (p *probe) query(batch []probeReq) (map[string]struct{}, error) {
	ctx := batch[0].ctx
	var b strings.Builder
	cast := "CAST(`to` AS BINARY)"
	if p.dialect == SQLite {
		cast = "CAST(`to` AS BLOB)"
	}
	b.WriteString("SELECT DISTINCT " + cast + " FROM `" + p.table + "` WHERE `status` = 0 AND `to` IN (")
	args := make([]any, len(batch))
	for i, r := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('?')
		args[i] = r.account
	}
	b.WriteByte(')')
	rows, err := p.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("offline: probe %d accounts: %w", len(batch), err)
	}
	defer rows.Close()
	found := make(map[string]struct{})
	for rows.Next() {
		var to []byte
		if err := rows.Scan(&to); err != nil {
			return nil, fmt.Errorf("offline: probe scan: %w", err)
		}
		found[string(to)] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("offline: probe read: %w", err)
	}
	return found, nil
}
