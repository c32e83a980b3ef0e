package server

import (
	"context"
	stdtls "crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/rs/zerolog"

	"chatserver/hub"
)

// proxied upgrades on url over a raw TCP socket that first carries header,
// as a balancer with send-proxy / send-proxy-v2 would, then (for wss) the TLS
// handshake. split writes the header in pieces, as a slow network may
// deliver it. It returns the connection, or nil and the HTTP status of the
// refusal (0: closed without an answer).
func proxied(t *testing.T, url string, header []byte, split bool, h http.Header, tlsCfg *stdtls.Config) (*websocket.Conn, int) {
	t.Helper()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		for rest := header; len(rest) > 0; {
			n := len(rest)
			if split {
				n = min(n, 3)
			}
			if _, err := c.Write(rest[:n]); err != nil {
				_ = c.Close()
				return nil, err
			}
			rest = rest[n:]
			if split {
				time.Sleep(5 * time.Millisecond) // lets the server read the pieces apart
			}
		}
		return c, nil
	}
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: dial}
	if tlsCfg != nil {
		d.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := tlsCfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
			tc := stdtls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = c.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	ws, res, err := d.Dial(url, h)
	if err != nil {
		if res == nil {
			return nil, 0
		}
		return nil, res.StatusCode
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws, http.StatusSwitchingProtocols
}

func v1(src, dst string) []byte {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	proto := "TCP4"
	if s.Addr().Is6() {
		proto = "TCP6"
	}
	return []byte("PROXY " + proto + " " + s.Addr().String() + " " + d.Addr().String() + " " +
		itoa(s.Port()) + " " + itoa(d.Port()) + "\r\n")
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func v2(src, dst string) []byte {
	return v2TCP(netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst))
}

// TestProxyProtocolNamesTheClient: behind a balancer that sends PROXY
// headers (v1 and v2), the per-IP limit counts the address each header
// names: two connections claiming one client with connections_per_ip 1, the
// second is refused; two different clients, both in. The hub holds each
// connection by that address, and its close frees the place.
func TestProxyProtocolNamesTheClient(t *testing.T) {
	s, closed := startWhoAmI(t, Config{ConnectionsPerIP: 1, ProxyProtocol: true, TrustedProxies: prefixes("127.0.0.0/8")})
	url := "ws://" + s.Addr() + "/"
	dst := "127.0.0.1:9052"

	a, code := proxied(t, url, v1("203.0.113.5:51234", dst), false, nil, nil)
	if a == nil {
		t.Fatalf("v1 203.0.113.5: %d; want upgraded", code)
	}
	if got := whoAmI(t, a); got != "203.0.113.5:51234" {
		t.Fatalf("v1: held as %q; want 203.0.113.5:51234", got)
	}
	if ws, code := proxied(t, url, v2("203.0.113.5:2222", dst), false, nil, nil); ws != nil || code != http.StatusTooManyRequests {
		t.Fatalf("v2 with the same client: %d; want 429", code)
	}
	b, code := proxied(t, url, v2("203.0.113.6:3333", dst), false, nil, nil)
	if b == nil || whoAmI(t, b) != "203.0.113.6:3333" {
		t.Fatalf("v2 203.0.113.6: %d; want upgraded and held by it", code)
	}
	c, code := proxied(t, url, v1("[2001:db8::7]:443", "[2001:db8::1]:9052"), false, nil, nil)
	if c == nil || whoAmI(t, c) != "[2001:db8::7]:443" {
		t.Fatalf("v1 TCP6: %d; want upgraded and held by [2001:db8::7]:443", code)
	}
	d, code := proxied(t, url, v2("[2001:db8::8]:444", "[2001:db8::1]:9052"), true, nil, nil)
	if d == nil || whoAmI(t, d) != "[2001:db8::8]:444" {
		t.Fatalf("v2 TCP6 split across reads: %d; want upgraded and held by [2001:db8::8]:444", code)
	}
	// LOCAL (the balancer's own check): the balancer counts as itself.
	e, code := proxied(t, url, v2Header(0, 0x00), false, nil, nil)
	if e == nil || !strings.HasPrefix(whoAmI(t, e), "127.0.0.1:") {
		t.Fatalf("v2 LOCAL: %d; want upgraded and held by the balancer's address", code)
	}
	// A trusted peer must send a header.
	if ws, code := proxied(t, url, nil, false, nil, nil); ws != nil {
		t.Fatalf("no PROXY header from a trusted peer: %d; want refused", code)
	}
	if ws, code := proxied(t, url, []byte("PROXY TCP4 203.0.113.999 10.0.0.1 1 2\r\n"), false, nil, nil); ws != nil {
		t.Fatalf("malformed v1 header: %d; want refused", code)
	}

	_ = a.Close()
	if got := <-closed; got != "203.0.113.5:51234" {
		t.Fatalf("closed %q; want 203.0.113.5:51234", got)
	}
	if ws, code := proxied(t, url, v1("203.0.113.5:51235", dst), false, nil, nil); ws == nil {
		t.Fatalf("203.0.113.5 again after its close: %d; want upgraded", code)
	}
}

// TestProxyHeaderThenForwardedFor: the PROXY header's client is the peer the
// forwarding headers are judged by: a trusted one (nginx behind the
// balancer) may name the client, an untrusted one may not.
func TestProxyHeaderThenForwardedFor(t *testing.T) {
	s, _ := startWhoAmI(t, Config{ProxyProtocol: true, TrustedProxies: prefixes("127.0.0.0/8", "10.0.0.0/8")})
	url := "ws://" + s.Addr() + "/"
	a, code := proxied(t, url, v2("10.1.1.1:5000", "10.0.0.1:9052"), false, xff("198.51.100.1, 203.0.113.77"), nil)
	if a == nil || whoAmI(t, a) != "203.0.113.77" {
		t.Fatalf("PROXY from nginx 10.1.1.1 with X-Forwarded-For: %d; want held by 203.0.113.77", code)
	}
	b, code := proxied(t, url, v2("203.0.113.5:5000", "10.0.0.1:9052"), false, xff("198.51.100.1"), nil)
	if b == nil || whoAmI(t, b) != "203.0.113.5:5000" {
		t.Fatalf("PROXY naming client 203.0.113.5 that sends X-Forwarded-For: %d; want held by 203.0.113.5:5000", code)
	}
}

// TestProxyHeaderFromUntrustedPeerRefused: a peer outside
// server.trusted_proxies that sends a PROXY header is closed, so nobody can
// claim an address; its plain connections go through. With
// server.proxy_protocol off, a PROXY header is never honoured either.
func TestProxyHeaderFromUntrustedPeerRefused(t *testing.T) {
	var logs lockedBuffer
	s := New(Config{Addr: "127.0.0.1:0", ProxyProtocol: true, TrustedProxies: prefixes("10.0.0.0/8")}, hub.NewTable(10), Hooks{
		OnFrame: func(c *hub.Conn, _ bool, _ []byte) { _ = c.Send([]byte(c.RemoteAddr())) },
		OnClose: func(*hub.Conn, hub.Removal) {},
	}, zerolog.New(&logs).Level(zerolog.DebugLevel))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(t.Context()) }()
	url := "ws://" + s.Addr() + "/"
	for name, header := range map[string][]byte{
		"v1": v1("203.0.113.5:1", "10.0.0.1:2"), "v2": v2("203.0.113.5:1", "10.0.0.1:2"),
		"v1 split": v1("203.0.113.5:1", "10.0.0.1:2"),
	} {
		if ws, code := proxied(t, url, header, strings.HasSuffix(name, "split"), nil, nil); ws != nil {
			t.Fatalf("%s header from an untrusted peer: %d; want the connection closed", name, code)
		}
	}
	if n := strings.Count(logs.String(), "PROXY header from a peer not in server.trusted_proxies"); n != 3 {
		t.Fatalf("log says %d times that an untrusted peer sent a PROXY header; want 3:\n%s", n, logs.String())
	}
	a, code := proxied(t, url, nil, false, nil, nil)
	if a == nil || !strings.HasPrefix(whoAmI(t, a), "127.0.0.1:") {
		t.Fatalf("plain connection from an untrusted peer: %d; want upgraded, held by its own address", code)
	}
	if code, _, _ := probe(t, &http.Client{Timeout: 10 * time.Second}, "http://"+s.Addr(), "/healthz"); code != 200 {
		t.Fatalf("plain HTTP from an untrusted peer: %d", code)
	}

	off, _ := startWhoAmI(t, Config{TrustedProxies: prefixes("127.0.0.0/8")})
	if ws, code := proxied(t, "ws://"+off.Addr()+"/", v1("203.0.113.5:1", "10.0.0.1:2"), false, nil, nil); ws != nil {
		t.Fatalf("PROXY header with server.proxy_protocol off: %d; want refused", code)
	}
}

// TestProxyProtocolOnWSS: the PROXY header comes before the TLS handshake, and
// the wss listener reads it the same way.
func TestProxyProtocolOnWSS(t *testing.T) {
	cert, roots := testCert(t)
	s, _ := startWhoAmI(t, Config{ConnectionsPerIP: 1, ProxyProtocol: true, TrustedProxies: prefixes("127.0.0.0/8"),
		TLSAddr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	url := "wss://" + s.TLSAddr() + "/"
	tc := &stdtls.Config{RootCAs: roots}
	a, code := proxied(t, url, v2("203.0.113.5:4444", "10.0.0.1:443"), false, nil, tc)
	if a == nil || whoAmI(t, a) != "203.0.113.5:4444" {
		t.Fatalf("wss after a v2 header: %d; want upgraded and held by 203.0.113.5:4444", code)
	}
	if ws, code := proxied(t, url, v1("203.0.113.5:4445", "10.0.0.1:443"), true, nil, tc); ws != nil || code != http.StatusTooManyRequests {
		t.Fatalf("wss, same client by a split v1 header: %d; want 429", code)
	}
	if ws, _ := proxied(t, url, nil, false, nil, tc); ws != nil {
		t.Fatal("wss from a trusted peer without a PROXY header: upgraded; want refused")
	}
}
