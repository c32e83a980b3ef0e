package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"chatserver/offline"
)

var tableName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Outbox is the table of events waiting for the site's 2xx, in the offline
// pool's database. Times in it are unix milliseconds.
type Outbox struct {
	db      *sql.DB
	dialect string // "mysql" or "sqlite"
	table   string
}

// Row is one event as the sender claimed it.
type Row struct {
	ID       int64
	EventID  string
	Kind     string
	Account  string
	Payload  []byte
	Attempts int
}

// NewOutbox uses table in db; dialect is "mysql" or "sqlite".
func NewOutbox(db *sql.DB, dialect, table string) (*Outbox, error) {
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("notify: table name %q: want letters, digits and _", table)
	}
	if dialect != "mysql" && dialect != "sqlite" {
		return nil, fmt.Errorf("notify: unknown dialect %q", dialect)
	}
	return &Outbox{db: db, dialect: dialect, table: table}, nil
}

// Migrate runs migrations/<dialect>/*.sql in name order with the offline
// pool's runner ({notify_table} is the table's name, and the table fills each ?
// of a file's guard); every file is safe to run again.
func (o *Outbox) Migrate(ctx context.Context, migrations fs.FS) error {
	if err := offline.RunMigrations(ctx, o.db, offline.Dialect(o.dialect), migrations, o.table,
		map[string]string{"notify_table": o.table}); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// The kinds of rows: an offline_messages row is posted only if its account
// is still not connected, a presence row as it is.
const (
	KindMessages = "offline_messages"
	KindPresence = "presence"
)

// Add keeps an event of kind until it is sent; it is due at once.
func (o *Outbox) Add(ctx context.Context, eventID, kind, account string, payload []byte, now time.Time) error {
	ms := now.UnixMilli()
	_, err := o.db.ExecContext(ctx, "INSERT INTO `"+o.table+"` (`event_id`, `kind`, `account`, `payload`, `attempts`, `next_at`, `claimed_by`, `created`) VALUES (?, ?, ?, ?, 0, ?, '', ?)",
		eventID, kind, account, string(payload), ms, ms)
	if err != nil {
		return fmt.Errorf("notify: add event for %q: %w", account, err)
	}
	return nil
}

// Claim takes up to limit due rows for node until now+lease: each row is
// claimed with its own conditional UPDATE, so of two nodes racing for a row
// one gets it; a claim that is not settled (the node died) expires with its
// lease and the row is due again.
func (o *Outbox) Claim(ctx context.Context, node string, now time.Time, lease time.Duration, limit int) ([]Row, error) {
	ms := now.UnixMilli()
	rows, err := o.db.QueryContext(ctx, "SELECT `id` FROM `"+o.table+"` WHERE `next_at` <= ? ORDER BY `next_at` LIMIT ?", ms, limit)
	if err != nil {
		return nil, fmt.Errorf("notify: find due events: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("notify: find due events: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("notify: find due events: %w", err)
	}
	var out []Row
	for _, id := range ids {
		res, err := o.db.ExecContext(ctx, "UPDATE `"+o.table+"` SET `next_at` = ?, `claimed_by` = ? WHERE `id` = ? AND `next_at` <= ?",
			ms+lease.Milliseconds(), node, id, ms)
		if lockConflict(err) {
			// Nodes claiming at once can deadlock on the next_at index:
			// InnoDB undid this one; the row is the other node's now, or
			// still due for the next round.
			continue
		}
		if err != nil {
			return out, fmt.Errorf("notify: claim event %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			continue // another node took it
		}
		var r Row
		var payload string
		err = o.db.QueryRowContext(ctx, "SELECT `id`, `event_id`, `kind`, `account`, `payload`, `attempts` FROM `"+o.table+"` WHERE `id` = ?", id).
			Scan(&r.ID, &r.EventID, &r.Kind, &r.Account, &payload, &r.Attempts)
		if err != nil {
			return out, fmt.Errorf("notify: read event %d: %w", id, err)
		}
		r.Payload = []byte(payload)
		out = append(out, r)
	}
	return out, nil
}

// Done removes a row the site took (or one given up on).
func (o *Outbox) Done(ctx context.Context, id int64) error {
	if _, err := o.db.ExecContext(ctx, "DELETE FROM `"+o.table+"` WHERE `id` = ?", id); err != nil {
		return fmt.Errorf("notify: remove event %d: %w", id, err)
	}
	return nil
}

// Retry makes a row due again at next, counting the attempt.
func (o *Outbox) Retry(ctx context.Context, id int64, next time.Time) error {
	_, err := o.db.ExecContext(ctx, "UPDATE `"+o.table+"` SET `attempts` = `attempts` + 1, `next_at` = ?, `claimed_by` = '' WHERE `id` = ?", next.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("notify: reschedule event %d: %w", id, err)
	}
	return nil
}

// Held is an event in its grace period, kept from its first message on.
type Held struct {
	EventID string
	Account string
	Payload []byte
	NextAt  time.Time // when any node may send it: its holder writes it out sooner
	Created time.Time
}

// Hold inserts held events in one statement; an event already there (the
// statement is retried after an answer that was lost) is skipped.
func (o *Outbox) Hold(ctx context.Context, evs []Held) error {
	if len(evs) == 0 {
		return nil
	}
	var b strings.Builder
	ignore := "INSERT IGNORE INTO `"
	if o.dialect == "sqlite" {
		ignore = "INSERT OR IGNORE INTO `"
	}
	b.WriteString(ignore + o.table + "` (`event_id`, `kind`, `account`, `payload`, `attempts`, `next_at`, `claimed_by`, `created`) VALUES ")
	args := make([]any, 0, 6*len(evs))
	for i, e := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, 0, ?, '', ?)")
		args = append(args, e.EventID, KindMessages, e.Account, string(e.Payload), e.NextAt.UnixMilli(), e.Created.UnixMilli())
	}
	if _, err := o.db.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("notify: keep %d held events: %w", len(evs), err)
	}
	return nil
}

// Release writes a held event's final payload and, with due set, makes it due
// at due. It reports false when the row is gone or taken (an init dropped it,
// or another node took it as left behind): the event is then not this
// node's to send.
func (o *Outbox) Release(ctx context.Context, eventID string, payload []byte, due time.Time) (bool, error) {
	q := "UPDATE `" + o.table + "` SET `payload` = ? WHERE `event_id` = ? AND `attempts` = 0 AND `claimed_by` = ''"
	args := []any{string(payload), eventID}
	if !due.IsZero() {
		q = "UPDATE `" + o.table + "` SET `payload` = ?, `next_at` = ? WHERE `event_id` = ? AND `attempts` = 0 AND `claimed_by` = ''"
		args = []any{string(payload), due.UnixMilli(), eventID}
	}
	res, err := o.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("notify: release event %s: %w", eventID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("notify: release event %s: %w", eventID, err)
	}
	return n == 1, nil
}

// Cancel drops the held events of accounts (they connected), on whichever
// node they were stored, and says how many it dropped: the rows not yet
// written out (next_at still ahead of now, never posted nor claimed).
func (o *Outbox) Cancel(ctx context.Context, accounts []string, now time.Time) (int64, error) {
	if len(accounts) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(accounts)+1)
	args = append(args, now.UnixMilli())
	for _, a := range accounts {
		args = append(args, a)
	}
	q := "DELETE FROM `" + o.table + "` WHERE `next_at` > ? AND `kind` = '" + KindMessages + "' AND `attempts` = 0 AND `claimed_by` = '' AND `account` IN (?" +
		strings.Repeat(", ?", len(accounts)-1) + ")"
	res, err := o.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("notify: drop held events of %d accounts: %w", len(accounts), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("notify: drop held events: %w", err)
	}
	return n, nil
}

// Delay makes a row due again at next without counting an attempt (its post
// was not tried).
func (o *Outbox) Delay(ctx context.Context, id int64, next time.Time) error {
	_, err := o.db.ExecContext(ctx, "UPDATE `"+o.table+"` SET `next_at` = ?, `claimed_by` = '' WHERE `id` = ?", next.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("notify: delay event %d: %w", id, err)
	}
	return nil
}

// lockConflict: MySQL undid the statement for a deadlock (1213) or a lock
// wait timeout (1205) with another transaction.
func lockConflict(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}
