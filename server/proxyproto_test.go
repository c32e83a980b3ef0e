package server

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// v2Header builds a PROXY v2 header as a balancer sends it: command (0 LOCAL,
// 1 PROXY), family/protocol byte, then the address block and TLVs.
func v2Header(cmd, fam byte, block ...[]byte) []byte {
	var body []byte
	for _, b := range block {
		body = append(body, b...)
	}
	h := append([]byte(v2Sig), 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(body)))
	return append(h, body...)
}

// v2TCP is a PROXY command for a TCP connection from src to dst, with tlvs
// after the addresses.
func v2TCP(src, dst netip.AddrPort, tlvs ...[]byte) []byte {
	var block []byte
	fam := byte(0x11)
	if src.Addr().Is4() {
		s, d := src.Addr().As4(), dst.Addr().As4()
		block = append(append(block, s[:]...), d[:]...)
	} else {
		fam = 0x21
		s, d := src.Addr().As16(), dst.Addr().As16()
		block = append(append(block, s[:]...), d[:]...)
	}
	block = binary.BigEndian.AppendUint16(block, src.Port())
	block = binary.BigEndian.AppendUint16(block, dst.Port())
	return v2Header(1, fam, append([][]byte{block}, tlvs...)...)
}

// tlv is one type-length-value field of a v2 header.
func tlv(typ byte, value string) []byte {
	return append(binary.BigEndian.AppendUint16([]byte{typ}, uint16(len(value))), value...)
}

func TestParseProxyHeader(t *testing.T) {
	ap := netip.MustParseAddrPort
	request := "GET / HTTP/1.1\r\n"
	cases := []struct {
		name string
		in   string
		src  string // "" = no client named
		n    int    // header length; 0 = len(in) minus the request
		err  string // in the error; "" = none
	}{
		{name: "v1 TCP4", in: "PROXY TCP4 203.0.113.5 10.0.0.1 51234 9052\r\n" + request, src: "203.0.113.5:51234"},
		{name: "v1 TCP6", in: "PROXY TCP6 2001:db8::7 2001:db8::1 443 9052\r\n" + request, src: "[2001:db8::7]:443"},
		{name: "v1 UNKNOWN", in: "PROXY UNKNOWN\r\n" + request},
		{name: "v1 UNKNOWN with addresses", in: "PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n" + request},
		{name: "v1 TCP4 with an IPv6 address", in: "PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n", err: "not IPv4"},
		{name: "v1 TCP6 with an IPv4 address", in: "PROXY TCP6 203.0.113.5 2001:db8::1 1 2\r\n", err: "not IPv6"},
		{name: "v1 bad address", in: "PROXY TCP4 203.0.113.999 10.0.0.1 1 2\r\n", err: "source address"},
		{name: "v1 bad port", in: "PROXY TCP4 203.0.113.5 10.0.0.1 70000 2\r\n", err: "source port"},
		{name: "v1 signed port", in: "PROXY TCP4 203.0.113.5 10.0.0.1 1 -2\r\n", err: "destination port"},
		{name: "v1 missing field", in: "PROXY TCP4 203.0.113.5 10.0.0.1 1\r\n", err: "fields"},
		{name: "v1 double space", in: "PROXY TCP4  203.0.113.5 10.0.0.1 1 2\r\n", err: "fields"},
		{name: "v1 unknown protocol", in: "PROXY UDP4 203.0.113.5 10.0.0.1 1 2\r\n", err: "UDP4"},
		{name: "v1 without CRLF", in: "PROXY TCP4 " + strings.Repeat("1", 120), err: "CRLF"},
		{name: "v2 TCP4", in: string(v2TCP(ap("203.0.113.5:51234"), ap("10.0.0.1:9052"))) + request, src: "203.0.113.5:51234"},
		{name: "v2 TCP6", in: string(v2TCP(ap("[2001:db8::7]:443"), ap("[2001:db8::1]:9052"))) + request, src: "[2001:db8::7]:443"},
		{name: "v2 IPv4-mapped in TCP6", in: string(v2TCP(ap("[::ffff:203.0.113.5]:1"), ap("[2001:db8::1]:2"))), src: "203.0.113.5:1"},
		{name: "v2 with TLVs (AWS VPC endpoint)", in: string(v2TCP(ap("203.0.113.5:1"), ap("10.0.0.1:2"), tlv(0xEA, "\x01vpce-08d2bf15fac5001c9"), tlv(0x04, ""))) + request, src: "203.0.113.5:1"},
		{name: "v2 LOCAL (health check)", in: string(v2Header(0, 0x00)) + request},
		{name: "v2 LOCAL with addresses", in: string(v2Header(0, 0x11, make([]byte, 12))) + request},
		{name: "v2 UNSPEC", in: string(v2Header(1, 0x00)) + request},
		{name: "v2 unix", in: string(v2Header(1, 0x31, make([]byte, 216))) + request},
		{name: "v2 version 1", in: v2Sig + "\x11\x11\x00\x00", err: "version 1"},
		{name: "v2 command 2", in: v2Sig + "\x22\x11\x00\x00", err: "command 2"},
		{name: "v2 UDP", in: string(v2Header(1, 0x12, make([]byte, 12))), err: "datagram"},
		{name: "v2 unknown family", in: string(v2Header(1, 0x41, make([]byte, 12))), err: "0x41"},
		{name: "v2 short TCP4 block", in: string(v2Header(1, 0x11, make([]byte, 8))), err: "12 bytes"},
		{name: "v2 short TCP6 block", in: string(v2Header(1, 0x21, make([]byte, 12))), err: "36 bytes"},
		{name: "v2 too long", in: v2Sig + "\x21\x11\xff\xff", err: "at most"},
		{name: "HTTP", in: request, err: "does not start with a PROXY header"},
		{name: "TLS ClientHello", in: "\x16\x03\x01\x02\x00\x01", err: "does not start with a PROXY header"},
		{name: "POST is not PROXY", in: "POST / HTTP/1.1\r\n", err: "does not start"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := parseProxyHeader([]byte(tc.in))
			if tc.err != "" {
				if err == nil || errors.Is(err, errIncomplete) || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "proxy protocol: ") {
					t.Fatalf("parse = %v, %d, %v; want an error saying %q", h, n, err, tc.err)
				}
				return
			}
			want := len(tc.in) - len(request)
			if !strings.HasSuffix(tc.in, request) {
				want = len(tc.in)
			}
			if err != nil || n != want {
				t.Fatalf("parse = %v, %d, %v; want a header of %d bytes", h, n, err, want)
			}
			if got := h.src.String(); (tc.src == "" && h.src.IsValid()) || (tc.src != "" && got != tc.src) {
				t.Fatalf("source %s; want %q", got, tc.src)
			}
			for k := 0; k < n; k++ {
				if _, _, err := parseProxyHeader([]byte(tc.in[:k])); !errors.Is(err, errIncomplete) {
					t.Fatalf("the first %d of its %d bytes: %v; want errIncomplete", k, n, err)
				}
			}
		})
	}
}
