// Package offline is the offline pool: messages for accounts that are not
// connected wait in the SQL table app_offline (MySQL, or the embedded SQLite file)
// until the account sends init. The table keeps the legacy PHP layout, so the PHP
// application can keep reading it.
package offline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"chatserver/internal/sqlin"
)

// Message is one message waiting for its recipient.
type Message struct {
	To, From, Content string
	Group             string // the group of a group message, "" for one-to-one
	ID                string // the id the server gave the message
	AddTime           int64  // unix seconds
}

// Row is a pending message read back from the pool.
type Row struct {
	ID      int64
	To      string
	From    string
	Content string
	Group   string // "" for one-to-one messages (and every legacy row)
	MsgID   string // the server's message id; "" for legacy rows
	AddTime int64
}

// MessageID is the id clients see: the server's, or "o<row id>" for a row
// written by the PHP side.
func (r Row) MessageID() string {
	if r.MsgID != "" {
		return r.MsgID
	}
	return "o" + strconv.FormatInt(r.ID, 10)
}

// Dialect names the SQL engine behind a Store.
type Dialect string

// The two engines the pool runs on.
const (
	MySQL  Dialect = "mysql"
	SQLite Dialect = "sqlite"
)

// Limits are the column sizes of the table, so that a message the table cannot
// hold is refused up front instead of failing (or being cut) in a batch insert.
// Zero means no limit.
type Limits struct {
	AccountChars int // the smaller of `from` and `to`
	ContentChars int
	ContentBytes int
}

// Store runs the pool's SQL. Every statement is parameterized; the only
// identifier spliced into SQL is the table name, checked by validTable.
type Store struct {
	db      *sql.DB
	dialect Dialect
	table   string
	limits  Limits
	q       queries

	// The drain's queries run at every init: prepared once (per pooled
	// connection, by database/sql), each costs one round trip, not three.
	pending, pendingFrom *sql.Stmt
	probe                *coalescer[string, bool]
	marker               *coalescer[[]int64, struct{}]
}

type queries struct {
	insertPrefix, insertRow, insertSuffix string
	pending, pendingFrom                  string
	markPrefix                            string
	rowMark, recipientsAfter              string
}

// maxOpenConns bounds the MySQL connections of one server: the batch writer
// uses one, inits draining at the same moment use the rest.
const maxOpenConns = 32

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Open connects to the pool. dsn is a go-sql-driver/mysql DSN for MySQL, or a
// file path for SQLite. It does not migrate: call Migrate.
func Open(ctx context.Context, dialect Dialect, dsn, table string) (*Store, error) {
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("offline: table name %q: want letters, digits and _", table)
	}
	var (
		db  *sql.DB
		err error
	)
	switch dialect {
	case MySQL:
		cfg, perr := mysql.ParseDSN(dsn)
		if perr != nil {
			return nil, fmt.Errorf("offline: mysql dsn: %w", perr)
		}
		cfg.ParseTime = false
		cfg.InterpolateParams = false
		// Emoji need utf8mb4 on the wire as well as in the table.
		if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_general_ci")); err != nil {
			return nil, fmt.Errorf("offline: mysql charset: %w", err)
		}
		conn, cerr := mysql.NewConnector(cfg)
		if cerr != nil {
			return nil, fmt.Errorf("offline: mysql connector: %w", cerr)
		}
		db = sql.OpenDB(conn)
		db.SetMaxOpenConns(maxOpenConns)
		db.SetMaxIdleConns(maxOpenConns)
	case SQLite:
		db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err != nil {
			return nil, fmt.Errorf("offline: sqlite %s: %w", dsn, err)
		}
		// One connection: SQLite has one writer anyway, and this keeps the
		// batch writer and the drains from tripping over each other's locks.
		db.SetMaxOpenConns(1)
	default:
		return nil, fmt.Errorf("offline: unknown dialect %q", dialect)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("offline: connect %s: %w", dialect, err)
	}
	s := &Store{db: db, dialect: dialect, table: table, probe: newProbe(db, dialect, table)}
	s.q = buildQueries(dialect, table)
	// Drains that finish together share one UPDATE (and one commit).
	s.marker = newCoalescer("mark sent", maxBatch, func(ctx context.Context, sets [][]int64) ([]struct{}, error) {
		var ids []int64
		for _, set := range sets {
			ids = append(ids, set...)
		}
		return make([]struct{}, len(sets)), s.markSent(ctx, ids)
	})
	return s, nil
}

// HasPending reports whether account may have unsent rows; false means none.
// Calls from concurrent inits share one query.
func (s *Store) HasPending(ctx context.Context, account string) (bool, error) {
	return s.probe.do(ctx, account)
}

// prepare readies the drain's statements; the table must exist (after Migrate).
func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.pending, err = s.db.PrepareContext(ctx, s.q.pending); err != nil {
		return fmt.Errorf("offline: prepare drain query: %w", err)
	}
	if s.pendingFrom, err = s.db.PrepareContext(ctx, s.q.pendingFrom); err != nil {
		return fmt.Errorf("offline: prepare drain query: %w", err)
	}
	return nil
}

// buildQueries writes the pool's statements for dialect.
//
// The INSERT is idempotent: a row whose (to, msg_id) is already in the table
// (the unique key uniq_to_msg_id, see the 007/006 migrations) is skipped, so a
// batch may be written again whenever its first attempt's outcome is unknown (a
// timeout after the commit, a connection lost before the answer, a crash
// between the spool's insert into MySQL and its delete). MySQL uses ON DUPLICATE
// KEY UPDATE with a no-op assignment rather than INSERT IGNORE: IGNORE would
// also turn data errors (a value too long, a bad character) into warnings and
// store the row cut, where the writer must see the error. The only unique keys
// are the primary key, which the INSERT never sets, and uniq_to_msg_id, so only
// a repeat of a message takes the UPDATE branch. Rows without a msg_id (NULL)
// never conflict.
func buildQueries(dialect Dialect, table string) queries {
	t := "`" + table + "`"
	suffix := " ON DUPLICATE KEY UPDATE `id` = `id`"
	if dialect == SQLite {
		suffix = " ON CONFLICT (`to`, `msg_id`) DO NOTHING"
	}
	return queries{
		insertPrefix: "INSERT INTO " + t + " (`to`, `from`, `content`, `status`, `addtime`, `group`, `msg_id`) VALUES ",
		insertRow:    "(?, ?, ?, 0, ?, ?, ?)",
		insertSuffix: suffix,
		pending: "SELECT `id`, `to`, `from`, `content`, `addtime`, `group`, `msg_id` FROM " + t +
			" WHERE `to` = ? AND `status` = 0 AND `id` > ? ORDER BY `id` LIMIT ?",
		pendingFrom: "SELECT `id`, `to`, `from`, `content`, `addtime`, `group`, `msg_id` FROM " + t +
			" WHERE `to` = ? AND `status` = 0 AND `id` > ? AND `from` = ? ORDER BY `id` LIMIT ?",
		markPrefix: "UPDATE " + t + " SET `status` = 1 WHERE `id` IN (",
		rowMark:    "SELECT COALESCE(MAX(`id`), 0) FROM " + t,
		recipientsAfter: "SELECT DISTINCT `to` FROM " + t +
			" WHERE `id` > ? AND `status` = 0 LIMIT ?",
	}
}

// Close closes the prepared statements and the database handle.
func (s *Store) Close() error {
	s.probe.stop()
	s.marker.stop()
	for _, st := range []*sql.Stmt{s.pending, s.pendingFrom} {
		if st != nil {
			_ = st.Close()
		}
	}
	return s.db.Close()
}

// DB exposes the handle to tests and to migrations.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect is the engine behind the store.
func (s *Store) Dialect() Dialect { return s.dialect }

// Limits returns the column limits read by Migrate.
func (s *Store) Limits() Limits { return s.limits }

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("offline: ping: %w", err)
	}
	return nil
}

// Insert writes msgs in one multi-row INSERT. Rows get ascending ids in the order
// given, which is the order the drain pushes them in. A message already in the
// table for the same recipient (same msg_id) is skipped, so writing a batch
// twice leaves it once; the first row keeps its place in the order.
func (s *Store) Insert(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	q, args := s.insertStatement(msgs)
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("offline: insert %d rows: %w", len(msgs), err)
	}
	return nil
}

func (s *Store) insertStatement(msgs []Message) (string, []any) {
	var b strings.Builder
	b.Grow(len(s.q.insertPrefix) + len(msgs)*(len(s.q.insertRow)+1) + len(s.q.insertSuffix))
	b.WriteString(s.q.insertPrefix)
	args := make([]any, 0, len(msgs)*6)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.q.insertRow)
		args = append(args, m.To, m.From, m.Content, m.AddTime,
			sql.NullString{String: m.Group, Valid: m.Group != ""}, sql.NullString{String: m.ID, Valid: m.ID != ""})
	}
	b.WriteString(s.q.insertSuffix)
	return b.String(), args
}

// Pending returns up to limit unsent rows for account with id > afterID, oldest
// first; with from != "" only those from that sender. The table's collation may
// match accounts case-insensitively, so rows whose account differs from the one
// asked for by more than case are skipped; they are left for their own account.
// next is the id to continue after (it covers skipped rows too); more says
// whether the page was full, so that another may follow.
func (s *Store) Pending(ctx context.Context, account, from string, afterID int64, limit int) (rows []Row, next int64, more bool, err error) {
	var r *sql.Rows
	switch {
	case s.pending == nil:
		return nil, afterID, false, errors.New("offline: store not migrated")
	case from == "":
		r, err = s.pending.QueryContext(ctx, account, afterID, limit)
	default:
		r, err = s.pendingFrom.QueryContext(ctx, account, afterID, from, limit)
	}
	if err != nil {
		return nil, afterID, false, fmt.Errorf("offline: pending for %q: %w", account, err)
	}
	defer r.Close()
	next = afterID
	n := 0
	for r.Next() {
		row, err := scanRow(r)
		if err != nil {
			return nil, afterID, false, fmt.Errorf("offline: scan pending for %q: %w", account, err)
		}
		n++
		next = row.ID
		if row.To != account || (from != "" && row.From != from) {
			continue
		}
		rows = append(rows, row)
	}
	if err := r.Err(); err != nil {
		return nil, afterID, false, fmt.Errorf("offline: read pending for %q: %w", account, err)
	}
	return rows, next, n == limit, nil
}

// MarkSent sets status=1 on exactly the rows given, and returns once that is
// committed. Concurrent calls share one statement.
func (s *Store) MarkSent(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.marker.do(ctx, ids)
	return err
}

// maxPlaceholders keeps a statement well under the 65,535 parameters MySQL allows.
const maxPlaceholders = 5000

// markSent runs the UPDATE, in one transaction of several statements when there
// are more ids than one statement should carry.
func (s *Store) markSent(ctx context.Context, ids []int64) error {
	if len(ids) <= maxPlaceholders {
		return s.markChunk(ctx, s.db, ids)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("offline: mark %d rows sent: %w", len(ids), err)
	}
	for len(ids) > 0 {
		n := min(len(ids), maxPlaceholders)
		if err := s.markChunk(ctx, tx, ids[:n]); err != nil {
			_ = tx.Rollback()
			return err
		}
		ids = ids[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("offline: commit marking rows sent: %w", err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) markChunk(ctx context.Context, db execer, ids []int64) error {
	q, args := sqlin.List(s.q.markPrefix, ids)
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("offline: mark %d rows sent: %w", len(ids), err)
	}
	return nil
}

// permanent reports whether err means these rows can never be inserted as they
// are (the server refused the data), as opposed to a fault worth retrying.
func permanent(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1048, 1264, 1292, 1366, 1406: // null, range, value, charset, too long
			return true
		}
	}
	return false
}

// scanRow reads one row of the pool's select list (id, to, from, content,
// addtime, group, msg_id); legacy NULLs read as empty.
func scanRow(r *sql.Rows) (Row, error) {
	var (
		row                           Row
		to, fr, content, group, msgID sql.NullString
		addtime                       sql.NullInt64
	)
	if err := r.Scan(&row.ID, &to, &fr, &content, &addtime, &group, &msgID); err != nil {
		return Row{}, err
	}
	row.To, row.From, row.Content, row.AddTime = to.String, fr.String, content.String, addtime.Int64
	row.Group, row.MsgID = group.String, msgID.String
	return row, nil
}
