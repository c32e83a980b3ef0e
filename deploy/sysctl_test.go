package deploy

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"chatserver/config"
	"chatserver/internal/app"
	"chatserver/internal/boxcheck"
)

// stock is a Debian 12 kernel's settings as found on a 24 GiB VM: what the
// drop-in starts from.
var stock = map[string]string{
	"fs.nr_open":                       "1048576",
	"fs.file-max":                      "2466097",
	"net.core.somaxconn":               "4096",
	"net.ipv4.tcp_max_syn_backlog":     "2048",
	"net.ipv4.ip_local_port_range":     "32768 60999",
	"net.ipv4.ip_local_reserved_ports": "",
	"net.netfilter.nf_conntrack_max":   "262144",
	"net.ipv4.tcp_mem":                 "287889 383855 575778",
	"net.ipv4.tcp_rmem":                "4096 131072 6291456",
	"net.ipv4.tcp_wmem":                "4096 16384 4194304",
}

// box is a machine with the stock settings overlaid by over, RAM of memGiB,
// and the unit's LimitNOFILE as the process's file limit.
func box(t *testing.T, over map[string]string, memGiB int64) boxcheck.Box {
	t.Helper()
	limit, err := strconv.ParseUint(readUnit(t, "chatserver.service").one(t, "Service.LimitNOFILE"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"meminfo": {Data: fmt.Appendf(nil, "MemTotal: %d kB\n", memGiB<<20)}}
	for _, m := range []map[string]string{stock, over} {
		for name, v := range m {
			fsys["sys/"+strings.ReplaceAll(name, ".", "/")] = &fstest.MapFile{Data: []byte(v + "\n")}
		}
	}
	return boxcheck.Box{Proc: fsys, NoFile: func() (uint64, uint64, error) { return limit, limit, nil }, PageSize: 4096}
}

// TestDropInHoldsAMillion feeds chatserver -check's checks the drop-in's
// values (over a stock kernel's) and the unit's file limit, on a machine with
// enough RAM: a million connections pass, over ws:// and wss://, and with
// nginx on the machine nothing fails (the ports warn: the upstream must be
// spread). The stock kernel alone does not hold them.
func TestDropInHoldsAMillion(t *testing.T) {
	d := readDropIn(t, "99-chatserver.conf")
	for name := range d.values {
		if _, err := os.Stat("/proc/sys/" + strings.ReplaceAll(name, ".", "/")); err != nil && !d.optional[name] {
			t.Errorf("%s: not a setting of this kernel (%v); mark it optional (-%s) if it belongs to a module", name, err, name)
		}
	}
	base := config.Default()
	base.Server.MaxConnections = 1_000_000
	ws, err := app.CheckTarget(base)
	if err != nil {
		t.Fatal(err)
	}
	withTLS := base
	withTLS.TLS.Addr, withTLS.API.Secret = ":9443", "s"
	wss, err := app.CheckTarget(withTLS)
	if err != nil {
		t.Fatal(err)
	}
	proxied := base
	proxied.Server.TrustedProxies = []string{"127.0.0.1"}
	local, err := app.CheckTarget(proxied)
	if err != nil {
		t.Fatal(err)
	}

	tuned := box(t, d.values, 32)
	for name, target := range map[string]boxcheck.Target{"ws://": ws, "wss:// and the side API": wss} {
		for _, f := range tuned.Check(target) {
			if f.Status != boxcheck.OK {
				t.Errorf("%s: %s %s: %s", name, f.Status, f.Name, f.Detail)
			}
		}
	}
	for _, f := range tuned.Check(local) {
		if f.Status == boxcheck.Fail || (f.Status == boxcheck.Warn && f.Name != "net.ipv4.ip_local_port_range") {
			t.Errorf("nginx on the machine: %s %s: %s", f.Status, f.Name, f.Detail)
		}
	}

	if fs := box(t, nil, 32).Check(ws); boxcheck.Failed(fs) == 0 {
		t.Errorf("a stock kernel passes for a million connections: the check or the stock values are wrong")
	}
	if fs := box(t, d.values, 8).Check(ws); boxcheck.Failed(fs) == 0 {
		t.Errorf("8 GiB of RAM passes for a million connections")
	}
}
