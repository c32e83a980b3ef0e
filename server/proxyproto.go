package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The PROXY protocol (haproxy.org/download/3.0/doc/proxy-protocol.txt): a
// TCP load balancer (HAProxy send-proxy / send-proxy-v2, AWS NLB, GCP and
// Azure load balancers) writes one header before the client's bytes, naming
// the client's address. Version 1 is a text line, version 2 a binary block.
// This file only reads the header; proxygate.go decides who may send one.

// proxyHeader is what a PROXY header says. src is invalid when it names no
// client: a LOCAL v2 header (the balancer's own health check), v1 UNKNOWN, or
// an address family that is not IP; the connection is then the peer's.
type proxyHeader struct {
	src netip.AddrPort
}

// errIncomplete: the bytes so far are the start of a header; read more.
var errIncomplete = errors.New("proxy protocol: header incomplete")

const (
	v1Prefix = "PROXY "
	v1MaxLen = 107 // the longest v1 line, CRLF included, as the spec bounds it
	v2Sig    = "\r\n\r\n\x00\r\nQUIT\n"
	v2Fixed  = 16 // signature, version and command, family, length
	// v2MaxTLVs bounds what follows the addresses (type-length-value fields:
	// AWS's VPC endpoint, TLS details) so that a header cannot make us
	// buffer much: 64 KiB is what the length field allows, and no balancer
	// sends more than a few hundred bytes.
	v2MaxTLVs = 4 << 10
	v2MaxLen  = v2Fixed + 216 + v2MaxTLVs // 216: the largest address block (AF_UNIX)
)

// parseProxyHeader reads a PROXY header (v1 or v2) at the start of b and
// returns it with its length in bytes. errIncomplete means b is a proper
// prefix of a header that may still be valid; any other error says why b is
// not one.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	switch {
	case len(b) == 0:
		return proxyHeader{}, 0, errIncomplete
	case hasPrefixOf(b, v2Sig):
		if len(b) < len(v2Sig) {
			return proxyHeader{}, 0, errIncomplete
		}
		return parseV2(b)
	case hasPrefixOf(b, v1Prefix):
		if len(b) < len(v1Prefix) {
			return proxyHeader{}, 0, errIncomplete
		}
		return parseV1(b)
	default:
		return proxyHeader{}, 0, errors.New("proxy protocol: the connection does not start with a PROXY header (v1 or v2)")
	}
}

// hasPrefixOf reports whether b and sig agree on their common length: b
// starts with sig, or b is the start of sig.
func hasPrefixOf(b []byte, sig string) bool {
	n := min(len(b), len(sig))
	return string(b[:n]) == sig[:n]
}

// startsProxyHeader reports whether b begins like a PROXY header, or could
// still (it is shorter than the signatures and agrees with one so far).
func startsProxyHeader(b []byte) bool {
	return len(b) > 0 && (hasPrefixOf(b, v2Sig) || hasPrefixOf(b, v1Prefix))
}

// parseV1 reads "PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>\r\n" or
// "PROXY UNKNOWN[ anything]\r\n".
func parseV1(b []byte) (proxyHeader, int, error) {
	end := bytes.Index(b[:min(len(b), v1MaxLen)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= v1MaxLen {
			return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v1 header without CRLF in its first %d bytes", v1MaxLen)
		}
		return proxyHeader{}, 0, errIncomplete
	}
	n := end + 2
	fields := strings.Split(string(b[len(v1Prefix):end]), " ")
	switch fields[0] {
	case "UNKNOWN":
		return proxyHeader{}, n, nil
	case "TCP4", "TCP6":
	default:
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v1 protocol %q: want TCP4, TCP6 or UNKNOWN", fields[0])
	}
	if len(fields) != 5 {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v1 %s header has %d fields: want source, destination and their ports", fields[0], len(fields)-1)
	}
	v6 := fields[0] == "TCP6"
	src, err := v1Addr(fields[1], v6)
	if err != nil {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v1 source address: %w", err)
	}
	if _, err := v1Addr(fields[2], v6); err != nil {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v1 destination address: %w", err)
	}
	sport, err := v1Port(fields[3])
	if err != nil {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v1 source port: %w", err)
	}
	if _, err := v1Port(fields[4]); err != nil {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v1 destination port: %w", err)
	}
	return proxyHeader{src: netip.AddrPortFrom(src, sport)}, n, nil
}

func v1Addr(s string, v6 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return a, fmt.Errorf("%q is not an IP address", s)
	case a.Zone() != "":
		return a, fmt.Errorf("%q has a zone", s)
	case v6 && !a.Is6():
		return a, fmt.Errorf("%q is not IPv6 (TCP6)", s)
	case !v6 && !a.Is4():
		return a, fmt.Errorf("%q is not IPv4 (TCP4)", s)
	}
	return a.Unmap(), nil
}

func v1Port(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return uint16(n), nil
}

// parseV2 reads the binary header: signature, version 2 and command (LOCAL
// or PROXY), family and transport, the length of what follows, the
// addresses, then TLVs, which are skipped.
func parseV2(b []byte) (proxyHeader, int, error) {
	if len(b) < v2Fixed {
		return proxyHeader{}, 0, errIncomplete
	}
	if v := b[12] >> 4; v != 2 {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v2 signature with version %d", v)
	}
	cmd := b[12] & 0x0f
	if cmd > 1 {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v2 command %d: want LOCAL (0) or PROXY (1)", cmd)
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if v2Fixed+length > v2MaxLen {
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v2 header of %d bytes: at most %d are accepted", v2Fixed+length, v2MaxLen)
	}
	n := v2Fixed + length
	if len(b) < n {
		return proxyHeader{}, 0, errIncomplete
	}
	if cmd == 0 { // LOCAL: the balancer speaks for itself; the block is ignored
		return proxyHeader{}, n, nil
	}
	body := b[v2Fixed:n]
	switch fam := b[13]; fam {
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v2 TCP/IPv4 addresses need 12 bytes, the header has %d", len(body))
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		return proxyHeader{src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10]))}, n, nil
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v2 TCP/IPv6 addresses need 36 bytes, the header has %d", len(body))
		}
		src := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		return proxyHeader{src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34]))}, n, nil
	case 0x00, 0x01, 0x02, 0x31: // unspecified, or a Unix socket: no client address to take
		return proxyHeader{}, n, nil
	case 0x12, 0x22, 0x32:
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v2 header for a datagram connection (0x%02x) on a TCP stream", fam)
	default:
		return proxyHeader{}, 0, fmt.Errorf("proxy protocol: v2 address family and protocol 0x%02x unknown", fam)
	}
}
