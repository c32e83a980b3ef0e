package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver for -mysql-dsn
)

// offline sends -messages to -accounts receivers that are not connected,
// waits for the rows in app_offline (with -mysql-dsn) or -offline-wait,
// then connects the receivers and times the drain.
func (c *coord) offline(ctx context.Context) error {
	cfg := c.cfg
	n := len(c.pool.procs)
	senders := make([][]string, n)
	receivers := make([][]string, n)
	specs := make([][]pairSpec, n)
	for j := range cfg.accounts {
		s, r := cfg.prefix+"os"+strconv.Itoa(j), cfg.prefix+"or"+strconv.Itoa(j)
		cnt := int64(cfg.messages / cfg.accounts)
		if j < cfg.messages%cfg.accounts {
			cnt++
		}
		senders[j%n] = append(senders[j%n], s)
		receivers[j%n] = append(receivers[j%n], r)
		specs[j%n] = append(specs[j%n], pairSpec{From: s, To: r, N: cnt})
	}
	r := &offlineResult{Messages: int64(cfg.messages), Accounts: cfg.accounts}
	c.res.Offline = r
	var db *offlineDB
	if cfg.dsn != "" {
		var err error
		if db, err = openOfflineDB(ctx, cfg.dsn, cfg.prefix); err != nil {
			return err
		}
		defer db.Close()
	}
	c.setPhase("offline: connecting senders")
	if _, err := c.connect(ctx, senders); err != nil {
		return err
	}
	cpu := c.startCPU()
	c.setPhase("offline: sending")
	sent, firstSend, err := c.offlineSend(ctx, specs)
	r.Sent = sent
	if err != nil {
		return err
	}
	if db != nil {
		c.setPhase("offline: waiting for rows")
		rows, at, err := db.waitRows(ctx, sent, cfg.writeTimeout)
		if err != nil {
			return err
		}
		r.RowsSeen = &rows
		r.WriteSeconds = ptr(at.Sub(time.Unix(0, firstSend)).Seconds())
		r.RowsWrittenPerS = ptr(float64(rows) / *r.WriteSeconds)
	} else {
		c.setPhase("offline: waiting %s", cfg.offlineWait)
		sleepCtx(ctx, cfg.offlineWait)
	}
	if err := c.pool.all(func(i int, wp *workerProc) error {
		_, err := wp.call(ctx, "offline_expect", args{Pairs: specs[i]})
		return err
	}); err != nil {
		return err
	}
	c.setPhase("offline: receivers draining")
	drainStart := time.Now()
	if _, err := c.connect(ctx, receivers); err != nil {
		return err
	}
	agg := &flowStat{}
	var mu sync.Mutex
	if err := c.pool.all(func(_ int, wp *workerProc) error {
		res, err := wp.call(ctx, "offline_wait", args{TimeoutN: int64(time.Until(drainStart.Add(cfg.drainTimeout)))})
		if err != nil {
			return err
		}
		mu.Lock()
		agg.merge(res.Flow)
		mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	c.res.CPU = cpu.stop(agg.Unique + agg.Dup)
	r.Delivered, r.Duplicated, r.OutOfOrder, r.WrongFrom = agg.Unique, agg.Dup, agg.OutOfOrder, agg.WrongFrom
	r.Lost = r.Sent - agg.Unique
	if agg.LastRecvNs > 0 {
		r.DrainSeconds = time.Unix(0, agg.LastRecvNs).Sub(drainStart).Seconds()
		r.DrainedPerSec = float64(agg.Unique) / r.DrainSeconds
	}
	if db != nil {
		c.setPhase("offline: checking status")
		left, err := db.waitUnsent(ctx, 5*time.Second)
		if err != nil {
			return err
		}
		r.UnsentAfter = &left
	}
	return nil
}

func (c *coord) offlineSend(ctx context.Context, specs [][]pairSpec) (sent, firstNs int64, err error) {
	var mu sync.Mutex
	err = c.pool.all(func(i int, wp *workerProc) error {
		if len(specs[i]) == 0 {
			return nil
		}
		var share int64
		for _, s := range specs[i] {
			share += s.N
		}
		run := &pairsParams{Rate: c.cfg.rate * float64(share) / float64(c.cfg.messages)}
		res, err := wp.call(ctx, "offline_send", args{Pairs: specs[i], Run: run})
		if err != nil {
			return err
		}
		mu.Lock()
		sent += res.Flow.Sent
		firstNs = minNonZero(firstNs, res.Flow.FirstSendNs)
		mu.Unlock()
		return nil
	})
	return sent, firstNs, err
}

// offlineDB watches app_offline rows addressed to this run's accounts.
type offlineDB struct {
	db      *sql.DB
	pattern string
}

func openOfflineDB(ctx context.Context, dsn, prefix string) (*offlineDB, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql: open: %w", err)
	}
	db.SetMaxOpenConns(2)
	o := &offlineDB{db: db, pattern: likePrefix(prefix)}
	if _, err := o.count(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return o, nil
}

func (o *offlineDB) Close() error { return o.db.Close() }

// likePrefix escapes LIKE wildcards in the account prefix.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}

func (o *offlineDB) count(ctx context.Context) (int64, error) {
	var n int64
	err := o.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM app_offline WHERE `to` LIKE ? AND `status` = 0", o.pattern).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("mysql: count app_offline: %w", err)
	}
	return n, nil
}

// waitRows polls until want unsent rows exist or timeout; it returns the
// last count and when it was reached.
func (o *offlineDB) waitRows(ctx context.Context, want int64, timeout time.Duration) (int64, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := o.count(ctx)
		now := time.Now()
		if err != nil || n >= want {
			return n, now, err
		}
		if now.After(deadline) {
			return n, now, fmt.Errorf("mysql: %d of %d rows after %s", n, want, timeout)
		}
		sleepCtx(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return n, now, ctx.Err()
		}
	}
}

// waitUnsent polls until no row of the run is left with status 0, or the
// timeout, and returns what is left.
func (o *offlineDB) waitUnsent(ctx context.Context, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := o.count(ctx)
		if err != nil || n == 0 || time.Now().After(deadline) {
			return n, err
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}
