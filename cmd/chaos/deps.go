package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"chatserver/internal/faultproxy"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// database is a setup's own MySQL database on the shared server.
type database struct {
	admin *sql.DB
	name  string
	cfg   *mysql.Config // the server's address, no database
}

// createDatabase makes chaos_<random> on the server named by dsn.
func createDatabase(ctx context.Context, dsn string) (*database, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	cfg.DBName = ""
	cfg.Timeout = 5 * time.Second
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	name := "chaos_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		admin.Close()
		return nil, fmt.Errorf("mysql at %s: create database: %w", cfg.Addr, err)
	}
	return &database{admin: admin, name: name, cfg: cfg}, nil
}

// dsnVia is the DSN a node uses: through its proxy, to this database.
func (d *database) dsnVia(proxyAddr string) string {
	c := d.cfg.Clone()
	c.Addr, c.Net, c.DBName = proxyAddr, "tcp", d.name
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 0, 0, 0
	return c.FormatDSN()
}

// pendingRows lists the rows left at status=0 (read directly, not through a
// proxy).
func (d *database) pendingRows(ctx context.Context) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := d.admin.QueryContext(ctx, "SELECT `to`, `from`, COALESCE(content, ''), COALESCE(msg_id, '') FROM `"+d.name+"`.`app_offline` WHERE status = ? ORDER BY id", 0)
	if err != nil {
		return nil, fmt.Errorf("pending rows: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var content string
		if err := rows.Scan(&e.To, &e.From, &content, &e.MsgID); err != nil {
			return nil, fmt.Errorf("pending rows: %w", err)
		}
		e.Kind, e.Node, e.ID = evPending, -1, content
		out = append(out, e)
	}
	return out, rows.Err()
}

func (d *database) drop(keep bool) error {
	defer d.admin.Close()
	if keep {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+d.name+"`"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.name, err)
	}
	return nil
}

// redisDep is a setup's Redis: a private redis-server (restartable) or a key
// prefix on the shared one (restart-empty deletes the prefix's keys).
type redisDep struct {
	addr    string
	prefix  string
	private bool
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis prefers a private redis-server; without one it uses shared.
func startRedis(ctx context.Context, shared, logPath string) (*redisDep, error) {
	r := &redisDep{prefix: "chaos:" + randomHex(4) + ":", logPath: logPath}
	if _, err := exec.LookPath("redis-server"); err != nil {
		r.addr = shared
		return r, r.ping(ctx)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	r.addr, r.private = addr, true
	return r, r.start(ctx)
}

func (r *redisDep) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.addr)
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("redis log: %w", err)
	}
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	return r.ping(ctx)
}

func (r *redisDep) ping(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.addr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis at %s: %w", r.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop kills a private redis-server.
func (r *redisDep) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// restartEmpty loses everything Redis held: a private server is killed and,
// after down, started again empty; on the shared one our keys are deleted.
func (r *redisDep) restartEmpty(ctx context.Context, down time.Duration) error {
	if !r.private {
		return r.deletePrefix(ctx)
	}
	r.stop()
	select {
	case <-ctx.Done():
	case <-time.After(down):
	}
	return r.start(context.WithoutCancel(ctx))
}

// running: a private server is up (the shared one always counts as up).
func (r *redisDep) running() bool {
	if !r.private {
		return true
	}
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (r *redisDep) deletePrefix(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.addr, DialTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, r.prefix+"*", 500).Result()
		if err != nil {
			return fmt.Errorf("redis scan %s*: %w", r.prefix, err)
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("redis del: %w", err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// close stops a private server, or removes our keys from the shared one.
func (r *redisDep) close() error {
	if r.private {
		r.stop()
		return nil
	}
	return r.deletePrefix(context.Background())
}

// proxies are one node's ways to its dependencies.
type proxies struct {
	mysql, redis *faultproxy.Proxy
}

func startProxies(mysqlAddr, redisAddr string) (*proxies, error) {
	m, err := faultproxy.Start(mysqlAddr)
	if err != nil {
		return nil, err
	}
	r, err := faultproxy.Start(redisAddr)
	if err != nil {
		m.Close()
		return nil, err
	}
	return &proxies{mysql: m, redis: r}, nil
}

func (p *proxies) close() error {
	return errors.Join(p.mysql.Close(), p.redis.Close())
}
