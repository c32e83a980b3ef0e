package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// setup is one deployment under test: its nodes, its database, its Redis, and
// the fault proxies between them.
type setup struct {
	name    string
	cluster bool
	dir     string
	secret  string
	rec     *Recorder
	db      *database
	redis   *redisDep
	prox    []*proxies
	nodes   []*node
	keep    bool
	cleanup []func() error // in reverse order at close
}

type setupConfig struct {
	name     string
	nodes    int
	cluster  bool
	bin      string
	dir      string
	mysqlDSN string
	redis    string // shared Redis, used without redis-server
	keep     bool
}

// startSetup brings up the dependencies, the proxies and the nodes. On error,
// everything made so far is closed.
func startSetup(ctx context.Context, c setupConfig, rec *Recorder) (_ *setup, err error) {
	s := &setup{name: c.name, cluster: c.cluster, dir: c.dir, secret: randomHex(12), rec: rec, keep: c.keep}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.db, err = createDatabase(ctx, c.mysqlDSN); err != nil {
		return nil, err
	}
	s.cleanup = append(s.cleanup, func() error { return s.db.drop(s.keep) })
	if s.redis, err = startRedis(ctx, c.redis, filepath.Join(c.dir, "redis.log")); err != nil {
		return nil, err
	}
	s.cleanup = append(s.cleanup, s.redis.close)
	if !s.redis.private {
		s.note("redis-server not found: using the shared Redis at %s with prefix %s (restart = delete our keys)", s.redis.addr, s.redis.prefix)
	}
	for i := 0; i < c.nodes; i++ {
		p, err := startProxies(s.db.cfg.Addr, s.redis.addr)
		if err != nil {
			return nil, err
		}
		s.prox = append(s.prox, p)
		s.cleanup = append(s.cleanup, p.close)
		wsAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		apiAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(c.dir, fmt.Sprintf("node%d", i))
		n := &node{
			idx: i, bin: c.bin, dir: dir, logPath: filepath.Join(c.dir, fmt.Sprintf("node%d.log", i)),
			wsAddr: wsAddr, apiAddr: apiAddr, secret: s.secret, rec: rec,
			env: []string{
				"CHAT_NODE=" + fmt.Sprintf("%s-n%d", c.name, i),
				"CHAT_SERVER_ADDR=" + wsAddr,
				"CHAT_API_ADDR=" + apiAddr,
				"CHAT_API_SECRET=" + s.secret,
				"CHAT_MYSQL_DSN=" + s.db.dsnVia(p.mysql.Addr()),
				"CHAT_REDIS_ADDR=" + p.redis.Addr(),
				"CHAT_REDIS_KEY_PREFIX=" + s.redis.prefix,
				"CHAT_OFFLINE_SPOOL_PATH=" + filepath.Join(dir, "data", "spool.db"),
				"CHAT_LIMITS_FRAMES_PER_SECOND=0",
				"CHAT_LIMITS_CONNECTIONS_PER_IP=0",
				"CHAT_LOG_LEVEL=info",
				"CHAT_LOG_FORMAT=json",
				"CHAT_CLUSTER_ENABLED=" + strconv.FormatBool(c.cluster),
			},
		}
		s.nodes = append(s.nodes, n)
	}
	s.cleanup = append(s.cleanup, func() error {
		for _, n := range s.nodes {
			n.terminate(15 * time.Second)
		}
		return nil
	})
	for _, n := range s.nodes {
		if err := n.start(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// close stops the nodes and removes what the setup made; safe to call twice.
func (s *setup) close() error {
	var errs []error
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		errs = append(errs, s.cleanup[i]())
	}
	s.cleanup = nil
	return errors.Join(errs...)
}

// api calls the side API of node i.
func (s *setup) api(ctx context.Context, i int, method, path, body string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.nodes[i].apiAddr+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// metrics reads the named gauges from node i's /metrics.
func (s *setup) metrics(ctx context.Context, i int, names ...string) (map[string]float64, error) {
	code, body, err := s.api(ctx, i, http.MethodGet, "/metrics", "", 3*time.Second)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d", code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if rest, ok := strings.CutPrefix(line, n+" "); ok {
				if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
					out[n] = v
				}
			}
		}
	}
	return out, nil
}

// settled: every node ready and no offline message waiting to be written.
func (s *setup) settled(ctx context.Context) (bool, string) {
	for i := range s.nodes {
		code, body, err := s.api(ctx, i, http.MethodGet, "/readyz", "", 3*time.Second)
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("node %d /readyz: %d %s %v", i, code, strings.TrimSpace(body), err)
		}
		m, err := s.metrics(ctx, i, "chat_offline_queue_depth", "chat_offline_spool_rows")
		if err != nil {
			return false, fmt.Sprintf("node %d metrics: %v", i, err)
		}
		if m["chat_offline_queue_depth"] != 0 || m["chat_offline_spool_rows"] != 0 {
			return false, fmt.Sprintf("node %d queue %v spool %v", i, m["chat_offline_queue_depth"], m["chat_offline_spool_rows"])
		}
	}
	return true, ""
}

// sampleResources records RSS and goroutines of every node.
func (s *setup) sampleResources(ctx context.Context, label string) {
	for i, n := range s.nodes {
		e := Event{Kind: evResource, Node: i, Code: label}
		e.RSSKB = rssKB(n.pid())
		if m, err := s.metrics(ctx, i, "go_goroutines"); err == nil {
			e.Goroutines = int(m["go_goroutines"])
		} else {
			e.Detail = "goroutines unknown: " + err.Error()
		}
		s.rec.Add(e)
	}
}

// rssKB reads VmRSS from /proc (0 if unknown).
func rssKB(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
