// Package app wires the chat server: it opens the stores, connects the account
// map, builds the handlers, the WebSocket server and the side API in
// dependency order, and closes them in reverse. main reads the configuration
// and hands it over with the files the binary embeds.
package app

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/api"
	"chatserver/auth"
	"chatserver/certs"
	"chatserver/cluster"
	"chatserver/config"
	"chatserver/groups"
	"chatserver/handlers"
	"chatserver/health"
	"chatserver/history"
	"chatserver/hub"
	"chatserver/metrics"
	"chatserver/notify"
	"chatserver/offline"
	"chatserver/presence"
	"chatserver/server"
)

// Assets are the files the binary embeds, next to main.go.
type Assets struct {
	// Migrations holds mysql/*.sql and sqlite/*.sql (the module's sql/).
	Migrations fs.FS
	// Web is the chat page and the client library, served on plain GET at /
	// (the module's web/static).
	Web fs.FS
}

// App is the running server with everything it owns, wired in dependency order
// and closed in reverse.
type App struct {
	cfg       config.Config
	log       zerolog.Logger
	assets    Assets
	store     *offline.Store
	spool     *offline.Store
	spoolHeld int // rows a previous run left in the spool
	writer    *offline.Writer
	history   *history.Writer       // nil: history off
	notifier  *notify.Notifier      // nil: notify.url unset
	convs     *history.ConvIndex    // the conversation list's writer; nil: history off
	cursors   *history.CursorWriter // the read cursors' writer; nil: history off
	stopKeep  context.CancelFunc    // stops history retention
	// stopNotify stops the notification sender (notify.url set); nil: off.
	stopNotify func()
	rdb        redis.UniversalClient
	presence   interface {
		handlers.Presence
		ClearNode(context.Context) error
		Close(context.Context) error
	}
	srv     *server.Server
	api     *api.Server
	stopBus context.CancelFunc
	peers   *cluster.Peers // with cluster.enabled: where this node's accounts are elsewhere
	// rejoinTo is the handler that rereads what other nodes stored for this
	// node's connections while it was cut off from Redis (set once it exists).
	rejoinTo atomic.Pointer[handlers.Handler]
	certs    *certs.Store
	metrics  *metrics.Metrics
	handler  *handlers.Handler
	groups   *groups.Cache
	probes   *health.Probes // /healthz and /readyz, on the WebSocket port and the side API
	// afterConnections, if set, runs in Close once the connections are gone
	// and before the offline writer's last flush (a handover's link to the
	// new process, handover.go).
	afterConnections func()
}

// Start opens the stores, migrates, and starts listening. ctx bounds the wait
// for a MySQL that does not answer yet; the app runs until Close.
func Start(ctx context.Context, cfg config.Config, log zerolog.Logger, assets Assets) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, assets: assets}
	defer func() {
		if err != nil {
			if a.stopBus != nil {
				a.stopBus()
			}
			if a.stopKeep != nil {
				a.stopKeep()
			}
			if a.stopNotify != nil {
				a.stopNotify()
			}
			if a.history != nil {
				cctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = a.history.Close(cctx)
				cancel()
			}
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = a.closeReads(cctx)
			cancel()
			if a.srv != nil {
				_ = a.srv.Shutdown(context.Background())
			}
			a.closeStores()
		}
	}()
	node := cfg.Node
	if node == "" {
		node = defaultNode(cfg.Server.Addr)
	}
	// Another process of ours on the port: this one is its successor (README
	// "Upgrades"); it gets the port's new connections from now on.
	beside := cfg.Server.ReusePort && serving(cfg.Server.Addr)
	if beside {
		log.Warn().Str("addr", cfg.Server.Addr).
			Msg("another process serves server.addr: starting beside it; send it SIGUSR2 to hand its connections over to this one")
	}
	if cfg.Redis.Addr != "" {
		a.rdb = newRedisClient(cfg.Redis)
		if node, err = a.nodeBeside(ctx, node, beside); err != nil {
			return nil, err
		}
	}
	if err := a.openStoreWaiting(ctx); err != nil {
		return nil, err
	}
	table := hub.NewTable(cfg.Offline.DrainQueue)
	a.metrics = metrics.New(
		func() float64 { return float64(table.Len()) },
		func() float64 { return float64(a.writer.Depth()) },
		func() float64 { return float64(a.writer.Spooled()) },
	)
	if err := a.openPresence(node, table); err != nil {
		return nil, err
	}
	wopts := []offline.WriterOption{offline.WithObserver(a.metrics)}
	if err := a.openSpool(ctx); err != nil {
		return nil, err
	}
	if a.spool != nil {
		wopts = append(wopts, offline.WithSpool(a.spool, a.spoolHeld))
	}
	a.writer = offline.NewWriter(a.store, offline.WriterConfig{
		BatchSize: cfg.Offline.BatchSize, QueueLimit: cfg.Offline.QueueLimit, SpoolLimit: cfg.Offline.SpoolMaxRows,
		SenderShare: cfg.Offline.SenderQueueShare,
	}, log.With().Str("component", "offline").Logger(), wopts...)
	a.groups = groups.NewCache(groups.NewStore(a.store.DB(), cfg.Groups.Table, a.store.Dialect() == offline.SQLite),
		cfg.Groups.CacheTTL, cfg.Limits.MaxGroupSize, cfg.Groups.CacheEntries)
	hcfg := handlers.Config{
		Node:            node,
		Limits:          a.store.Limits(),
		MaxContentBytes: cfg.Limits.MaxContentBytes,
		DrainPage:       cfg.Offline.DrainPage,
		DrainTimeout:    cfg.Offline.DrainTimeout,
		QueryTimeout:    cfg.Offline.QueryTimeout,
		Broadcasters:    cfg.Broadcast.Allowed,
		// A connection that has not proved its account gets nothing with jwt.
		AnnounceToUnbound: cfg.Broadcast.IncludeUnbound && cfg.Auth.Mode != "jwt",
		BinaryAsText:      cfg.Server.BinaryAsText,
		FramesPerSecond:   cfg.Limits.FramesPerSecond,
		FrameBurst:        cfg.Limits.FrameBurst,
		MaxDelayedFrames:  cfg.Limits.MaxDelayedFrames,
		MaxDelayedBytes:   int64(cfg.Limits.MaxDelayedBytes),
		MaxUnacked:        cfg.Limits.MaxUnacked,
		AckMemory:         cfg.Limits.AckMemory,

		ConnectionsPerAccount: cfg.Limits.ConnectionsPerAccount,
		RecallWindow:          cfg.History.RecallWindow,
		ConfirmTimeout:        cfg.Cluster.ConfirmTimeout,
	}
	if cfg.Auth.Mode == "jwt" {
		v, err := auth.New(auth.Config{Secret: cfg.Auth.JWTSecret, PublicKeyFile: cfg.Auth.JWTPublicKeyFile, Issuer: cfg.Auth.JWTIssuer,
			Leeway: cfg.Auth.JWTLeeway})
		if err != nil {
			return nil, err
		}
		hcfg.Verifier = v
	} else {
		log.Warn().Msg("auth.mode is none: any client may claim any account at init (the legacy behaviour); set auth.mode: jwt to require tokens")
	}
	deps := handlers.Deps{
		Table: table, Queue: a.writer, Backlog: a.store, Presence: a.presence, Groups: a.groups,
		RowMarks: a.store, Metrics: a.metrics, Log: log.With().Str("component", "handlers").Logger(),
	}
	if cfg.HistoryOn() {
		hs, err := a.openHistory(ctx)
		if err != nil {
			return nil, err
		}
		reads, recorders, err := a.openReads()
		if err != nil {
			return nil, err
		}
		deps.History = historyDeps{recorders, hs, a.history}
		deps.Reads = reads
	}
	if cfg.Notify.URL != "" {
		n, err := a.openNotify(ctx, node)
		if err != nil {
			return nil, err
		}
		deps.Notifier = n
		a.notifier = n
	}
	var bus *cluster.Bus
	if cfg.Cluster.Enabled {
		bus = cluster.New(a.rdb, cfg.Redis.KeyPrefix, node, log.With().Str("component", "cluster").Logger(),
			cluster.Options{ConfirmTimeout: cfg.Cluster.ConfirmTimeout, Peers: a.peers})
		deps.Remote = bus
	}
	a.handler = handlers.New(hcfg, deps)
	h := a.handler
	// Where the offline table stands now: once a process this one takes over
	// from is done, rows past it are read again for connections here.
	mctx, mcancel := context.WithTimeout(ctx, cfg.Offline.QueryTimeout)
	if err := h.MarkStart(mctx); err != nil {
		log.Warn().Err(err).Msg("the offline table's last row id could not be read at start")
	}
	mcancel()
	if bus != nil {
		a.rejoinTo.Store(h)
	}
	if bus != nil {
		bctx, cancel := context.WithCancel(context.Background())
		a.stopBus = cancel
		octx, ocancel := context.WithTimeout(bctx, 5*time.Second)
		if err := bus.Open(octx); err != nil {
			log.Warn().Err(err).Msg("Redis unreachable at start: this node's inbox is made once Redis answers")
		}
		ocancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.peers.Run(bctx, func() []string {
					bs := table.Bindings()
					out := make([]string, 0, len(bs))
					for _, b := range bs {
						out = append(out, b.Account)
					}
					return out
				})
			}()
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.TrackRowMarks(bctx)
			}()
			bus.Run(bctx, h.Receive)
			wg.Wait()
		}()
		a.stopBus = func() {
			cancel()
			select { // Run settles what it sent; a hung Redis call must not hold the shutdown
			case <-done:
			case <-time.After(3 * time.Second):
			}
		}
	}

	scfg, err := a.tlsConfig()
	if err != nil {
		return nil, err
	}
	a.probes = a.newProbes()
	trusted, err := config.Networks("server.trusted_proxies", a.cfg.Server.TrustedProxies)
	if err != nil {
		return nil, err
	}
	a.srv = server.New(server.Config{
		TLSAddr:             scfg.TLSAddr,
		TLSConfig:           scfg.TLSConfig,
		Addr:                cfg.Server.Addr,
		IdleTimeout:         cfg.Server.IdleTimeout,
		MaxFrameBytes:       cfg.Server.MaxFrameBytes,
		Pollers:             cfg.Server.Pollers,
		ReadBufferBytes:     cfg.Server.ReadBufferBytes,
		MaxWriteBufferBytes: cfg.Server.MaxWriteBufferBytes,
		HandlerPoolSize:     cfg.Server.HandlerPoolSize,
		MaxConnections:      cfg.Server.MaxConnections,
		ConnectionsPerIP:    cfg.Limits.ConnectionsPerIP,
		AllowedOrigins:      cfg.Limits.AllowedOrigins,
		TrustedProxies:      trusted,
		ProxyProtocol:       cfg.Server.ProxyProtocol,
		ReusePort:           cfg.Server.ReusePort,
		Pages:               http.FileServer(http.FS(a.assets.Web)),
		Probes:              a.probes,
	}, table, server.Hooks{OnFrame: h.Handle, OnClose: h.Closed}, log.With().Str("component", "server").Logger())
	if err := a.srv.Start(); err != nil {
		return nil, err
	}
	if err := a.startAPI(); err != nil {
		return nil, err
	}
	a.logStart(node)
	return a, nil
}

// tlsConfig loads the certificate when TLS is configured, for the wss listener
// (and the side API).
func (a *App) tlsConfig() (server.Config, error) {
	var sc server.Config
	if a.cfg.TLS.Addr == "" && !a.cfg.TLS.API {
		return sc, nil
	}
	st, err := certs.Load(a.cfg.TLS.CertFile, a.cfg.TLS.KeyFile)
	if err != nil {
		return sc, err
	}
	a.certs = st
	v, err := certs.Version(a.cfg.TLS.MinVersion)
	if err != nil {
		return sc, err
	}
	if a.cfg.TLS.Addr != "" {
		sc.TLSAddr, sc.TLSConfig = a.cfg.TLS.Addr, st.NBIOConfig(v)
	}
	return sc, nil
}

// ReloadCerts reads the certificate files again (SIGHUP, or a change seen by
// the poll); on error the old certificate stays and the log says why.
func (a *App) ReloadCerts() {
	if a.certs == nil {
		return
	}
	if err := a.certs.Reload(); err != nil {
		a.log.Error().Err(err).Msg("TLS certificate not reloaded; the previous one stays in use")
		return
	}
	a.log.Info().Str("cert_file", a.cfg.TLS.CertFile).Msg("TLS certificate reloaded; new handshakes use it")
}

// openSpool gives the MySQL pool its disk spool (see offline/spool.go). Rows a
// previous run left there are moved to MySQL first.
func (a *App) openSpool(ctx context.Context) error {
	if a.cfg.MySQL.DSN == "" || a.cfg.Offline.SpoolPath == "" {
		return nil
	}
	if dir := filepath.Dir(a.cfg.Offline.SpoolPath); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	sp, err := offline.Open(ctx, offline.SQLite, a.cfg.Offline.SpoolPath, a.cfg.Offline.Table+"_spool")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := sp.Migrate(ctx, a.assets.Migrations, map[string]string{"group_table": a.cfg.Groups.Table}); err != nil {
		_ = sp.Close()
		return fmt.Errorf("spool: %w", err)
	}
	held, err := sp.Count(ctx)
	if err != nil {
		_ = sp.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if held > 0 {
		a.log.Warn().Int("rows", held).Str("path", a.cfg.Offline.SpoolPath).Msg("spool holds messages from a previous run; moving them to MySQL")
	}
	a.spool, a.spoolHeld = sp, held
	return nil
}

// startAPI starts the side API when a secret is configured.
func (a *App) startAPI() error {
	alog := a.log.With().Str("component", "api").Logger()
	if a.cfg.API.Secret == "" {
		alog.Warn().Msg("side API not started: api.secret (CHAT_API_SECRET) is empty")
		return nil
	}
	allow, err := config.Networks("api.metrics_allow", a.cfg.API.MetricsAllow)
	if err != nil {
		return err
	}
	acfg := api.Config{Addr: a.cfg.API.Addr, Secret: a.cfg.API.Secret, MetricsAllow: allow, ReusePort: a.cfg.Server.ReusePort}
	if a.cfg.TLS.API {
		v, _ := certs.Version(a.cfg.TLS.MinVersion)
		acfg.TLS = a.certs.StdConfig(v)
	}
	a.api = api.New(acfg, api.Deps{
		Chat: a.handler, Unread: a.store, Reads: a.handler, Members: a.groups, Probes: a.probes,
		Metrics: promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{}), Errors: a.metrics, Log: alog,
		Successor: &handoverSide{a: a},
	})
	if err := a.api.Start(); err != nil {
		return err
	}
	alog.Info().Str("addr", a.api.Addr()).Msg("side API listening")
	return nil
}

// openStoreWaiting opens and migrates the offline store. A MySQL that does not
// answer yet (a node restarted during an outage) is waited for, with the log
// saying so at every attempt, instead of ending the process: the node starts
// listening once MySQL answers, and SIGTERM still stops it meanwhile. What
// MySQL itself refuses (access denied, unknown database) and configuration
// errors end the start at once.
func (a *App) openStoreWaiting(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.openStore(ctx)
		if err == nil || a.cfg.MySQL.DSN == "" || !unreachable(err) {
			return err
		}
		if a.store != nil {
			_ = a.store.Close()
			a.store = nil
		}
		a.log.Error().Err(err).Int("attempt", attempt).Dur("retry_in", backoff).
			Msg("MySQL unreachable at start; waiting for it before listening")
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped while waiting for MySQL: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// connectTimeout bounds one attempt to reach MySQL at start (one that accepts
// connections and answers nothing). The migrations that follow have no
// deadline: converting a big legacy table may take minutes.
const connectTimeout = 10 * time.Second

// unreachable tells a database that did not answer (worth waiting for) from
// one that answered with an error (access denied, unknown database, bad SQL)
// or a configuration error.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}

func (a *App) openStore(ctx context.Context) error {
	var err error
	if a.cfg.MySQL.DSN != "" {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		a.store, err = offline.Open(cctx, offline.MySQL, a.cfg.MySQL.DSN, a.cfg.Offline.Table)
		cancel()
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
	if err := a.store.Migrate(ctx, a.assets.Migrations, map[string]string{"group_table": a.cfg.Groups.Table}); err != nil {
		return err
	}
	return nil
}

// maxTrackedConversations bounds the conversations the history writer
// remembers between two retention passes (about 100 bytes each); one written
// while the set is full is trimmed after its next message.
const maxTrackedConversations = 200_000

// openHistory creates the history table when needed and starts its writer
// and, with history.max_age or history.max_per_conversation, its retention.
func (a *App) openHistory(ctx context.Context) (*history.Store, error) {
	hs, err := history.NewStore(a.store.DB(), history.Dialect(a.store.Dialect()), a.cfg.History.Table)
	if err != nil {
		return nil, err
	}
	files, err := fs.Sub(a.assets.Migrations, "history")
	if err != nil {
		return nil, fmt.Errorf("history migrations: %w", err)
	}
	if err := hs.Migrate(ctx, files); err != nil {
		return nil, err
	}
	hlog := a.log.With().Str("component", "history").Logger()
	hc := a.cfg.History
	wc := history.WriterConfig{BatchSize: hc.BatchSize, QueueLimit: hc.QueueLimit}
	if hc.MaxPerConversation > 0 {
		wc.TrackConversations = maxTrackedConversations
	}
	a.history = history.NewWriter(hs, wc, hlog)
	if hc.MaxAge > 0 || hc.MaxPerConversation > 0 {
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		r := history.Retention{MaxAge: hc.MaxAge, MaxPerConv: hc.MaxPerConversation, Interval: hc.RetentionInterval}
		go func() {
			defer close(done)
			hs.RunRetention(rctx, r, a.history.Touched, time.Now, hlog)
		}()
		a.stopKeep = func() {
			cancel()
			select { // a DELETE under way ends with its context; a hung one must not hold the shutdown
			case <-done:
			case <-time.After(3 * time.Second):
			}
		}
	}
	return hs, nil
}

// openPresence connects the account map. Redis being unreachable does not stop
// the server: local delivery needs no Redis, and the node's entries are written
// (rebuilt from the table) once Redis answers.
func (a *App) openPresence(node string, table *hub.Table) error {
	plog := a.log.With().Str("component", "presence").Logger()
	if a.cfg.Redis.Addr == "" {
		a.presence = presence.NewLocal(node)
		return nil
	}
	if a.rdb == nil {
		a.rdb = newRedisClient(a.cfg.Redis)
	}
	opts := []presence.RedisOption{presence.WithLatency(a.metrics.Redis)}
	if a.cfg.Cluster.Enabled {
		// Messages to accounts connected here find their other nodes without
		// a Redis round trip (cluster.Peers), kept by the nodes' own changes.
		a.peers = cluster.NewPeers(a.rdb, a.cfg.Redis.KeyPrefix, node,
			a.log.With().Str("component", "cluster").Logger(), table.Online)
		opts = append(opts, presence.WithChanges(a.peers), presence.WithRejoin(a.rejoined))
	}
	p := presence.NewRedis(a.rdb, a.cfg.Redis.KeyPrefix, node, plog, func() []presence.Binding {
		bs := table.Bindings()
		out := make([]presence.Binding, len(bs))
		for i, b := range bs {
			out[i] = presence.Binding{Account: b.Account, Conn: b.Conn}
		}
		return out
	}, opts...)
	a.presence = p
	// A start is a rebuild from an empty table: clear what a previous run of
	// this node left, set the liveness key. On failure the map is left stale
	// and rebuilt by the writer once Redis answers.
	if err := p.Rebuild(); err != nil {
		plog.Error().Err(err).Str("redis_addr", a.cfg.Redis.Addr).
			Msg("Redis unreachable at start: serving with local delivery; the account map is written when Redis is back")
	}
	return nil
}

// logStart says what the server is using, without secrets.
func (a *App) logStart(node string) {
	ev := a.log.Info().Str("addr", a.srv.Addr()).Str("node", node).
		Str("idle_timeout", a.cfg.Server.IdleTimeout.String()).Int("max_frame_bytes", a.cfg.Server.MaxFrameBytes)
	if a.cfg.MySQL.DSN != "" {
		if m, err := mysql.ParseDSN(a.cfg.MySQL.DSN); err == nil {
			ev = ev.Str("store", "mysql").Str("mysql_addr", m.Addr).Str("mysql_db", m.DBName).Str("mysql_user", m.User)
		}
	} else {
		ev = ev.Str("store", "embedded").Str("path", a.cfg.Embed.Path)
	}
	ev = ev.Bool("cluster", a.cfg.Cluster.Enabled).Bool("reuse_port", a.cfg.Server.ReusePort)
	if a.cfg.Redis.Addr != "" {
		ev = ev.Str("presence", "redis").Str("redis_addr", a.cfg.Redis.Addr).Str("key_prefix", a.cfg.Redis.KeyPrefix)
		if a.cfg.Redis.SentinelMaster != "" {
			ev = ev.Str("sentinel_master", a.cfg.Redis.SentinelMaster)
		}
	} else {
		ev = ev.Str("presence", "in-process")
	}
	if a.srv.TLSAddr() != "" {
		ev = ev.Str("tls_addr", a.srv.TLSAddr()).Str("tls_min_version", a.cfg.TLS.MinVersion)
	}
	if a.cfg.Compat != "" {
		ev = ev.Str("compat", a.cfg.Compat).Strs("compat_set", a.cfg.CompatSet).Strs("compat_kept", a.cfg.CompatKept)
	}
	ev.Str("table", a.cfg.Offline.Table).Msg("chat server listening")
}

// Addr is the WebSocket listen address.
func (a *App) Addr() string { return a.srv.Addr() }

// TLSAddr is the wss listen address, "" without TLS.
func (a *App) TLSAddr() string { return a.srv.TLSAddr() }

// APIAddr is the side API's listen address, "" when it is off (no secret).
func (a *App) APIAddr() string {
	if a.api == nil {
		return ""
	}
	return a.api.Addr()
}

// Close shuts down in reverse order: connections first (1001), then the offline
// writer is flushed, then the account map, then the databases. Each stage has
// its own share of server.shutdown_timeout (shutdown.go).
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.probes != nil {
		a.probes.Drain() // both ports answer /readyz 503 from the first moment
	}
	if a.stopBus != nil {
		a.stopBus()
	}
	plan := planShutdown(time.Now(), shutdownBudget(ctx, a.cfg.Server.ShutdownTimeout))
	if a.api != nil {
		errs = append(errs, a.stage(ctx, "side API", plan.api, a.api.Shutdown))
	}
	if a.srv != nil {
		errs = append(errs, a.stage(ctx, "connections", plan.connections, a.srv.Shutdown))
	}
	if a.afterConnections != nil {
		a.afterConnections()
	}
	if a.writer != nil {
		if err := a.stage(ctx, "offline writer", plan.writer, a.writer.Close); err != nil {
			a.log.Error().Err(err).Msg("offline messages lost at shutdown")
			errs = append(errs, err)
		}
	}
	if a.stopKeep != nil {
		a.stopKeep()
	}
	if a.stopNotify != nil {
		a.stopNotify()
	}
	if a.history != nil {
		if err := a.stage(ctx, "history writer", plan.writer, a.history.Close); err != nil {
			a.log.Error().Err(err).Msg("history rows lost at shutdown")
			errs = append(errs, err)
		}
	}
	if err := a.stage(ctx, "read state", plan.writer, a.closeReads); err != nil {
		a.log.Error().Err(err).Msg("read cursors or conversation list rows lost at shutdown")
		errs = append(errs, err)
	}
	if a.presence != nil {
		errs = append(errs, a.stage(ctx, "account map", plan.end, a.presence.Close))
	}
	errs = append(errs, a.stage(ctx, "databases", plan.databases(time.Now()), a.closeStoresUntil))
	err := errors.Join(errs...)
	if err == nil {
		a.log.Info().Msg("stopped")
	}
	return err
}

func (a *App) closeStores() {
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
	if a.spool != nil {
		_ = a.spool.Close()
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

// rejoined: the node's account map entries are about to be written again
// after Redis was out of reach since lastOK (handlers.Rejoin).
func (a *App) rejoined(lastOK time.Time) {
	if h := a.rejoinTo.Load(); h != nil {
		h.Rejoin(lastOK)
	}
}
