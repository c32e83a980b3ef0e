package boxcheck

import "fmt"

// What a connection costs, measured on idle connections (docs/benchmarks.md)
// and rounded up.
const (
	// rssPerWS is the server's RSS per ws:// connection: 1,437-1,565 B measured.
	rssPerWS = 1536
	// rssPerWSS is the server's RSS per wss:// connection it terminates
	// itself (tls.addr): 3,263 B measured.
	rssPerWSS = 3584
	// kernelPerSocket is the kernel's own memory per socket (the socket, its
	// file, its epoll entry): ~3.8 KiB, outside the process's RSS and outside
	// net.ipv4.tcp_mem.
	kernelPerSocket = 3892
	// baseRSS is the server with no connections plus its bounded queues at
	// their default bounds (offline queue, remembered cids, frames waiting
	// under the rate limit, the groups cache).
	baseRSS = 512 << 20
	// ramShare is the part of RAM the estimate may take before a warning: the
	// rest is for the page cache and whatever shares the machine.
	ramShare = 0.8
	// ramSharePct is ramShare as the messages say it.
	ramSharePct = 80
)

// rssPerConn is the server's RSS per connection for the target.
func (t Target) rssPerConn() int64 {
	if t.TLS {
		return rssPerWSS
	}
	return rssPerWS
}

// inFlightPages is the TCP memory, in pages, of one frame queued on every
// connection at once, as a site-wide announcement does: the kernel charges
// socket buffers to tcp_mem in whole pages.
func (t Target) inFlightPages() int64 { return int64(t.Connections) }

// tcpMem compares net.ipv4.tcp_mem (pages, all TCP sockets together) with the
// target: an announcement to everybody queues a page on every socket; every
// socket at the minimum buffers the kernel guarantees it (tcp_rmem and
// tcp_wmem's first values) takes those both ways.
func (b Box) tcpMem(t Target) Finding {
	const name = "net.ipv4.tcp_mem"
	m, err := b.sysctl(name, 3)
	if err != nil {
		return unreadable(name, err)
	}
	rmem, err := b.sysctl("net.ipv4.tcp_rmem", 3)
	if err != nil {
		return unreadable(name, err)
	}
	wmem, err := b.sysctl("net.ipv4.tcp_wmem", 3)
	if err != nil {
		return unreadable(name, err)
	}
	page := int64(b.PageSize)
	n := num(int64(t.Connections))
	inFlight := t.inFlightPages()
	floor := int64(t.Connections) * ceilDiv(rmem[0]+wmem[0], page)
	f := Finding{Name: name,
		Detail: fmt.Sprintf("pressure %s, max %s pages (%s); an announcement to %s connections queues %s pages (%s), every socket at its guaranteed minimum (tcp_rmem %d + tcp_wmem %d bytes) %s (%s)",
			num(m[1]), num(m[2]), size(m[2]*page), n, num(inFlight), size(inFlight*page), rmem[0], wmem[0], num(floor), size(floor*page)),
		Fix: fmt.Sprintf(`sysctl -w net.ipv4.tcp_mem="%d %d %d"`, inFlight, floor, floor+inFlight),
	}
	switch {
	case m[2] < inFlight:
		f.Status = Fail
		f.Detail += `: past max the kernel refuses TCP memory ("TCP: out of memory -- consider tuning tcp_mem") and drops or resets`
	case m[1] < inFlight:
		f.Status = Warn
		f.Detail += ": an announcement puts TCP under memory pressure, where every socket's buffers are cut back"
	case m[2] < floor:
		f.Status = Warn
		f.Detail += ": busy sockets together can reach max, where the kernel refuses TCP memory"
	default:
		f.Fix = ""
	}
	return f
}

// memoryNeeded estimates the RAM the target takes: the server's RSS, the
// kernel's sockets, and a page of TCP buffer on every connection.
func (b Box) memoryNeeded(t Target) (total, perConn int64) {
	perConn = t.rssPerConn() + kernelPerSocket + int64(b.PageSize)
	return baseRSS + int64(t.Connections)*perConn, perConn
}

// memory compares the machine's RAM with the estimate.
func (b Box) memory(t Target) Finding {
	const name = "memory"
	total, err := b.memTotal()
	if err != nil {
		return unreadable(name, err)
	}
	need, per := b.memoryNeeded(t)
	kind := "ws://"
	if t.TLS {
		kind = "wss://"
	}
	f := Finding{Name: name, Detail: fmt.Sprintf("%s of RAM; %s connections over %s take about %s (%s each: the server's %s, the kernel's socket %s, a page of TCP buffer; + %s for the process)",
		size(total), num(int64(t.Connections)), kind, size(need), num(per), num(t.rssPerConn()), num(kernelPerSocket), size(baseRSS))}
	holds := (int64(float64(total)*ramShare) - baseRSS) / per
	fix := fmt.Sprintf("a machine with at least %s of RAM, or server.max_connections: %d (what this one holds leaving %d%% free)",
		size(int64(float64(need)/ramShare)), max(holds, 0), 100-ramSharePct)
	switch {
	case need > total:
		f.Status, f.Fix = Fail, fix
		f.Detail += ": more than the machine has"
	case float64(need) > ramShare*float64(total):
		f.Status, f.Fix = Warn, fix
		f.Detail += fmt.Sprintf(": over %d%% of it, little is left for the page cache and anything sharing the machine", ramSharePct)
	}
	return f
}
