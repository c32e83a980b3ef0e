// Package health answers the probes a load balancer or an orchestrator sends:
// /healthz (the process serves HTTP) and /readyz (its dependencies answer and
// it is not shutting down). The same Probes serve the WebSocket port and the
// side API, so both ports answer alike.
//
// The probes need no secret, so they say nothing a stranger could use: a
// failing check is named in the answer and its error (which may hold an
// address or a user name) goes to the log, never to the client. Nor can a
// stranger make the server hammer its database: the checks run at most once
// per Config.Reuse, whatever the request rate.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Check is one dependency /readyz pings. Ping must return when ctx ends.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
	// Advisory: a failure is named in the answer ("fail") but leaves the
	// node ready. For what an operator should see, and a load balancer must
	// not act on (taking every node out would not help).
	Advisory bool
}

// Config says what /readyz checks and how often. Zero durations take the
// defaults.
type Config struct {
	Checks  []Check
	Timeout time.Duration // a round of checks (they run at once); default DefaultTimeout
	Reuse   time.Duration // a round's answer is given again this long; default DefaultReuse
}

// The defaults of Config's zero fields.
const (
	DefaultTimeout = 2 * time.Second
	DefaultReuse   = time.Second
)

// Probes serves /healthz and /readyz. Safe for concurrent use.
type Probes struct {
	cfg Config
	log zerolog.Logger

	draining atomic.Bool

	mu      sync.Mutex
	last    round         // guarded by mu
	running chan struct{} // guarded by mu: non-nil while a round runs, closed when it ends

	// failing is each check's state at the last round, to log only changes.
	// Rounds run one at a time, each after the previous one's end under mu.
	failing map[string]bool
}

// round is the outcome of one run of the checks; its map is never changed
// once made.
type round struct {
	at     time.Time
	ok     bool
	checks map[string]string // name -> "ok" or "fail"
}

// New makes the probes.
func New(cfg Config, log zerolog.Logger) *Probes {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Reuse <= 0 {
		cfg.Reuse = DefaultReuse
	}
	return &Probes{cfg: cfg, log: log, failing: make(map[string]bool)}
}

// Drain makes /readyz answer 503 from now on, so that load balancers stop
// sending new clients while the server shuts down. Calling it again does
// nothing.
func (p *Probes) Drain() {
	if !p.draining.Swap(true) {
		p.log.Info().Msg("draining: /readyz answers 503")
	}
}

// Draining reports whether Drain was called.
func (p *Probes) Draining() bool { return p.draining.Load() }

// ServeHealth answers 200 {"status":"ok"}: the process is up and serving HTTP.
func (p *Probes) ServeHealth(w http.ResponseWriter, _ *http.Request) {
	write(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ServeReady answers 200 {"ready":true,"draining":false,"checks":{"sql":"ok"}}
// when every check passes, and 503 with ready false when one fails (named
// "fail") or the server is draining. An advisory check's failure is named
// and leaves the answer 200, ready.
func (p *Probes) ServeReady(w http.ResponseWriter, r *http.Request) {
	if p.Draining() {
		write(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "draining": true, "checks": map[string]string{}})
		return
	}
	res := p.status(r.Context())
	code := http.StatusOK
	if !res.ok {
		code = http.StatusServiceUnavailable
	}
	write(w, code, map[string]any{"ready": res.ok, "draining": false, "checks": res.checks})
}

// status is the latest round if it is recent enough; otherwise it runs one.
// While a round runs, callers get the previous round at once rather than wait
// (only the very first callers wait), so probes never pile up behind a
// database that hangs.
func (p *Probes) status(ctx context.Context) round {
	p.mu.Lock()
	if !p.last.at.IsZero() && time.Since(p.last.at) < p.cfg.Reuse {
		defer p.mu.Unlock()
		return p.last
	}
	if ch := p.running; ch != nil {
		if !p.last.at.IsZero() {
			defer p.mu.Unlock()
			return p.last
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return round{checks: map[string]string{}}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.last
	}
	ch := make(chan struct{})
	p.running = ch
	p.mu.Unlock()

	res := p.run()

	p.mu.Lock()
	p.last, p.running = res, nil
	p.mu.Unlock()
	close(ch)
	return res
}

// run pings every check at once, each bounded by the timeout, and logs the
// checks that started or stopped failing. The caller's context is not used: a
// prober that hangs up must not make the round fail for the others.
func (p *Probes) run() round {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	errs := make([]error, len(p.cfg.Checks))
	var wg sync.WaitGroup
	for i, c := range p.cfg.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Ping(ctx)
		}()
	}
	wg.Wait()
	res := round{at: time.Now(), ok: true, checks: make(map[string]string, len(p.cfg.Checks))}
	for i, c := range p.cfg.Checks {
		failed := errs[i] != nil
		res.checks[c.Name] = "ok"
		if failed {
			res.checks[c.Name] = "fail"
			res.ok = res.ok && c.Advisory
		}
		switch {
		case failed && !p.failing[c.Name] && c.Advisory:
			p.log.Warn().Err(errs[i]).Str("check", c.Name).Msg("an advisory readiness check fails (still ready)")
		case failed && !p.failing[c.Name]:
			p.log.Warn().Err(errs[i]).Str("check", c.Name).Msg("not ready: a readiness check fails")
		case !failed && p.failing[c.Name]:
			p.log.Info().Str("check", c.Name).Msg("readiness check passes again")
		}
		p.failing[c.Name] = failed
	}
	return res
}

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
