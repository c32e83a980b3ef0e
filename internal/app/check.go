package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"chatserver/config"
	"chatserver/internal/boxcheck"
	"chatserver/offline"
	"chatserver/server"
)

// CheckTarget is what the machine must hold for cfg: server.max_connections,
// over wss:// when the server terminates TLS, with a proxy on the machine when
// server.trusted_proxies names a loopback address, on the ports it listens on.
func CheckTarget(cfg config.Config) (boxcheck.Target, error) {
	t := boxcheck.Target{Connections: cfg.Server.MaxConnections, TLS: cfg.TLS.Addr != ""}
	if t.Connections <= 0 {
		t.Connections = server.DefaultMaxConnections
	}
	trusted, err := config.Networks("server.trusted_proxies", cfg.Server.TrustedProxies)
	if err != nil {
		return t, err
	}
	for _, p := range trusted {
		t.LocalProxy = t.LocalProxy || p.Contains(netip.MustParseAddr("127.0.0.1")) || p.Contains(netip.IPv6Loopback())
	}
	addrs := []string{cfg.Server.Addr, cfg.TLS.Addr}
	if cfg.API.Secret != "" {
		addrs = append(addrs, cfg.API.Addr)
	}
	for _, a := range addrs {
		if a == "" {
			continue
		}
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			return t, fmt.Errorf("check: listen address %q: %w", a, err)
		}
		if p, err := strconv.Atoi(port); err == nil && p > 0 {
			t.Ports = append(t.Ports, p)
		}
	}
	return t, nil
}

// CheckServices reaches the Redis and the MySQL that cfg names, the way the
// server does, and says whether each answers within timeout: with its
// address, never its password. One not configured is reported as such.
func CheckServices(ctx context.Context, cfg config.Config, timeout time.Duration) []boxcheck.Finding {
	return []boxcheck.Finding{checkRedis(ctx, cfg.Redis, timeout), checkMySQL(ctx, cfg, timeout)}
}

func checkRedis(ctx context.Context, cfg config.Redis, timeout time.Duration) boxcheck.Finding {
	f := boxcheck.Finding{Name: "redis"}
	if cfg.Addr == "" {
		f.Detail = "not configured (redis.addr): the in-process account map, this node alone"
		return f
	}
	where := cfg.Addr
	if cfg.SentinelMaster != "" {
		where = fmt.Sprintf("master %q through the Sentinels at %s", cfg.SentinelMaster, cfg.Addr)
	}
	rdb := newRedisClient(cfg)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		f.Status = boxcheck.Fail
		f.Detail = fmt.Sprintf("%s does not answer PING: %s", where, redact(err, cfg.Password, cfg.SentinelPassword))
		f.Fix = "redis.addr (CHAT_REDIS_ADDR), redis.username and redis.password (CHAT_REDIS_PASSWORD): is Redis listening there, and does it take them?"
		return f
	}
	f.Detail = where + " answers PING"
	return f
}

func checkMySQL(ctx context.Context, cfg config.Config, timeout time.Duration) boxcheck.Finding {
	f := boxcheck.Finding{Name: "mysql"}
	if cfg.MySQL.DSN == "" {
		f.Detail = fmt.Sprintf("not configured (mysql.dsn): the embedded SQLite file %s", cfg.Embed.Path)
		return f
	}
	dsn, err := mysql.ParseDSN(cfg.MySQL.DSN)
	if err != nil {
		f.Status = boxcheck.Fail
		f.Detail = "mysql.dsn cannot be read: " + err.Error()
		f.Fix = "mysql.dsn (CHAT_MYSQL_DSN), e.g. chat:secret@tcp(127.0.0.1:3306)/site"
		return f
	}
	where := fmt.Sprintf("%s database %q as %q", dsn.Addr, dsn.DBName, dsn.User)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := offline.Open(ctx, offline.MySQL, cfg.MySQL.DSN, cfg.Offline.Table)
	if err != nil {
		f.Status = boxcheck.Fail
		f.Detail = fmt.Sprintf("%s: %s", where, redact(err, dsn.Passwd))
		f.Fix = "mysql.dsn (CHAT_MYSQL_DSN): is MySQL listening there, and does it let that user into that database?"
		return f
	}
	_ = st.Close()
	f.Detail = where + " answers"
	return f
}

// redact removes the secrets from an error's text, should a driver ever
// quote them.
func redact(err error, secrets ...string) string {
	s := err.Error()
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}
