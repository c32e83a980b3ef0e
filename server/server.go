// Package server is the transport: the nbio engine in non-blocking mode, the
// WebSocket upgrade on / and /ws, heartbeats and idle timeouts, the write path
// and graceful shutdown. It puts each connection in the hub's table and takes
// it off when it closes, and knows nothing of the chat protocol: frames go to
// the OnFrame hook and closes, once removed, to OnClose.
package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/rs/zerolog"

	"chatserver/health"
	"chatserver/hub"
)

// Config is the transport's configuration. Zero fields take the defaults.
type Config struct {
	Addr                string        // listen address; default DefaultAddr
	IdleTimeout         time.Duration // close a connection silent this long; default DefaultIdleTimeout
	MaxFrameBytes       int           // larger messages are refused with close 1009; default DefaultMaxFrameBytes
	Pollers             int           // nbio event loops; default the number of CPUs
	ReadBufferBytes     int           // per event loop, not per connection; default DefaultReadBufferBytes
	MaxWriteBufferBytes int           // unsent bytes per connection before it is closed; default DefaultMaxWriteBufferBytes
	HandlerPoolSize     int           // goroutines running frame handlers; default 1024 per CPU
	MaxConnections      int           // default DefaultMaxConnections
	ConnectionsPerIP    int           // WebSocket connections from one address at once; 0 = no limit
	AllowedOrigins      []string      // browser Origin values allowed; empty = any
	// TrustedProxies are the peers whose X-Forwarded-For / X-Real-IP (and
	// PROXY header, with ProxyProtocol) say who the client is, for the per-IP
	// limit and the logs (see realip.go); empty: the peer is the client,
	// whatever it sends.
	TrustedProxies []netip.Prefix
	// ProxyProtocol: connections from TrustedProxies start with a PROXY
	// header (v1 or v2), on ws:// and wss:// alike, and one from any other
	// peer that sends such a header is closed (see proxygate.go).
	ProxyProtocol bool
	// ReusePort opens the listeners with SO_REUSEPORT, so that the next
	// version of the server can start on the same ports beside this one and
	// take over (Handover).
	ReusePort bool
	// TLSAddr, with TLSConfig, adds a wss:// listener served by the same event
	// loops (nbio's non-blocking TLS); empty: none.
	TLSAddr   string
	TLSConfig *tls.Config
	// Pages serves plain HTTP requests (the chat page and its files); nil: a
	// short text page on / and 404 elsewhere. WebSocket upgrades on / and /ws
	// never reach it.
	Pages http.Handler
	// Probes answer /healthz and /readyz on this port (and on wss), so that a
	// load balancer probes the port it balances: pass the side API's, for the
	// same readiness. nil: ready with nothing checked. Shutdown drains them.
	Probes *health.Probes
}

// The defaults of Config's zero fields (config.Default uses them too).
const (
	DefaultAddr                = ":9052"
	DefaultIdleTimeout         = 60 * time.Second
	DefaultMaxFrameBytes       = 64 << 10
	DefaultReadBufferBytes     = 16 << 10
	DefaultMaxWriteBufferBytes = 1 << 20
	DefaultMaxConnections      = 1_000_000
)

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.Pollers <= 0 {
		c.Pollers = runtime.NumCPU()
	}
	if c.ReadBufferBytes <= 0 {
		c.ReadBufferBytes = DefaultReadBufferBytes
	}
	if c.MaxWriteBufferBytes <= 0 {
		c.MaxWriteBufferBytes = DefaultMaxWriteBufferBytes
	}
	if c.HandlerPoolSize <= 0 {
		c.HandlerPoolSize = runtime.NumCPU() * 1024
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	return c
}

// Hooks are the protocol side of the server, called per connection in order.
// The server adds every upgraded connection to the table and removes it when
// it closes (see hub's Table.Add); OnClose runs once, after the removal, with
// what the removal did.
type Hooks struct {
	OnFrame func(c *hub.Conn, text bool, data []byte)
	OnClose func(c *hub.Conn, r hub.Removal)
}

// Server accepts WebSocket connections and hands their frames to the hooks.
type Server struct {
	cfg      Config
	probes   *health.Probes
	table    *hub.Table
	hooks    Hooks
	log      zerolog.Logger
	engine   *nbhttp.Engine
	upgrader *websocket.Upgrader

	closing  atomic.Bool
	handling atomic.Int64 // frame handlers running (Shutdown waits for them)

	started   time.Time
	stopSweep chan struct{}
	perIP     ipCounter

	sockets  listeners  // see listen.go
	retiring retiring   // connections closed by a handover, until their sockets close (handover.go)
	gate     *proxyGate // nil unless cfg.ProxyProtocol
	running  atomic.Bool

	stopOnce sync.Once
	stopErr  error
}

// New builds a server; Start listens.
func New(cfg Config, table *hub.Table, hooks Hooks, log zerolog.Logger) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, table: table, hooks: hooks, log: log, started: time.Now(), stopSweep: make(chan struct{})}
	s.sockets.share = cfg.ReusePort

	u := websocket.NewUpgrader()
	u.KeepaliveTime = 0 // idle connections are swept by heartbeat.go, not a timer each
	u.MessageLengthLimit = cfg.MaxFrameBytes
	u.CheckOrigin = s.checkOrigin
	u.OnMessage(s.onMessage)
	u.OnClose(s.onClose)
	u.SetPingHandler(s.onPing)
	u.SetPongHandler(s.onPong)
	s.upgrader = u

	s.probes = cfg.Probes
	if s.probes == nil {
		s.probes = health.New(health.Config{}, log)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serveHTTP)
	mux.HandleFunc("GET /healthz", s.probes.ServeHealth)
	mux.HandleFunc("GET /readyz", s.probes.ServeReady)
	var tlsAddrs []string
	if cfg.TLSAddr != "" {
		tlsAddrs = []string{cfg.TLSAddr}
	}
	s.engine = nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{cfg.Addr},
		AddrsTLS:                tlsAddrs,
		TLSConfig:               cfg.TLSConfig,
		TLSAllocator:            newTLSBuffers(), // see tlsalloc.go
		Handler:                 mux,
		Listen:                  s.sockets.take, // see listen.go
		IOMod:                   nbhttp.IOModNonBlocking,
		NPoller:                 cfg.Pollers,
		ReadBufferSize:          cfg.ReadBufferBytes,
		MaxWriteBufferSize:      cfg.MaxWriteBufferBytes,
		MessageHandlerPoolSize:  cfg.HandlerPoolSize,
		MaxLoad:                 cfg.MaxConnections,
		ReadLimit:               readLimit(cfg),      // see httplimits.go
		MaxHTTPBodySize:         maxRequestBodyBytes, // idem
		KeepaliveTime:           cfg.IdleTimeout,
		ReleaseWebsocketPayload: true,
		// Larger than any message we accept or send, so that every message is
		// one frame (see transport.WriteFrame).
		MaxWebsocketFramePayloadSize: max(cfg.MaxFrameBytes, 1<<20),
	})
	raceOpen := raceSync(s.engine)
	if cfg.ProxyProtocol {
		s.gate = newProxyGate(cfg.TrustedProxies, log)
		s.engine.Engine.OnData(s.gate.onData) // every read goes through the gate first
		s.engine.OnClose(s.gate.onClose)
	}
	if raceOpen != nil || s.gate != nil {
		s.engine.OnOpen(func(c net.Conn) {
			if raceOpen != nil {
				raceOpen(c)
			}
			if s.gate != nil {
				s.gate.onOpen(c)
			}
		})
	}
	return s
}

// Start listens and serves in the background. An address that cannot be
// listened on is an error naming it, and nothing is left running.
func (s *Server) Start() error {
	addrs := []namedAddr{{"server.addr", s.cfg.Addr}}
	if s.cfg.TLSAddr != "" {
		addrs = append(addrs, namedAddr{"tls.addr", s.cfg.TLSAddr})
	}
	bound, err := s.sockets.openAll("tcp", addrs)
	if err != nil {
		return err
	}
	// The engine asks its Listen hook for these, and reports them as Addr().
	s.engine.AddrConfigs[0].Addr = bound[0]
	if s.cfg.TLSAddr != "" {
		s.engine.AddrConfigsTLS[0].Addr = bound[1]
	}
	if err := s.engine.Start(); err != nil {
		s.sockets.closeAll()
		return fmt.Errorf("server: start: %w", err)
	}
	s.running.Store(true)
	go s.sweep(s.stopSweep)
	return nil
}

// Addr is the address the server listens on (with the real port when the
// configured one was 0).
func (s *Server) Addr() string { return s.engine.Addrs[0] }

// Connections is how many connections are open (upgraded) now.
func (s *Server) Connections() int { return s.table.Len() }

// TLSAddr is the wss:// listener's address, or "".
func (s *Server) TLSAddr() string {
	if len(s.engine.AddrsTLS) == 0 {
		return ""
	}
	return s.engine.AddrsTLS[0]
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if refuseBody(w, r) {
		return
	}
	wsPath := r.URL.Path == "/" || r.URL.Path == "/ws"
	if !wsPath || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.servePage(w, r, wsPath)
		return
	}
	if s.closing.Load() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	peer := r.RemoteAddr
	from := peer // who sent the request: the peer, or the client its PROXY header named
	var nc *nbio.Conn
	if s.gate != nil {
		if nc = connOf(w); nc != nil {
			if client, ok := s.gate.client(nc); ok {
				from = client
			}
		}
	}
	// From here on the request's address is the client's (the Origin check
	// logs it); the connection keeps it for its life.
	r.RemoteAddr = clientOf(from, r.Header, s.cfg.TrustedProxies)
	ip := hostOf(r.RemoteAddr)
	if !s.perIP.acquire(ip, s.cfg.ConnectionsPerIP) {
		s.log.Debug().Str("remote", r.RemoteAddr).Str("peer", peer).Msg("too many connections from this address")
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.perIP.release(ip)
		s.log.Debug().Err(err).Str("remote", r.RemoteAddr).Str("peer", peer).Msg("upgrade refused")
		return
	}
	// Still in the connection's own job: no frame of it is handled before
	// this, and its close hook runs after it.
	if !s.open(ws, r.RemoteAddr, r.RemoteAddr != peer, r.URL.Query().Get("token")) {
		s.perIP.release(ip)
	}
	if nc != nil {
		s.gate.forget(nc) // the connection holds its client now
	}
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request, wsPath bool) {
	switch {
	case s.cfg.Pages != nil:
		s.cfg.Pages.ServeHTTP(w, r)
	case wsPath:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("chat server: connect a WebSocket client to ws://" + r.Host + "/ (or /ws)\n"))
	default:
		http.NotFound(w, r)
	}
}

// open puts an upgraded connection in the table, held by the client's address
// (relayed: a trusted proxy named it), unless the server is shutting down.
// onClose releases the per-IP count by the same address.
func (s *Server) open(ws *websocket.Conn, client string, relayed bool, token string) bool {
	if s.closing.Load() {
		_ = ws.WriteClose(int(hub.CloseGoingAway), hub.CloseGoingAway.Reason())
		_ = ws.Close()
		return false
	}
	releaseHandshake(ws)
	var t hub.Transport = transport{ws}
	if relayed {
		t = &relayedTransport{transport: transport{ws}, client: client}
	}
	c := s.table.NewConn(t)
	c.SetURLToken(token)
	c.Touch(s.now())
	ws.SetSession(c)
	s.table.Add(c)
	return true
}

func (s *Server) onMessage(ws *websocket.Conn, mt websocket.MessageType, data []byte) {
	c, _ := ws.Session().(*hub.Conn)
	if c == nil {
		return
	}
	s.handling.Add(1)
	defer s.handling.Add(-1)
	c.Touch(s.now())
	s.hooks.OnFrame(c, mt == websocket.TextMessage, data)
}

func (s *Server) onClose(ws *websocket.Conn, _ error) {
	if c, _ := ws.Session().(*hub.Conn); c != nil {
		s.perIP.release(hostOf(c.RemoteAddr()))
		r := s.table.Remove(c)
		if r.Again { // retired by a handover, which told the hooks
			s.retiring.open.Add(-1)
			return
		}
		s.hooks.OnClose(c, r)
	}
}

// checkOrigin lets browsers in only from the allowed origins (all when none are
// configured). Clients that send no Origin (apps, mini-programs, servers) are
// not browsers and are let in.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(s.cfg.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	s.log.Debug().Str("origin", origin).Str("remote", r.RemoteAddr).Msg("origin not allowed")
	return false
}

// Shutdown stops taking connections, closes every connection with 1001 (going
// away) so that clients reconnect, waits for frame handlers still running, and
// stops the engine, all within ctx. Calling it again returns the first result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.probes.Drain()
	if !s.running.Load() {
		// Never started, or Start failed: nbio's engine must not be stopped
		// (stopping one that did not start panics or hangs).
		s.sockets.closeAll()
		return nil
	}
	close(s.stopSweep)
	n := 0
	s.table.Each(func(c *hub.Conn) {
		c.Close(hub.CloseGoingAway)
		n++
	})
	for s.handling.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("server: shutdown with %d handlers running: %w", s.handling.Load(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := s.engine.Shutdown(ctx); err != nil {
		return fmt.Errorf("server: engine shutdown: %w", err)
	}
	s.log.Info().Int("closed", n).Msg("transport stopped")
	return nil
}
