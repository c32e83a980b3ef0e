// Package handover is the route between the two processes of a handover on
// a single node (README "Upgrades"). The old process reaches the new one
// through the new one's side API: once the old process has closed its own
// side API listener, api.addr leads to the new process only (both listen with
// SO_REUSEPORT), so the old one calls its own configured address. The new
// one reaches the old one at a loopback listener the old one opens for the
// handover and names to it (Start).
//
// Link implements handlers.Remote with the other process as the one other
// node: Locate and Where ask it which accounts it has, Send, Broadcast and
// Control queue envelopes that one goroutine posts in order, a batch at a
// time, so the other process handles them in the order they were sent. Once
// nothing listens there any more (the old process ended), the link locates
// nobody and answers every envelope NotTaken: the caller stores.
package handover

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"chatserver/cluster"
)

// Node is the name the new process goes by in the Remote's answers.
const Node = "successor"

// Paths of the new process's side API that the link calls (api package).
const (
	PathLocate    = "/api/handover/locate"
	PathEnvelopes = "/api/handover/envelopes"
	PathDone      = "/api/handover/done"
	PathStart     = "/api/handover/start"
)

// StartRequest is the body of PathStart: where the old process answers the
// handover calls for the new one.
type StartRequest struct {
	Addr string `json:"addr"`
}

// LocateRequest and LocateAnswer are the body and answer of PathLocate.
type LocateRequest struct {
	Accounts []string `json:"accounts"`
}

// LocateAnswer says, for each account asked, whether it is connected there.
type LocateAnswer struct {
	Here []bool `json:"here"`
}

// EnvelopesRequest is the body of PathEnvelopes: envelopes handled in order.
type EnvelopesRequest struct {
	Envelopes []cluster.Envelope `json:"envelopes"`
}

// EnvelopesAnswer has, per envelope, one outcome per recipient ("" for those
// that have none), as cluster.Outcome bytes.
type EnvelopesAnswer struct {
	Outcomes []string `json:"outcomes"`
}

const (
	batchMax   = 256       // envelopes per post
	batchBytes = 512 << 10 // about, per post (the side API takes 1 MiB bodies)
	queueMax   = 100_000   // envelopes waiting; past it Send fails (the caller stores)
	callWait   = 5 * time.Second
	locateWait = 2 * time.Second
)

// ErrFull: too many envelopes wait for the new process; the caller stores.
var ErrFull = errors.New("handover: too many messages wait for the new process")

// Link is the route to the new process. Run posts what Send queued.
type Link struct {
	base   string // "http://host:port" or https
	secret string
	client *http.Client
	log    zerolog.Logger

	mu    sync.Mutex
	queue []queued
	wake  chan struct{}
	there map[string]bool // accounts seen connected there (pushed there, or asked)
	gone  bool            // nothing listens there any more (the process ended)
	local func(account string) bool
}

type queued struct {
	env  cluster.Envelope
	done func([]cluster.Outcome) // nil: no outcome wanted
}

// New is a link to the handover calls at apiAddr (the new process's side
// API, at this process's own api.addr; or the old process's loopback
// listener; an unspecified host means loopback) with the bearer secret. With
// tlsConfig (tls.api), the calls are HTTPS. local reports whether an account
// is connected in this process.
func New(apiAddr, secret string, tlsConfig *tls.Config, local func(account string) bool, log zerolog.Logger) (*Link, error) {
	host, port, err := net.SplitHostPort(apiAddr)
	if err != nil {
		return nil, fmt.Errorf("handover: api.addr %q: %w", apiAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	if tlsConfig != nil {
		scheme = "https"
		tr.TLSClientConfig = tlsConfig
	}
	return &Link{
		base: scheme + "://" + net.JoinHostPort(host, port), secret: secret,
		client: &http.Client{Transport: tr, Timeout: callWait}, log: log,
		wake: make(chan struct{}, 1), there: map[string]bool{}, local: local,
	}, nil
}

// Ready reports whether a process answers the handover calls at the link's
// address (with this process's own side API closed, it is the new one).
func (l *Link) Ready(ctx context.Context) error {
	var ans LocateAnswer
	return l.call(ctx, PathLocate, LocateRequest{}, &ans)
}

// Locate routes without asking: an account not connected here goes to the
// other process (which pushes it to its connection there, or stores it: the
// copy with the storing duty); an account connected here goes there too only
// if it was seen there (another tab on the other process). Once nothing
// listens there any more, nowhere. The message path asks nothing over the
// network this way; LocateExact asks.
func (l *Link) Locate(_ context.Context, accounts []string) (map[string][]string, error) {
	out := make(map[string][]string, len(accounts))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return out, nil
	}
	for _, a := range accounts {
		if !l.local(a) || l.there[a] {
			out[a] = []string{Node}
		}
	}
	return out, nil
}

// LocateExact asks the other process which of accounts are connected there.
func (l *Link) LocateExact(ctx context.Context, accounts []string) (map[string][]string, error) {
	out := make(map[string][]string, len(accounts))
	if l.isGone() || len(accounts) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, locateWait)
	defer cancel()
	var ans LocateAnswer
	if err := l.call(ctx, PathLocate, LocateRequest{Accounts: accounts}, &ans); err != nil {
		if l.isGone() {
			return out, nil
		}
		return nil, err
	}
	if len(ans.Here) != len(accounts) {
		return nil, fmt.Errorf("handover: locate answered %d accounts for %d", len(ans.Here), len(accounts))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, a := range accounts {
		if ans.Here[i] {
			out[a] = []string{Node}
			l.there[a] = true
		}
	}
	return out, nil
}

// Where lists the nodes account is connected on besides this one (asked:
// a drain request goes only where the account is).
func (l *Link) Where(ctx context.Context, account string) ([]string, error) {
	m, err := l.LocateExact(ctx, []string{account})
	if err != nil {
		return nil, err
	}
	return m[account], nil
}

// Send queues env for the new process; done hears its outcomes (NotTaken for
// each when the new process could not be reached).
func (l *Link) Send(_ context.Context, _ string, env cluster.Envelope, done func([]cluster.Outcome)) error {
	return l.enqueue(env, done)
}

// Broadcast queues an announcement for the new process's connections.
func (l *Link) Broadcast(_ context.Context, env cluster.Envelope) error { return l.enqueue(env, nil) }

// Control queues an order (disconnect) for the new process.
func (l *Link) Control(_ context.Context, env cluster.Envelope) error { return l.enqueue(env, nil) }

func (l *Link) enqueue(env cluster.Envelope, done func([]cluster.Outcome)) error {
	l.mu.Lock()
	if l.gone {
		l.mu.Unlock()
		if done != nil {
			done(make([]cluster.Outcome, len(env.To)))
		}
		return nil
	}
	if len(l.queue) >= queueMax {
		l.mu.Unlock()
		return ErrFull
	}
	l.queue = append(l.queue, queued{env, done})
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run posts the queued envelopes in order until ctx ends, then answers
// NotTaken for what is left.
func (l *Link) Run(ctx context.Context) {
	for {
		batch := l.take()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				l.settle(l.take(), nil)
				return
			case <-l.wake:
			}
			continue
		}
		req := EnvelopesRequest{Envelopes: make([]cluster.Envelope, len(batch))}
		for i, q := range batch {
			req.Envelopes[i] = q.env
		}
		var ans EnvelopesAnswer
		err := l.call(context.WithoutCancel(ctx), PathEnvelopes, req, &ans)
		if err == nil && len(ans.Outcomes) != len(batch) {
			err = fmt.Errorf("handover: %d outcomes for %d envelopes", len(ans.Outcomes), len(batch))
		}
		if err != nil {
			if !l.isGone() {
				l.log.Error().Err(err).Int("envelopes", len(batch)).
					Msg("handover: the other process did not take these messages; stored here")
			}
			l.settle(batch, nil)
			continue
		}
		l.settle(batch, ans.Outcomes)
	}
}

func (l *Link) take() []queued {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, size := 0, 0
	for n < len(l.queue) && n < batchMax {
		e := l.queue[n].env
		size += 128 + len(e.Content) + len(e.From) + len(e.Group) + len(e.ID)
		for _, a := range e.To {
			size += len(a) + 8
		}
		if n > 0 && size > batchBytes {
			break
		}
		n++
	}
	out := l.queue[:n:n]
	l.queue = l.queue[n:]
	if len(l.queue) == 0 {
		l.queue = nil
	}
	return out
}

// settle tells each envelope's sender its outcomes; without an answer every
// copy is NotTaken.
func (l *Link) settle(batch []queued, outcomes []string) {
	for i, q := range batch {
		if q.done == nil {
			continue
		}
		out := make([]cluster.Outcome, len(q.env.To))
		if outcomes != nil {
			for j := 0; j < len(out) && j < len(outcomes[i]); j++ {
				out[j] = cluster.Outcome(outcomes[i][j])
				if out[j] == cluster.Pushed {
					l.mu.Lock()
					l.there[q.env.To[j]] = true
					l.mu.Unlock()
				}
			}
		}
		q.done(out)
	}
}

// refused reports whether a new connection to the other process is refused.
func (l *Link) refused() bool {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(strings.TrimPrefix(l.base, "http://"), "https://"), time.Second)
	if err == nil {
		_ = c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func (l *Link) isGone() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gone
}

// Start tells the new process where this one answers the handover calls
// (addr, a loopback listener of its own), so that it routes the messages for
// accounts still here to this process.
func (l *Link) Start(ctx context.Context, addr string) error {
	return l.call(ctx, PathStart, StartRequest{Addr: addr}, nil)
}

// Done tells the new process that this one has closed its last connection
// and committed its last offline rows.
func (l *Link) Done(ctx context.Context) error {
	return l.call(ctx, PathDone, struct{}{}, nil)
}

func (l *Link) call(ctx context.Context, path string, body, answer any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("handover: %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("handover: %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+l.secret)
	req.Header.Set("Content-Type", "application/json")
	res, err := l.client.Do(req)
	if err != nil {
		// A kept-alive connection the other process closed as it ended fails
		// with EOF: a fresh dial tells whether anything still listens.
		if errors.Is(err, syscall.ECONNREFUSED) || l.refused() {
			l.mu.Lock()
			l.gone = true // the process there has ended: from now on, nothing is there
			l.mu.Unlock()
		}
		return fmt.Errorf("handover: %s: %w", path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("handover: %s: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("handover: %s: %s: %s", path, res.Status, bytes.TrimSpace(data))
	}
	if answer == nil {
		return nil
	}
	if err := json.Unmarshal(data, answer); err != nil {
		return fmt.Errorf("handover: %s: %w", path, err)
	}
	return nil
}
