package boxcheck

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// fake is a machine described by its sysctls, its RAM and the process's file
// limit.
type fake struct {
	sysctl     map[string]string // name (net.core.somaxconn) -> file content
	memKB      int64
	soft, hard uint64
	nofileErr  error
}

// roomy is a machine tuned for a million connections with RAM to spare.
func roomy() fake {
	return fake{
		sysctl: map[string]string{
			"fs.nr_open":                       "2097152",
			"fs.file-max":                      "4194304",
			"net.core.somaxconn":               "65535",
			"net.ipv4.tcp_max_syn_backlog":     "65535",
			"net.ipv4.ip_local_port_range":     "1024\t65535",
			"net.ipv4.ip_local_reserved_ports": "9052-9053",
			"net.netfilter.nf_conntrack_max":   "2097152",
			"net.ipv4.tcp_mem":                 "1048576\t2097152\t3145728",
			"net.ipv4.tcp_rmem":                "4096\t131072\t6291456",
			"net.ipv4.tcp_wmem":                "4096\t16384\t4194304",
		},
		memKB: 32 << 20, // 32 GiB
		soft:  1048576, hard: 1048576,
	}
}

func (f fake) box() Box {
	fsys := fstest.MapFS{"meminfo": {Data: fmt.Appendf(nil, "MemTotal:       %d kB\nMemFree:        1024 kB\n", f.memKB)}}
	for name, v := range f.sysctl {
		fsys[sysctlPath(name)] = &fstest.MapFile{Data: []byte(v + "\n")}
	}
	return Box{
		Proc:     fsys,
		NoFile:   func() (uint64, uint64, error) { return f.soft, f.hard, f.nofileErr },
		PageSize: 4096,
	}
}

// with returns a copy of f with one sysctl set.
func (f fake) with(name, value string) fake {
	c := f.without(name)
	c.sysctl[name] = value
	return c
}

// without returns a copy of f without a sysctl (a module not loaded, a
// setting a container does not show).
func (f fake) without(name string) fake {
	c := f
	c.sysctl = make(map[string]string, len(f.sysctl))
	for k, v := range f.sysctl {
		if k != name {
			c.sysctl[k] = v
		}
	}
	return c
}

var million = Target{Connections: 1_000_000, Ports: []int{9052, 9053}}

// find returns the finding of a name, failing the test if there is none.
func find(t *testing.T, fs []Finding, name string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no finding %q in %+v", name, fs)
	return Finding{}
}

func TestRoomyMachineHoldsAMillion(t *testing.T) {
	fs := roomy().box().Check(million)
	for _, f := range fs {
		if f.Status != OK {
			t.Errorf("%s: %s (%s); want ok", f.Name, f.Status, f.Detail)
		}
	}
	if Failed(fs) != 0 {
		t.Fatalf("Failed = %d", Failed(fs))
	}
	// With nginx on the machine, a million is more than one proxy address's
	// ports: a warning with the way around it, not a failure.
	fs = roomy().box().Check(Target{Connections: 1_000_000, LocalProxy: true})
	f := find(t, fs, "net.ipv4.ip_local_port_range")
	if f.Status != Warn || !strings.Contains(f.Fix, "127.0.0.16") {
		t.Errorf("port range with a local proxy: %s, fix %q; want warn, spread over 16 addresses", f.Status, f.Fix)
	}
	if Failed(fs) != 0 {
		t.Fatalf("with a local proxy: Failed = %d", Failed(fs))
	}
}

func TestFindings(t *testing.T) {
	base := roomy()
	small := func(f fake) fake { f.soft, f.hard = 1024, 524288; return f }
	cases := []struct {
		name    string
		machine fake
		target  Target
		check   string
		want    Status
		fix     string // a part of the fix line; "" for none
	}{
		{"hard limit below target", small(base), million, "RLIMIT_NOFILE hard", Fail, "LimitNOFILE=1048576"},
		{"soft limit below, hard too", small(base), million, "RLIMIT_NOFILE soft", Fail, "ulimit -n 1048576"},
		{"soft limit below, hard enough", func() fake { f := base; f.soft = 1024; return f }(), million, "RLIMIT_NOFILE soft", OK, ""},
		{"unlimited hard limit", func() fake { f := base; f.hard = ^uint64(0); return f }(), million, "RLIMIT_NOFILE hard", OK, ""},
		{"nr_open default", base.with("fs.nr_open", "1048576"), Target{Connections: 2_000_000}, "fs.nr_open", Fail, "sysctl -w fs.nr_open=4194304"},
		{"nr_open between need and round figure", base.with("fs.nr_open", "1010000"), million, "fs.nr_open", Warn, "fs.nr_open=2097152"},
		{"file-max too low", base.with("fs.file-max", "1000000"), million, "fs.file-max", Fail, "sysctl -w fs.file-max=2097152"},
		{"file-max for server alone, not with a proxy", base.with("fs.file-max", "1100000"), Target{Connections: 1_000_000, LocalProxy: true}, "fs.file-max", Fail, "fs.file-max=2097152"},
		{"somaxconn default", base.with("net.core.somaxconn", "4096"), million, "net.core.somaxconn", Warn, "sysctl -w net.core.somaxconn=65535"},
		{"somaxconn default, small target", base.with("net.core.somaxconn", "4096"), Target{Connections: 20_000}, "net.core.somaxconn", OK, ""},
		{"syn backlog low", base.with("net.ipv4.tcp_max_syn_backlog", "512"), Target{Connections: 20_000}, "net.ipv4.tcp_max_syn_backlog", Warn, "net.ipv4.tcp_max_syn_backlog=4096"},
		{"ports narrow, local proxy", base.with("net.ipv4.ip_local_port_range", "32768 60999"), Target{Connections: 200_000, LocalProxy: true}, "net.ipv4.ip_local_port_range", Warn, `ip_local_port_range="1024 65535"`},
		{"ports enough", base.with("net.ipv4.ip_local_port_range", "32768 60999"), Target{Connections: 20_000}, "net.ipv4.ip_local_port_range", OK, ""},
		{"ports narrow, no local proxy", base.with("net.ipv4.ip_local_port_range", "32768 60999"), Target{Connections: 200_000}, "net.ipv4.ip_local_port_range", OK, ""},
		{"server port in range, unreserved", base.with("net.ipv4.ip_local_reserved_ports", ""), million, "net.ipv4.ip_local_reserved_ports", Warn, "ip_local_reserved_ports=9052,9053"},
		{"server port outside range", base.with("net.ipv4.ip_local_port_range", "32768 60999").with("net.ipv4.ip_local_reserved_ports", ""), million, "net.ipv4.ip_local_reserved_ports", OK, ""},
		{"conntrack not loaded", base.without("net.netfilter.nf_conntrack_max"), million, "net.netfilter.nf_conntrack_max", OK, ""},
		{"conntrack small", base.with("net.netfilter.nf_conntrack_max", "262144"), million, "net.netfilter.nf_conntrack_max", Fail, "nf_conntrack_max=1048576"},
		{"conntrack with local proxy", base.with("net.netfilter.nf_conntrack_max", "1048576"), Target{Connections: 1_000_000, LocalProxy: true}, "net.netfilter.nf_conntrack_max", Fail, "nf_conntrack_max=2097152"},
		{"tcp_mem of a 24 GiB box", base.with("net.ipv4.tcp_mem", "287889 383855 575778"), million, "net.ipv4.tcp_mem", Fail, `tcp_mem="1000000 2000000 3000000"`},
		{"tcp_mem pressure low", base.with("net.ipv4.tcp_mem", "500000 600000 3000000"), million, "net.ipv4.tcp_mem", Warn, "tcp_mem="},
		{"tcp_mem max under the minimums", base.with("net.ipv4.tcp_mem", "1000000 1000000 1500000"), million, "net.ipv4.tcp_mem", Warn, "tcp_mem="},
		{"tcp_mem unreadable (container)", base.without("net.ipv4.tcp_mem"), million, "net.ipv4.tcp_mem", Warn, ""},
		{"RAM short", func() fake { f := base; f.memKB = 8 << 20; return f }(), million, "memory", Fail, "server.max_connections: "},
		{"RAM tight", func() fake { f := base; f.memKB = 11 << 20; return f }(), million, "memory", Warn, "at least"},
		{"RAM enough for ws", func() fake { f := base; f.memKB = 12 << 20; return f }(), million, "memory", OK, ""},
		{"RAM tight for wss", func() fake { f := base; f.memKB = 12 << 20; return f }(), Target{Connections: 1_000_000, TLS: true}, "memory", Warn, ""},
		{"unreadable file limit", func() fake { f := base; f.nofileErr = errors.New("operation not permitted"); return f }(), million, "RLIMIT_NOFILE", Warn, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := find(t, c.machine.box().Check(c.target), c.check)
			if f.Status != c.want {
				t.Fatalf("%s: %s (%s); want %s", f.Name, f.Status, f.Detail, c.want)
			}
			if c.want == OK && f.Fix != "" {
				t.Errorf("ok with a fix: %q", f.Fix)
			}
			if c.fix != "" && !strings.Contains(f.Fix, c.fix) {
				t.Errorf("fix %q lacks %q", f.Fix, c.fix)
			}
			if f.Detail == "" {
				t.Error("no detail")
			}
		})
	}
}
