package boxcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// backlogWant is the listen and SYN backlog the target wants: 4096 (the
// kernel's default somaxconn since 5.4) up to 65,536 connections; above, a
// restart brings more reconnects at once than that, and 65535 is wanted.
func (t Target) backlogWant() int64 {
	if t.Connections <= 65536 {
		return 4096
	}
	return 65535
}

// backlogs compares the listen backlog and the SYN backlog with what a
// reconnect storm of the target's clients needs. Too small costs time, not
// connections (clients retry), so it warns.
func (b Box) backlogs(t Target) []Finding {
	want := t.backlogWant()
	var out []Finding
	for _, s := range []struct{ name, what string }{
		{"net.core.somaxconn", "the server's listen backlog (read when it starts listening: restart it after a change)"},
		{"net.ipv4.tcp_max_syn_backlog", "handshakes in progress the kernel holds"},
	} {
		v, err := b.sysctl1(s.name)
		if err != nil {
			out = append(out, unreadable(s.name, err))
			continue
		}
		f := Finding{Name: s.name, Detail: fmt.Sprintf("%s, want %s for %s connections: %s", num(v), num(want), num(int64(t.Connections)), s.what)}
		if v < want {
			f.Status = Warn
			f.Detail += "; below it, a reconnect storm after a restart has connections dropped and clients retrying after 1 s, 3 s, 7 s..."
			f.Fix = fmt.Sprintf("sysctl -w %s=%d", s.name, want)
		}
		out = append(out, f)
	}
	return out
}

// maxPortRange is the most ephemeral ports one source address has toward one
// destination (1024-65535).
const maxPortRange = 65535 - 1024 + 1

// ports checks the ephemeral port range. It matters when a proxy on this
// machine (nginx) connects to the server: each client then takes one port of
// the range for the pair (proxy address, server address). It also checks that
// the server's own ports, if inside the range, are reserved.
func (b Box) ports(t Target) []Finding {
	const name = "net.ipv4.ip_local_port_range"
	r, err := b.sysctl(name, 2)
	if err != nil {
		return []Finding{unreadable(name, err)}
	}
	n := int64(t.Connections)
	lo, hi := r[0], r[1]
	size := hi - lo + 1
	f := Finding{Name: name}
	if n <= size {
		f.Detail = fmt.Sprintf("%d-%d, %s ports, enough for %s connections from one proxy address to one server address (relevant when a proxy on this machine connects to the server)", lo, hi, num(size), num(n))
		return []Finding{f, b.reservedPorts(t, lo, hi)}
	}
	var fix []string
	if size < maxPortRange {
		fix = append(fix, `sysctl -w net.ipv4.ip_local_port_range="1024 65535"`)
	}
	if addrs := ceilDiv(n, maxPortRange); addrs > 1 {
		fix = append(fix, fmt.Sprintf("list the server %d times in the proxy's upstream, at 127.0.0.1 to 127.0.0.%d on the same port (with server.addr \":port\" it listens on every loopback address)", addrs, addrs))
	}
	short := fmt.Sprintf("%d-%d, %s ports: one proxy address reaches one server address at most %s times, short of %s connections", lo, hi, num(size), num(size), num(n))
	if t.LocalProxy {
		f.Status, f.Fix = Warn, strings.Join(fix, "\n")
		f.Detail = short + "; server.trusted_proxies names a loopback address, so a proxy on this machine connects to the server, one ephemeral port per client"
	} else {
		f.Detail = short + "; that matters only if a proxy on this machine (nginx) connects to the server, and none is configured (server.trusted_proxies names no loopback address); with one: " + strings.Join(fix, "; ")
	}
	return []Finding{f, b.reservedPorts(t, lo, hi)}
}

// reservedPorts: a listening port inside the ephemeral range can be taken by
// an outgoing connection while the server restarts, and the server then
// cannot listen.
func (b Box) reservedPorts(t Target, lo, hi int64) Finding {
	const name = "net.ipv4.ip_local_reserved_ports"
	data, err := fs.ReadFile(b.Proc, sysctlPath(name))
	if err != nil {
		return unreadable(name, fmt.Errorf("read /proc/%s: %w", sysctlPath(name), err))
	}
	reserved, err := parsePortList(string(data))
	if err != nil {
		return unreadable(name, fmt.Errorf("/proc/%s: %w", sysctlPath(name), err))
	}
	var exposed []string
	for _, p := range t.Ports {
		if int64(p) >= lo && int64(p) <= hi && !reserved(p) {
			exposed = append(exposed, strconv.Itoa(p))
		}
	}
	if len(exposed) == 0 {
		return Finding{Name: name, Detail: "the server's ports are outside the ephemeral range or reserved"}
	}
	return Finding{Name: name, Status: Warn,
		Detail: fmt.Sprintf("port %s of the server lies in the ephemeral range %d-%d and is not reserved: an outgoing connection may hold it when the server restarts, which then cannot listen",
			strings.Join(exposed, ", "), lo, hi),
		Fix: "sysctl -w net.ipv4.ip_local_reserved_ports=" + strings.Join(exposed, ","),
	}
}

// parsePortList reads the kernel's port list ("9052-9053,3306" or empty).
func parsePortList(s string) (func(int) bool, error) {
	type span struct{ lo, hi int }
	var spans []span
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		a, z, isRange := strings.Cut(part, "-")
		lo, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("port list %q: %w", s, err)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.Atoi(z); err != nil {
				return nil, fmt.Errorf("port list %q: %w", s, err)
			}
		}
		spans = append(spans, span{lo, hi})
	}
	return func(p int) bool {
		for _, s := range spans {
			if p >= s.lo && p <= s.hi {
				return true
			}
		}
		return false
	}, nil
}

// conntrack compares the connection tracking table with the target: every
// connection is a tracked flow (two with a proxy on this machine), and a full
// table drops new connections' packets. Without the module loaded nothing is
// tracked.
func (b Box) conntrack(t Target) Finding {
	const name = "net.netfilter.nf_conntrack_max"
	v, err := b.sysctl1(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Finding{Name: name, Detail: "nf_conntrack is not loaded: connections are not tracked"}
	case err != nil:
		return unreadable(name, err)
	}
	need, why := int64(t.Connections), "one tracked flow per connection"
	if t.LocalProxy {
		need, why = 2*need, "two tracked flows per connection: client to proxy, proxy to server"
	}
	f := Finding{Name: name, Detail: fmt.Sprintf("%s, need %s (%s)", num(v), num(need), why)}
	if v < need {
		f.Status = Fail
		f.Detail += `: when the table is full the kernel drops new connections' packets ("nf_conntrack: table full, dropping packet")`
		f.Fix = fmt.Sprintf("sysctl -w %s=%d", name, pow2(need))
	}
	return f
}
