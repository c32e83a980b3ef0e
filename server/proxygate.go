package server

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/rs/zerolog"
)

// proxyGate takes the PROXY header (proxyproto.go) off the start of each
// connection when server.proxy_protocol is on: a connection from a trusted
// proxy must start with one, which names the client; a connection from any
// other peer must not, or anybody could claim any address.
//
// Where: nbio's engine-wide data hook, which gets a connection's bytes as read
// from the socket, before the connection's own handler (nbhttp's HTTP parser,
// or its TLS reader on the wss listener: the header comes before the TLS
// handshake, so both listeners are served alike). No goroutine, no buffer of
// its own per connection: the state below exists from the accept until the
// first bytes are judged (with a copy only of a header split across reads),
// and then only for a connection whose header named a client, until its
// upgrade or its close. An upgraded connection costs the gate nothing but
// one map lookup per read.
type proxyGate struct {
	trusted proxies
	log     zerolog.Logger
	warn    zerolog.Logger // sampled: a misconfigured balancer fails every connection
	shards  [gateShards]gateShard
}

// gateShards spreads the map over locks: the pollers and the accept loop use
// it at once.
const gateShards = 32

type gateShard struct {
	mu sync.Mutex
	m  map[*nbio.Conn]gateState
}

// gateState is one connection's passage through the gate.
type gateState struct {
	judged  bool   // the header was read (or its absence checked); client, if any, is set
	trusted bool   // the peer is a trusted proxy: it must send a header
	partial []byte // the start of a header split across reads (rare)
	client  string // the client the header named ("host:port"); "" = the peer
}

func newProxyGate(trusted proxies, log zerolog.Logger) *proxyGate {
	g := &proxyGate{
		trusted: trusted,
		log:     log,
		warn:    log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second}),
	}
	for i := range g.shards {
		g.shards[i].m = make(map[*nbio.Conn]gateState)
	}
	return g
}

func (g *proxyGate) shard(c *nbio.Conn) *gateShard {
	return &g.shards[uint(c.Hash())%gateShards]
}

// onOpen notes a new connection and whether its peer is trusted (nbhttp's
// open hook: it runs in the accept loop, before the connection is polled).
func (g *proxyGate) onOpen(conn net.Conn) {
	c, ok := conn.(*nbio.Conn)
	if !ok {
		return
	}
	trusted := false
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		trusted = g.trusted.trust(ta.AddrPort().Addr())
	}
	sh := g.shard(c)
	sh.mu.Lock()
	sh.m[c] = gateState{trusted: trusted}
	sh.mu.Unlock()
}

// onClose forgets a connection (nbhttp's close hook).
func (g *proxyGate) onClose(conn net.Conn, _ error) {
	if c, ok := conn.(*nbio.Conn); ok {
		g.forget(c)
	}
}

func (g *proxyGate) forget(c *nbio.Conn) {
	sh := g.shard(c)
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

// client is the client a connection's PROXY header named, if it named one.
func (g *proxyGate) client(c *nbio.Conn) (string, bool) {
	sh := g.shard(c)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st, ok := sh.m[c]
	return st.client, ok && st.client != ""
}

// onData is nbio's engine-wide data hook. Only the connection's poller calls
// it for a given connection, so the state is read, worked on and written
// back without holding the lock; the close hook may delete it meanwhile,
// and a deleted state is never written back.
func (g *proxyGate) onData(c *nbio.Conn, data []byte) {
	sh := g.shard(c)
	sh.mu.Lock()
	st, ok := sh.m[c]
	sh.mu.Unlock()
	if !ok || st.judged {
		c.DataHandler()(c, data)
		return
	}
	in := data
	if st.partial != nil {
		in = append(st.partial, data...)
	}
	if !st.trusted {
		g.screen(c, st, in)
		return
	}
	h, n, err := parseProxyHeader(in)
	switch {
	case errors.Is(err, errIncomplete):
		st.partial = append([]byte(nil), in...) // data is nbio's read buffer, reused after this call
		g.update(c, st)
		return
	case err != nil:
		g.warn.Warn().Err(err).Str("peer", c.RemoteAddr().String()).
			Msg("connection from a trusted proxy refused: server.proxy_protocol is on, so it must start with a PROXY header (HAProxy: send-proxy-v2)")
		g.forget(c)
		_ = c.CloseWithError(err)
		return
	}
	if h.src.IsValid() {
		g.update(c, gateState{judged: true, client: h.src.String()})
	} else {
		g.forget(c) // LOCAL or UNKNOWN: the proxy speaks for itself
	}
	if rest := in[n:]; len(rest) > 0 {
		c.DataHandler()(c, rest)
	}
}

// screen lets an untrusted peer's bytes through once they cannot be a PROXY
// header, and closes the connection if they are one.
func (g *proxyGate) screen(c *nbio.Conn, st gateState, in []byte) {
	if len(in) >= len(v1Prefix) && hasPrefixOf(in, v1Prefix) || len(in) >= len(v2Sig) && hasPrefixOf(in, v2Sig) {
		g.log.Debug().Str("peer", c.RemoteAddr().String()).Msg("PROXY header from a peer not in server.trusted_proxies: connection closed")
		g.forget(c)
		_ = c.CloseWithError(errUntrustedProxyHeader)
		return
	}
	if startsProxyHeader(in) { // too short to tell yet
		st.partial = append([]byte(nil), in...)
		g.update(c, st)
		return
	}
	g.forget(c)
	c.DataHandler()(c, in)
}

var errUntrustedProxyHeader = errors.New("proxy protocol: header from a peer not in server.trusted_proxies")

// update writes a connection's state back, unless it was closed meanwhile.
func (g *proxyGate) update(c *nbio.Conn, st gateState) {
	sh := g.shard(c)
	sh.mu.Lock()
	if _, ok := sh.m[c]; ok {
		sh.m[c] = st
	}
	sh.mu.Unlock()
}

// connOf is the nbio connection under an HTTP request on our engine (plain
// or TLS), or nil.
func connOf(w http.ResponseWriter) *nbio.Conn {
	res, ok := w.(*nbhttp.Response)
	if !ok || res.Parser == nil {
		return nil
	}
	hc, ok := res.Parser.Conn.(*nbhttp.Conn)
	if !ok {
		return nil
	}
	switch c := hc.Conn.(type) {
	case *nbio.Conn:
		return c
	case *tls.Conn:
		nc, _ := c.Conn().(*nbio.Conn)
		return nc
	}
	return nil
}
