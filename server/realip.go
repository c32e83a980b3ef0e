package server

import (
	"net/http"
	"net/netip"
	"strings"
)

// proxies are the peers whose word on the client's address is taken
// (server.trusted_proxies): load balancers and reverse proxies of the site.
type proxies []netip.Prefix

func (p proxies) trust(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// clientOf is the address a request's client is held by (per-IP limit, logs):
// the peer, or, when the peer is a trusted proxy, the client its headers name.
// X-Forwarded-For is read from the right, each trusted proxy having appended
// the address it got the request from, and the first hop not trusted is the
// client; hops further left were written by the client or by proxies nobody
// vouches for, so they are ignored. If every hop is trusted, the leftmost is
// the client. X-Real-IP (one address, set by the proxy) is read only when
// there is no X-Forwarded-For. An untrusted peer's headers are never read, and
// a malformed hop ends the walk at the last address read. peer is "host:port";
// the result is the peer itself, or an address without a port.
func clientOf(peer string, h http.Header, trusted proxies) string {
	if len(trusted) == 0 {
		return peer
	}
	ap, err := netip.ParseAddrPort(peer)
	if err != nil || !trusted.trust(ap.Addr()) {
		return peer
	}
	if hops := h.Values("X-Forwarded-For"); len(hops) > 0 {
		if a, ok := walkForwardedFor(hops, trusted); ok {
			return a.String()
		}
	}
	if a, ok := parseHop(h.Get("X-Real-IP")); ok {
		return a.String()
	}
	return peer
}

// walkForwardedFor returns the rightmost untrusted hop of the X-Forwarded-For
// header lines (in order, each a comma-separated list), the leftmost hop if
// all are trusted, or, at a hop that is not an address, the last one read.
func walkForwardedFor(lines []string, trusted proxies) (netip.Addr, bool) {
	var last netip.Addr
	found := false
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			var hop string
			if k := strings.LastIndexByte(rest, ','); k >= 0 {
				rest, hop = rest[:k], rest[k+1:]
			} else {
				rest, hop = "", rest
			}
			if strings.TrimSpace(hop) == "" {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				return last, found
			}
			if !trusted.trust(a) {
				return a, true
			}
			last, found = a, true
		}
	}
	return last, found
}

// parseHop reads one forwarded address: "203.0.113.7", "2001:db8::1", with a
// port ("203.0.113.7:41000", "[2001:db8::1]:41000") or in brackets, as
// proxies write them. IPv4-mapped IPv6 is taken as IPv4; a zone is dropped.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
				return parseHop(s[1 : len(s)-1])
			}
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}
