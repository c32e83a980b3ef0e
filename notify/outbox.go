package notify

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
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

// Migrate runs migrations/<dialect>/*.sql in name order ({notify_table} is the
// table's name); every file is safe to run again.
func (o *Outbox) Migrate(ctx context.Context, migrations fs.FS) error {
	files, err := fs.Glob(migrations, o.dialect+"/*.sql")
	if err != nil {
		return fmt.Errorf("notify: list migrations: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("notify: no migrations under %s/", o.dialect)
	}
	sort.Strings(files)
	r := strings.NewReplacer("{notify_table}", o.table)
	for _, name := range files {
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return fmt.Errorf("notify: read %s: %w", name, err)
		}
		for _, st := range statements(string(body)) {
			if _, err := o.db.ExecContext(ctx, r.Replace(st)); err != nil {
				return fmt.Errorf("notify: migration %s: %w", path.Base(name), err)
			}
		}
	}
	return nil
}

// statements splits a file at ';' ending a line, leaving out comment lines.
func statements(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}

// Add keeps an event until it is sent; it is due at once.
func (o *Outbox) Add(ctx context.Context, eventID, account string, payload []byte, now time.Time) error {
	ms := now.UnixMilli()
	_, err := o.db.ExecContext(ctx, "INSERT INTO `"+o.table+"` (`event_id`, `account`, `payload`, `attempts`, `next_at`, `claimed_by`, `created`) VALUES (?, ?, ?, 0, ?, '', ?)",
		eventID, account, string(payload), ms, ms)
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
		if err != nil {
			return out, fmt.Errorf("notify: claim event %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			continue // another node took it
		}
		var r Row
		var payload string
		err = o.db.QueryRowContext(ctx, "SELECT `id`, `event_id`, `account`, `payload`, `attempts` FROM `"+o.table+"` WHERE `id` = ?", id).
			Scan(&r.ID, &r.EventID, &r.Account, &payload, &r.Attempts)
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
