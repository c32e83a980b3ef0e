package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Networks parses a list setting of networks: CIDRs ("10.0.0.0/8",
// "2001:db8::/32") or single addresses (one host). The error names the
// setting and the entry, so that a typo stops the start with a clear reason.
// IPv4-mapped IPv6 forms are taken as the IPv4 network they map.
func Networks(setting string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		p, err := parseNetwork(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("config: %s[%d] %q: want a CIDR such as 10.0.0.0/8 or fd00::/8, or one address: %w", setting, i, s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseNetwork(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("an IPv4-mapped network needs at least /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
