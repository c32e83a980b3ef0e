package server

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseProxyHeader: whatever the bytes, the parser does not panic, and
// either reads a header that it reads again the same from its own bytes (and
// not from fewer), asks for more only while a header could still fit, or
// says what is wrong.
func FuzzParseProxyHeader(f *testing.F) {
	ap := netip.MustParseAddrPort
	for _, seed := range []string{
		"PROXY TCP4 203.0.113.5 10.0.0.1 51234 9052\r\nGET / HTTP/1.1\r\n",
		"PROXY TCP6 2001:db8::7 2001:db8::1 443 9052\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4",
		"PROXY ",
		"PRO",
		string(v2TCP(ap("203.0.113.5:51234"), ap("10.0.0.1:9052"))),
		string(v2TCP(ap("[2001:db8::7]:443"), ap("[2001:db8::1]:9052"), tlv(0xEA, "\x01vpce-1"))),
		string(v2Header(0, 0x00)),
		string(v2Header(1, 0x31, make([]byte, 216))),
		v2Sig + "\x21\x11\xff\xff",
		v2Sig + "\x21\x11\x00\x0c\x01\x02",
		v2Sig[:5],
		"GET / HTTP/1.1\r\n\r\n",
		"\x16\x03\x01",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseProxyHeader(b)
		switch {
		case err == nil:
			if n <= 0 || n > len(b) || n > v2MaxLen {
				t.Fatalf("header of %d bytes read from %d", n, len(b))
			}
			h2, n2, err2 := parseProxyHeader(b[:n])
			if err2 != nil || n2 != n || h2 != h {
				t.Fatalf("its own %d bytes read as %v, %d, %v; first %v", n, h2, n2, err2, h)
			}
			if _, _, err := parseProxyHeader(b[:n-1]); !errors.Is(err, errIncomplete) {
				t.Fatalf("one byte short: %v; want errIncomplete", err)
			}
			if h.src.IsValid() && (h.src.Addr().Is4In6() || h.src.Addr().Zone() != "") {
				t.Fatalf("source %v: want a plain address", h.src)
			}
		case errors.Is(err, errIncomplete):
			if len(b) >= v2MaxLen || (startsV1(b) && len(b) >= v1MaxLen) || (len(b) > 0 && !startsProxyHeader(b)) {
				t.Fatalf("%d bytes %q: asks for more", len(b), b)
			}
		default:
			if !strings.HasPrefix(err.Error(), "proxy protocol: ") || n != 0 {
				t.Fatalf("error %q, n %d: want a proxy protocol error and no length", err, n)
			}
		}
	})
}

func startsV1(b []byte) bool { return len(b) > 0 && hasPrefixOf(b, v1Prefix) }
