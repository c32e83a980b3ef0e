// Package api is the HTTP side API for the PHP application: push to an account,
// to a group, to everybody; ask who is online and how much is unread; manage
// group members; disconnect an account; health, readiness and Prometheus
// metrics. It listens on its own address, speaks JSON, and every call needs
// "Authorization: Bearer <secret>", but the probes (/healthz, /readyz: no
// secret, nothing secret in the answer) and /metrics (the secret, or a client
// address in Config.MetricsAllow).
package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"chatserver/groups"
	"chatserver/handlers"
	"chatserver/health"
	"chatserver/internal/reuseport"
)

// Chat is what the API needs of the message path (handlers.Handler).
type Chat interface {
	Push(from, to, content string) (stored bool, err error)
	PushGroup(ctx context.Context, from, group, content string, memberOnly bool) (handlers.GroupResult, error)
	Announce(from, content string) (int, error)
	Online(ctx context.Context, account string) (bool, error)
	Disconnect(account, reason string) (handlers.Disconnected, error)
	History(ctx context.Context, r handlers.HistoryRequest) (handlers.HistoryPage, error)
}

// Unreader counts unsent offline rows per sender.
type Unreader interface {
	Unread(ctx context.Context, account string) (map[string]int, error)
}

// Members manages group membership (groups.Cache).
type Members interface {
	Get(ctx context.Context, group string) (*groups.Set, error)
	Add(ctx context.Context, group string, accounts []string) error
	Remove(ctx context.Context, group string, accounts []string) error
}

// Errors counts API errors by code (metrics.Metrics); may be nil.
type Errors interface{ Error(code string) }

// Config is the listener and its secret.
type Config struct {
	Addr   string
	Secret string
	TLS    *tls.Config // nil: plain HTTP
	// ReusePort listens with SO_REUSEPORT, so that the next version of the
	// server can listen beside this one (a handover).
	ReusePort bool
	// MetricsAllow lets clients from these networks read /metrics without the
	// secret (a Prometheus server that cannot send one); empty: the secret
	// only. The address is the TCP peer's: forwarding headers are not read.
	MetricsAllow []netip.Prefix
}

// Server is the side API.
type Server struct {
	cfg     Config
	chat    Chat
	unread  Unreader
	reads   ReadState // nil: read state off
	members Members
	errs    Errors
	log     zerolog.Logger
	srv     *http.Server
	ln      net.Listener

	successor Successor // nil: no handover routes (handover.go)

	stopOnce sync.Once
	stopErr  error
}

// Deps are the API's collaborators.
type Deps struct {
	Chat    Chat
	Unread  Unreader
	Reads   ReadState // unread counts and conversations from the read cursors (nil: 503)
	Members Members
	Probes  *health.Probes // /healthz and /readyz; nil: ready with nothing checked
	Metrics http.Handler   // Prometheus exposition
	Errors  Errors
	Log     zerolog.Logger
	// Successor takes over from an old process on the same port (a handover
	// on a single node, handover.go); nil: those routes are absent.
	Successor Successor
}

// maxBody bounds a request body (a member list of a full group fits); a call
// announcing more is refused from its header, one sending more is cut off.
const maxBody = 1 << 20

// maxHeaderBytes bounds a request's header (net/http's default is 1 MiB; our
// calls carry a bearer secret and little else).
const maxHeaderBytes = 16 << 10

// New builds the API; Start listens.
func New(cfg Config, d Deps) *Server {
	s := &Server{cfg: cfg, chat: d.Chat, unread: d.Unread, reads: d.Reads, members: d.Members, errs: d.Errors, log: d.Log, successor: d.Successor}
	mux := http.NewServeMux()
	s.handoverRoutes(mux)
	mux.HandleFunc("POST /api/push", s.push)
	mux.HandleFunc("POST /api/group/{id}/push", s.groupPush)
	mux.HandleFunc("POST /api/broadcast", s.broadcast)
	mux.HandleFunc("POST /api/disconnect", s.disconnect)
	mux.HandleFunc("GET /api/online", s.online)
	mux.HandleFunc("GET /api/unread", s.unreadAny)
	mux.HandleFunc("GET /api/conversations", s.conversations)
	mux.HandleFunc("GET /api/history", s.history)
	mux.HandleFunc("GET /api/group/{id}/members", s.listMembers)
	mux.HandleFunc("PUT /api/group/{id}/members", s.changeMembers(true))
	mux.HandleFunc("DELETE /api/group/{id}/members", s.changeMembers(false))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	// What a load balancer and a metrics scraper call goes around the secret;
	// everything else, an unknown path included, goes through it.
	probes := d.Probes
	if probes == nil {
		probes = health.New(health.Config{}, d.Log)
	}
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", probes.ServeHealth)
	open.HandleFunc("GET /readyz", probes.ServeReady)
	if d.Metrics != nil {
		open.Handle("GET /metrics", s.metricsGate(d.Metrics))
	}
	open.Handle("/", s.authenticate(mux))
	s.srv = &http.Server{
		Handler:           limitBody(open),
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return s
}

// Start listens and serves in the background.
func (s *Server) Start() error {
	ln, err := reuseport.Listen("tcp", s.cfg.Addr, s.cfg.ReusePort)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("side API stopped")
		}
	}()
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown closes the listener and finishes calls under way, until ctx ends.
// Calling it again (a handover closes the API first, then shuts down as
// usual) returns the first result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		if err := s.srv.Shutdown(ctx); err != nil {
			s.stopErr = fmt.Errorf("api: shutdown: %w", err)
		}
	})
	return s.stopErr
}

// limitBody refuses a call whose Content-Length passes maxBody with 413 before
// reading any of it, and caps what a handler can read of any other body.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": map[string]string{
				"code": "too_large", "message": fmt.Sprintf("request bodies are limited to %d bytes", maxBody)}})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// authenticate lets a call through only with the right bearer secret, compared
// in constant time.
func (s *Server) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.Secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chat"`)
			s.fail(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <api.secret>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// metricsGate lets /metrics through for a peer in MetricsAllow, and asks the
// others for the secret.
func (s *Server) metricsGate(next http.Handler) http.Handler {
	authed := s.authenticate(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.metricsAllowed(r.RemoteAddr) {
			next.ServeHTTP(w, r)
			return
		}
		authed.ServeHTTP(w, r)
	})
}

func (s *Server) metricsAllowed(remote string) bool {
	if len(s.cfg.MetricsAllow) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.cfg.MetricsAllow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// decode reads a JSON object body into v; it answers 400 itself and returns
// false on anything else.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body) // limited by limitBody
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var mb *http.MaxBytesError
		switch {
		case errors.As(err, &mb):
			s.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request bodies are limited to %d bytes", mb.Limit))
		case errors.As(err, &te) && te.Field != "":
			s.fail(w, http.StatusBadRequest, "bad_field", te.Field+" has the wrong type")
		default:
			s.fail(w, http.StatusBadRequest, "bad_json", "body must be a JSON object: "+err.Error())
		}
		return false
	}
	return true
}

// failErr answers with the protocol error's code, or 500 for anything else.
func (s *Server) failErr(w http.ResponseWriter, err error) {
	var e *handlers.Error
	if errors.As(err, &e) {
		s.fail(w, statusOf(e.Code), e.Code, e.Message)
		return
	}
	var tl *groups.TooLargeError
	if errors.As(err, &tl) {
		s.fail(w, http.StatusUnprocessableEntity, "too_large", tl.Error())
		return
	}
	s.log.Error().Err(err).Msg("side API call failed")
	s.fail(w, http.StatusInternalServerError, "internal", "internal error; it has been logged")
}

func statusOf(code string) int {
	switch code {
	case handlers.CodeNotFound:
		return http.StatusNotFound
	case handlers.CodeForbidden:
		return http.StatusForbidden
	case handlers.CodeBusy, handlers.CodeUnavailable:
		return http.StatusServiceUnavailable
	case handlers.CodeInternal:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	if s.errs != nil {
		s.errs.Error("api_" + code)
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
