package e2e

import (
	"context"
	"database/sql"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"chatserver/config"
)

// ownMariaDB runs a mariadbd of the test's own on a spare loopback port with a
// data directory of its own, so that stopping it disturbs nothing else. Grants
// are skipped: it is reachable from loopback only and lives for one test.
type ownMariaDB struct {
	t       *testing.T
	dir     string
	port    string
	cmd     *exec.Cmd
	logFile string
}

func newOwnMariaDB(t *testing.T) *ownMariaDB {
	t.Helper()
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		t.Fatalf("mariadb-install-db not installed: %v (scripts/test.sh installs mariadb-server)", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(install, "--no-defaults", "--user=root", "--datadir="+filepath.Join(dir, "data"),
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close()
	m := &ownMariaDB{t: t, dir: dir, port: port, logFile: filepath.Join(dir, "mariadb.log")}
	m.start()
	t.Cleanup(m.stop)
	db := m.open("")
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE chat CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *ownMariaDB) dsn(db string) string { return "root@tcp(127.0.0.1:" + m.port + ")/" + db }

func (m *ownMariaDB) open(db string) *sql.DB {
	d, err := sql.Open("mysql", m.dsn(db))
	if err != nil {
		m.t.Fatal(err)
	}
	return d
}

func (m *ownMariaDB) start() {
	m.t.Helper()
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	logf, _ := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	m.cmd = exec.Command(mariadbd, "--no-defaults", "--user=root", "--datadir="+filepath.Join(m.dir, "data"),
		"--port="+m.port, "--bind-address=127.0.0.1", "--socket="+filepath.Join(m.dir, "sock"),
		"--pid-file="+filepath.Join(m.dir, "pid"), "--skip-grant-tables", "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--skip-log-bin")
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	db := m.open("")
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for db.Ping() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(m.logFile)
			m.t.Fatalf("own mariadbd did not start:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *ownMariaDB) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = m.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = m.cmd.Process.Kill()
			<-done
		}
		m.cmd = nil
	}
}

// TestMySQLOutage: MySQL stops in the middle of a send storm to an offline
// recipient and comes back. Live chat goes on; every message gets its stored ack
// (the spool on disk takes them, /readyz says so); when MySQL is back the spool
// moves to it, and the recipient's init gets every message once, in order.
func TestMySQLOutage(t *testing.T) {
	t.Parallel()
	my := newOwnMariaDB(t)
	ts := startServer(t, "redis+mariadb", func(c *config.Config) { c.MySQL.DSN = my.dsn("chat") })
	alice, _ := login(t, ts, "alice", "")
	carol, _ := login(t, ts, "carol", "")
	const n = 300
	acks := 0
	send := func(i int) {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": strconv.Itoa(i), "cid": strconv.Itoa(i)})
	}
	readAck := func() {
		f := alice.next(30 * time.Second)
		if f["flag"] != "ack" || f["status"] != "stored" {
			t.Fatalf("got %v; want a stored ack", f)
		}
		acks++
	}
	for i := 0; i < 100; i++ {
		send(i)
		readAck()
	}
	my.stop()
	for i := 100; i < n; i++ {
		send(i)
	}
	for acks < n {
		readAck()
	}
	// Live chat went on; readiness says what is wrong.
	alice.send(`{"flag":"msg","from":"alice","to":"carol","content":"live"}`)
	if f := carol.next(5 * time.Second); f["content"] != "live" {
		t.Fatalf("carol got %v", f)
	}
	code, body := ts.api("GET", "/readyz", nil)
	checks, _ := body["checks"].(map[string]any)
	if code != 503 || checks["sql"] == "ok" || checks["spool"] == "ok" {
		t.Fatalf("readyz during the outage = %d %v; want 503 with sql and spool not ok", code, body)
	}

	my.start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := ts.api("GET", "/readyz", nil); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 60 s after MySQL came back: %v", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, got := login(t, ts, "bob", "")
	if len(got) != n {
		t.Fatalf("bob drained %d; want %d", len(got), n)
	}
	for i, f := range got {
		if f["content"] != strconv.Itoa(i) {
			t.Fatalf("message %d is %v: lost, duplicated or out of order", i, f["content"])
		}
	}
	db := my.open("chat")
	defer db.Close()
	var left int
	_ = db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM app_offline WHERE status = 0").Scan(&left)
	if left != 0 {
		t.Fatalf("%d rows left unsent", left)
	}
}
