package offline

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Migrate brings the table up to date with the files in migrations/<dialect>/*.sql
// (see RunMigrations; `{table}` stands for the configured table name, and
// `{name}` for names[name], e.g. {group_table}). Migrate then reads the column
// limits (see Limits) and prepares the drain's statements.
func (s *Store) Migrate(ctx context.Context, migrations fs.FS, names map[string]string) error {
	all := map[string]string{"table": s.table}
	for k, v := range names {
		all[k] = v
	}
	if err := RunMigrations(ctx, s.db, s.dialect, migrations, s.table, all); err != nil {
		return err
	}
	if s.dialect == MySQL {
		var err error
		if s.limits, err = s.mysqlLimits(ctx); err != nil {
			return err
		}
	}
	return s.prepare(ctx)
}

// RunMigrations brings table, in db, up to date with the files in
// migrations/<dialect>/*.sql, in name order; it serves every table kept in the
// offline pool's database. A file may start with a guard line
//
//	-- when: SELECT COUNT(*) ... WHERE TABLE_NAME = ?
//
// and then runs only when the guard's first column is non-zero (each ? gets
// table). Every file is safe to run again, so start-up is idempotent.
// `{name}` in a file stands for names[name]; every name must be a plain
// identifier. With MySQL, a named lock per table keeps nodes starting at once
// from running the same ALTER twice: one migrates, the others wait for it and
// then find nothing to do.
func RunMigrations(ctx context.Context, db *sql.DB, dialect Dialect, migrations fs.FS, table string, names map[string]string) error {
	var repl []string
	for k, v := range names {
		if !tableName.MatchString(v) {
			return fmt.Errorf("offline: table name %q for %s: want letters, digits and _", v, k)
		}
		repl = append(repl, "{"+k+"}", v)
	}
	r := strings.NewReplacer(repl...)
	if dialect == MySQL {
		unlock, err := lock(ctx, db, "chat_migrate_"+table)
		if err != nil {
			return err
		}
		defer unlock()
	}
	dir := string(dialect)
	files, err := fs.Glob(migrations, dir+"/*.sql")
	if err != nil {
		return fmt.Errorf("offline: list migrations: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("offline: no migrations under %s/", dir)
	}
	sort.Strings(files)
	for _, name := range files {
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return fmt.Errorf("offline: read %s: %w", name, err)
		}
		if err := apply(ctx, db, table, path.Base(name), string(body), r); err != nil {
			return err
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, table, name, body string, r *strings.Replacer) error {
	guard, stmts := parseMigration(body, r)
	if guard != "" {
		args := make([]any, strings.Count(guard, "?"))
		for i := range args {
			args[i] = table
		}
		var need sql.NullInt64
		if err := db.QueryRowContext(ctx, guard, args...).Scan(&need); err != nil {
			return fmt.Errorf("offline: migration %s: guard: %w", name, err)
		}
		if need.Int64 == 0 {
			return nil
		}
	}
	for _, st := range stmts {
		if _, err := db.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("offline: migration %s: %w", name, err)
		}
	}
	return nil
}

// parseMigration splits a file into its guard query and its statements
// (separated by ';' at the end of a line).
func parseMigration(body string, r *strings.Replacer) (guard string, stmts []string) {
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if g, ok := strings.CutPrefix(trimmed, "-- when:"); ok {
			guard = strings.TrimSpace(g)
			continue
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, r.Replace(strings.TrimSpace(cur.String())))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, r.Replace(rest))
	}
	return guard, stmts
}

// mysqlLimits reads the sizes of `from`, `to` and `content`.
func (s *Store) mysqlLimits(ctx context.Context) (Limits, error) {
	rows, err := s.db.QueryContext(ctx,
		"SELECT COLUMN_NAME, CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS"+
			" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME IN ('from', 'to', 'content')", s.table)
	if err != nil {
		return Limits{}, fmt.Errorf("offline: read column sizes: %w", err)
	}
	defer rows.Close()
	var l Limits
	seen := 0
	for rows.Next() {
		var (
			col          string
			chars, bytes sql.NullInt64
		)
		if err := rows.Scan(&col, &chars, &bytes); err != nil {
			return Limits{}, fmt.Errorf("offline: read column sizes: %w", err)
		}
		seen++
		switch col {
		case "content":
			l.ContentChars, l.ContentBytes = int(chars.Int64), int(bytes.Int64)
		default:
			if c := int(chars.Int64); c > 0 && (l.AccountChars == 0 || c < l.AccountChars) {
				l.AccountChars = c
			}
		}
	}
	if err := rows.Err(); err != nil {
		return Limits{}, fmt.Errorf("offline: read column sizes: %w", err)
	}
	if seen < 3 {
		return Limits{}, fmt.Errorf("offline: table %s lacks one of the columns from, to, content", s.table)
	}
	return l, nil
}

// lock takes a MySQL named lock (GET_LOCK) for the length of the migrations.
func lock(ctx context.Context, db *sql.DB, name string) (func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("offline: migration lock: %w", err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 120)", name).Scan(&got); err != nil || got.Int64 != 1 {
		_ = conn.Close()
		if err == nil {
			err = fmt.Errorf("timed out waiting for another node's migrations")
		}
		return nil, fmt.Errorf("offline: migration lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT RELEASE_LOCK(?)", name)
		_ = conn.Close()
	}, nil
}
