package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/config"
	"chatserver/handlers"
	"chatserver/hub"
	"chatserver/offline"
	"chatserver/presence"
	"chatserver/server"
)

//go:embed sql/mysql/*.sql sql/sqlite/*.sql
var sqlFiles embed.FS

// app is the running server with everything it owns, wired in dependency order
// and closed in reverse.
type app struct {
	cfg      config.Config
	log      zerolog.Logger
	store    *offline.Store
	writer   *offline.Writer
	rdb      *redis.Client
	presence interface {
		handlers.Presence
		ClearNode(context.Context) error
		Close(context.Context) error
	}
	srv *server.Server
}

// start opens the stores, migrates, and starts listening.
func start(ctx context.Context, cfg config.Config, log zerolog.Logger) (a *app, err error) {
	a = &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.closeStores()
		}
	}()
	node := cfg.Node
	if node == "" {
		node = defaultNode(cfg.Server.Addr)
	}
	if err := a.openStore(ctx); err != nil {
		return nil, err
	}
	if err := a.openPresence(ctx, node); err != nil {
		return nil, err
	}
	a.writer = offline.NewWriter(a.store, offline.WriterConfig{
		BatchSize: cfg.Offline.BatchSize, QueueLimit: cfg.Offline.QueueLimit,
	}, log.With().Str("component", "offline").Logger())

	table := hub.NewTable(cfg.Offline.DrainQueue)
	h := handlers.New(handlers.Config{
		Node:         node,
		Limits:       a.store.Limits(),
		DrainPage:    cfg.Offline.DrainPage,
		DrainTimeout: cfg.Offline.DrainTimeout,
	}, table, storeAdapter{a.store, a.writer}, a.presence, log.With().Str("component", "handlers").Logger())

	setNBIOLogger(log.With().Str("component", "nbio").Logger())
	a.srv = server.New(server.Config{
		Addr:                cfg.Server.Addr,
		IdleTimeout:         cfg.Server.IdleTimeout,
		MaxFrameBytes:       cfg.Server.MaxFrameBytes,
		Pollers:             cfg.Server.Pollers,
		ReadBufferBytes:     cfg.Server.ReadBufferBytes,
		MaxWriteBufferBytes: cfg.Server.MaxWriteBufferBytes,
		HandlerPoolSize:     cfg.Server.HandlerPoolSize,
		MaxConnections:      cfg.Server.MaxConnections,
	}, table, server.Hooks{OnFrame: h.Handle, OnClose: h.Closed}, log.With().Str("component", "server").Logger())
	if err := a.srv.Start(); err != nil {
		return nil, err
	}
	a.logStart(node)
	return a, nil
}

func (a *app) openStore(ctx context.Context) error {
	sub, err := fs.Sub(sqlFiles, "sql")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if a.cfg.MySQL.DSN != "" {
		a.store, err = offline.Open(ctx, offline.MySQL, a.cfg.MySQL.DSN, a.cfg.Offline.Table)
	} else {
		if dir := filepath.Dir(a.cfg.Embed.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("embedded store: %w", err)
			}
		}
		a.store, err = offline.Open(ctx, offline.SQLite, a.cfg.Embed.Path, a.cfg.Offline.Table)
	}
	if err != nil {
		return err
	}
	if err := a.store.Migrate(ctx, sub); err != nil {
		return err
	}
	return nil
}

func (a *app) openPresence(ctx context.Context, node string) error {
	plog := a.log.With().Str("component", "presence").Logger()
	if a.cfg.Redis.Addr == "" {
		a.presence = presence.NewLocal(node)
		return nil
	}
	a.rdb = redis.NewClient(&redis.Options{
		Addr: a.cfg.Redis.Addr, Username: a.cfg.Redis.Username, Password: a.cfg.Redis.Password, DB: a.cfg.Redis.DB,
	})
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", a.cfg.Redis.Addr, err)
	}
	p := presence.NewRedis(a.rdb, a.cfg.Redis.KeyPrefix, node, plog)
	a.presence = p
	if err := p.ClearNode(ctx); err != nil {
		return err
	}
	return nil
}

// logStart says what the server is using, without secrets.
func (a *app) logStart(node string) {
	ev := a.log.Info().Str("addr", a.srv.Addr()).Str("node", node).
		Str("idle_timeout", a.cfg.Server.IdleTimeout.String()).Int("max_frame_bytes", a.cfg.Server.MaxFrameBytes)
	if a.cfg.MySQL.DSN != "" {
		if m, err := mysql.ParseDSN(a.cfg.MySQL.DSN); err == nil {
			ev = ev.Str("store", "mysql").Str("mysql_addr", m.Addr).Str("mysql_db", m.DBName).Str("mysql_user", m.User)
		}
	} else {
		ev = ev.Str("store", "embedded").Str("path", a.cfg.Embed.Path)
	}
	if a.cfg.Redis.Addr != "" {
		ev = ev.Str("presence", "redis").Str("redis_addr", a.cfg.Redis.Addr).Str("key_prefix", a.cfg.Redis.KeyPrefix)
	} else {
		ev = ev.Str("presence", "in-process")
	}
	ev.Str("table", a.cfg.Offline.Table).Msg("chat server listening")
}

// Addr is the WebSocket listen address.
func (a *app) Addr() string { return a.srv.Addr() }

// Close shuts down in reverse order: connections first (1001), then the offline
// writer is flushed, then the account map, then the databases.
func (a *app) Close(ctx context.Context) error {
	var errs []error
	if a.srv != nil {
		if err := a.srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if a.writer != nil {
		if err := a.writer.Close(ctx); err != nil {
			a.log.Error().Err(err).Msg("offline messages lost at shutdown")
			errs = append(errs, err)
		}
	}
	if a.presence != nil {
		if err := a.presence.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	a.closeStores()
	if len(errs) == 0 {
		a.log.Info().Msg("stopped")
	}
	return errors.Join(errs...)
}

func (a *app) closeStores() {
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
}

func defaultNode(addr string) string {
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		port = addr
	}
	return host + ":" + port
}

// storeAdapter joins the batch writer (new messages) and the table (drain) into
// what the handlers call the store.
type storeAdapter struct {
	*offline.Store
	*offline.Writer
}

var _ handlers.Store = storeAdapter{}
