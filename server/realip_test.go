package server

import (
	"bytes"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"chatserver/hub"
)

func prefixes(cidrs ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		out = append(out, netip.MustParsePrefix(c))
	}
	return out
}

func TestClientOfForwardingHeaders(t *testing.T) {
	trusted := proxies(prefixes("10.0.0.0/8", "127.0.0.1/32", "2001:db8:1::/48"))
	cases := []struct {
		name, peer string
		xff        []string
		realIP     string
		want       string
	}{
		{"no headers", "10.0.0.2:5000", nil, "", "10.0.0.2:5000"},
		{"untrusted peer ignored", "198.51.100.9:5000", []string{"203.0.113.5"}, "203.0.113.6", "198.51.100.9:5000"},
		{"one hop", "10.0.0.2:5000", []string{"203.0.113.5"}, "", "203.0.113.5"},
		{"client's forged hop is left of the proxy's", "10.0.0.2:5000", []string{"1.2.3.4, 203.0.113.5"}, "", "203.0.113.5"},
		{"trusted hops walked past", "10.0.0.2:5000", []string{"1.2.3.4, 203.0.113.5, 10.1.1.1, 127.0.0.1"}, "", "203.0.113.5"},
		{"several header lines", "10.0.0.2:5000", []string{"1.2.3.4", "203.0.113.5, 10.1.1.1"}, "", "203.0.113.5"},
		{"every hop trusted: the leftmost", "10.0.0.2:5000", []string{"10.3.3.3, 10.1.1.1"}, "", "10.3.3.3"},
		{"garbage ends the walk at the last hop read", "10.0.0.2:5000", []string{"203.0.113.5, bogus, 10.1.1.1"}, "", "10.1.1.1"},
		{"garbage rightmost: X-Real-IP", "10.0.0.2:5000", []string{"203.0.113.5, bogus"}, "198.51.100.7", "198.51.100.7"},
		{"X-Forwarded-For before X-Real-IP", "10.0.0.2:5000", []string{"203.0.113.5"}, "198.51.100.7", "203.0.113.5"},
		{"X-Real-IP alone", "10.0.0.2:5000", nil, " 198.51.100.7 ", "198.51.100.7"},
		{"bad X-Real-IP: the peer", "10.0.0.2:5000", nil, "nobody", "10.0.0.2:5000"},
		{"hops with ports and brackets", "10.0.0.2:5000", []string{"[2001:db8:2::7]:443, 203.0.113.5:1234"}, "", "203.0.113.5"},
		{"IPv6 hop behind a trusted IPv6 proxy", "[2001:db8:1::2]:5000", []string{"2001:db8:2::7, 2001:db8:1::9"}, "", "2001:db8:2::7"},
		{"IPv4-mapped hop", "10.0.0.2:5000", []string{"::ffff:203.0.113.5"}, "", "203.0.113.5"},
		{"empty entries skipped", "10.0.0.2:5000", []string{" , 203.0.113.5 , "}, "", "203.0.113.5"},
	}
	for _, tc := range cases {
		h := http.Header{}
		for _, v := range tc.xff {
			h.Add("X-Forwarded-For", v)
		}
		if tc.realIP != "" {
			h.Set("X-Real-IP", tc.realIP)
		}
		if got := clientOf(tc.peer, h, trusted); got != tc.want {
			t.Errorf("%s: clientOf(%s, %v) = %q; want %q", tc.name, tc.peer, h, got, tc.want)
		}
	}
	if got := clientOf("10.0.0.2:5000", http.Header{"X-Forwarded-For": {"203.0.113.5"}}, nil); got != "10.0.0.2:5000" {
		t.Errorf("no trusted proxies: %q; want the peer", got)
	}
}

// startWhoAmI runs the transport with a hook that answers every frame with
// the connection's address as the hub sees it.
func startWhoAmI(t *testing.T, cfg Config) (*Server, chan string) {
	t.Helper()
	closed := make(chan string, 16)
	s := start(t, cfg, hub.NewTable(10), Hooks{
		OnFrame: func(c *hub.Conn, _ bool, _ []byte) { _ = c.Send([]byte(c.RemoteAddr())) },
		OnClose: func(c *hub.Conn, _ hub.Removal) { closed <- c.RemoteAddr() },
	})
	return s, closed
}

// dialAs upgrades on s with the given headers; it returns the connection, or
// nil and the HTTP status of the refusal.
func dialAs(t *testing.T, url string, h http.Header) (*websocket.Conn, int) {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		if res == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return nil, res.StatusCode
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws, http.StatusSwitchingProtocols
}

// whoAmI asks the server the connection's address.
func whoAmI(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("?")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, got, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}

func xff(v string) http.Header    { return http.Header{"X-Forwarded-For": {v}} }
func realIP(v string) http.Header { return http.Header{"X-Real-Ip": {v}} }

// TestPerIPLimitCountsTheForwardedClient: behind a trusted proxy (loopback
// here), nginx-style X-Forwarded-For and X-Real-IP name the client: the
// per-IP limit counts it, the hub holds the connection by it, and its close
// gives its place back to the same address.
func TestPerIPLimitCountsTheForwardedClient(t *testing.T) {
	s, closed := startWhoAmI(t, Config{ConnectionsPerIP: 1, TrustedProxies: prefixes("127.0.0.0/8")})
	url := "ws://" + s.Addr() + "/"

	a, code := dialAs(t, url, xff("198.51.100.1, 203.0.113.5"))
	if a == nil {
		t.Fatalf("first client 203.0.113.5: %d; want upgraded", code)
	}
	if got := whoAmI(t, a); got != "203.0.113.5" {
		t.Fatalf("the hub holds the connection as %q; want 203.0.113.5 (the rightmost untrusted hop)", got)
	}
	if ws, code := dialAs(t, url, xff("203.0.113.5")); ws != nil || code != http.StatusTooManyRequests {
		t.Fatalf("second connection of 203.0.113.5: %d; want 429", code)
	}
	if ws, code := dialAs(t, url, realIP("203.0.113.5")); ws != nil || code != http.StatusTooManyRequests {
		t.Fatalf("second connection of 203.0.113.5 by X-Real-IP: %d; want 429", code)
	}
	b, code := dialAs(t, url, xff("203.0.113.6"))
	if b == nil {
		t.Fatalf("another client 203.0.113.6: %d; want upgraded", code)
	}
	c, code := dialAs(t, url, realIP("198.51.100.7"))
	if c == nil || whoAmI(t, c) != "198.51.100.7" {
		t.Fatalf("X-Real-IP 198.51.100.7: %d; want upgraded and held by that address", code)
	}
	// The proxy itself, with no header: counted as itself, beside its clients.
	d, code := dialAs(t, url, nil)
	if d == nil || !strings.HasPrefix(whoAmI(t, d), "127.0.0.1:") {
		t.Fatalf("the proxy with no header: %d; want upgraded and held by its own address", code)
	}

	_ = a.Close()
	if got := <-closed; got != "203.0.113.5" {
		t.Fatalf("closed %q; want 203.0.113.5", got)
	}
	if ws, code := dialAs(t, url, xff("203.0.113.5")); ws == nil {
		t.Fatalf("203.0.113.5 again after its connection closed: %d; want upgraded (the close released its place)", code)
	}
}

// TestUntrustedPeerHeadersIgnored: from a peer that is not a trusted proxy,
// X-Forwarded-For and X-Real-IP change nothing: every connection counts as
// the peer, whatever address it claims.
func TestUntrustedPeerHeadersIgnored(t *testing.T) {
	for name, trusted := range map[string][]netip.Prefix{"none trusted": nil, "others trusted": prefixes("10.0.0.0/8", "::1/128")} {
		t.Run(name, func(t *testing.T) {
			s, _ := startWhoAmI(t, Config{ConnectionsPerIP: 1, TrustedProxies: trusted})
			url := "ws://" + s.Addr() + "/"
			a, code := dialAs(t, url, xff("203.0.113.5"))
			if a == nil {
				t.Fatalf("first connection: %d", code)
			}
			if got := whoAmI(t, a); !strings.HasPrefix(got, "127.0.0.1:") {
				t.Fatalf("held as %q; want the peer 127.0.0.1:port", got)
			}
			for _, h := range []http.Header{xff("203.0.113.6"), realIP("203.0.113.7"), nil} {
				if ws, code := dialAs(t, url, h); ws != nil || code != http.StatusTooManyRequests {
					t.Fatalf("second connection from 127.0.0.1 claiming %v: %d; want 429", h, code)
				}
			}
		})
	}
}

// lockedBuffer is a log sink shared with the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsNameTheForwardedClient: the refused Origin and the per-IP refusal
// are logged with the client's address from a trusted proxy, and the peer's.
func TestLogsNameTheForwardedClient(t *testing.T) {
	var logs lockedBuffer
	s := New(Config{Addr: "127.0.0.1:0", ConnectionsPerIP: 1, AllowedOrigins: []string{"https://chat.example.com"},
		TrustedProxies: prefixes("127.0.0.0/8")}, hub.NewTable(10),
		Hooks{OnFrame: func(*hub.Conn, bool, []byte) {}, OnClose: func(*hub.Conn, hub.Removal) {}},
		zerolog.New(&logs).Level(zerolog.DebugLevel))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(t.Context()) }()
	url := "ws://" + s.Addr() + "/"
	h := xff("203.0.113.5")
	h.Set("Origin", "https://evil.example")
	if ws, code := dialAs(t, url, h); ws != nil || code != http.StatusForbidden {
		t.Fatalf("bad Origin: %d; want 403", code)
	}
	if ws, _ := dialAs(t, url, xff("203.0.113.9")); ws == nil {
		t.Fatal("first connection of 203.0.113.9 refused")
	}
	if ws, code := dialAs(t, url, xff("203.0.113.9")); ws != nil || code != http.StatusTooManyRequests {
		t.Fatalf("second connection of 203.0.113.9: %d; want 429", code)
	}
	out := logs.String()
	for _, want := range []string{`"origin":"https://evil.example","remote":"203.0.113.5"`, `"remote":"203.0.113.9","peer":"127.0.0.1:`} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %s:\n%s", want, out)
		}
	}
}
