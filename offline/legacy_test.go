package offline_test

import (
	"context"
	"database/sql"
	"testing"

	"chatserver/internal/servicetest"
	"chatserver/offline"
)

// TestLegacyTableUpgrade runs the migrations over a table laid out as the PHP
// server created it: utf8 (3-byte), no index but the primary key, rows in it.
// Every row and column stays; the table becomes utf8mb4 and gets the drain index.
func TestLegacyTableUpgrade(t *testing.T) {
	dsn := servicetest.MySQLDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE app_offline (id int auto_increment primary key, `from` varchar(32), `to` varchar(32),"+
		" content varchar(255), status tinyint default 0, addtime int, extra_php_col varchar(10) default 'x') DEFAULT CHARSET=utf8")
	mustExec(t, db, "INSERT INTO app_offline (`from`,`to`,content,status,addtime) VALUES ('alice','bob','old 1',0,1600000000),"+
		"('alice','bob','old sent',1,1600000001),('carol','bob','old 2',0,1600000002)")

	s, err := offline.Open(ctx, offline.MySQL, dsn, "app_offline")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	MustMigrate(t, s)
	MustMigrate(t, s) // idempotent

	var charset string
	if err := db.QueryRow("SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME='app_offline' AND COLUMN_NAME='content'").Scan(&charset); err != nil {
		t.Fatal(err)
	}
	if charset != "utf8mb4" {
		t.Errorf("content charset = %s; want utf8mb4", charset)
	}
	var idx int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME='app_offline' AND INDEX_NAME='idx_to_status'").Scan(&idx); err != nil {
		t.Fatal(err)
	}
	if idx == 0 {
		t.Error("drain index idx_to_status missing after migration")
	}
	var rows, extra int
	if err := db.QueryRow("SELECT COUNT(*), SUM(extra_php_col = 'x') FROM app_offline").Scan(&rows, &extra); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || extra != 3 {
		t.Errorf("rows = %d, extra column kept on %d; want 3 and 3", rows, extra)
	}
	l := s.Limits()
	if l.AccountChars != 32 || l.ContentChars != 255 {
		t.Errorf("limits = %+v; want account 32 chars, content 255 chars", l)
	}
	pending, _, _, err := s.Pending(ctx, "bob", "", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].Content != "old 1" || pending[1].Content != "old 2" {
		t.Errorf("pending legacy rows = %+v; want old 1, old 2", pending)
	}
	// Emoji now fit.
	if err := s.Insert(ctx, []offline.Message{{To: "bob", From: "alice", Content: "🎉"}}); err != nil {
		t.Errorf("insert emoji after migration: %v", err)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
