// Package boxcheck compares what this machine and this process allow with the
// connections the server is configured to hold: open files, listen backlogs,
// ephemeral ports, conntrack, TCP memory and RAM. It reads /proc directly (no
// sysctl binary) through an fs.FS, and the process's file limit through a
// function, so that tests can feed it any values.
//
// Each finding says ok, warn or fail, what was found against what is needed,
// and the exact line to change. A fail means the box cannot hold the target;
// a warn means it can, with a cost the operator should know about.
package boxcheck

import (
	"io/fs"
	"os"
	"syscall"
)

// Status is how a finding stands against the target.
type Status int

const (
	OK   Status = iota // holds the target
	Warn               // holds it, with a cost or a condition (said in the finding)
	Fail               // cannot hold it
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	default:
		return "fail"
	}
}

// Finding is one check's outcome.
type Finding struct {
	Name   string // the setting checked, e.g. "fs.nr_open"
	Status Status
	Detail string // what was found against what is needed
	Fix    string // the exact line to change; empty when nothing needs to
}

// Target is what the box must hold.
type Target struct {
	// Connections is server.max_connections.
	Connections int
	// TLS: the server terminates wss:// itself (tls.addr), which costs more
	// memory per connection than ws://.
	TLS bool
	// LocalProxy: a proxy on this machine (nginx) connects to the server, as
	// server.trusted_proxies naming a loopback address says. Each client then
	// costs the proxy an ephemeral port and the kernel a second tracked flow.
	LocalProxy bool
	// Ports the server listens on (server.addr, tls.addr, api.addr), which an
	// ephemeral port range that covers them must reserve.
	Ports []int
}

// Box is the machine as the checks read it.
type Box struct {
	// Proc is the proc file system's root (/proc): sys/... for the sysctls,
	// meminfo for the RAM.
	Proc fs.FS
	// NoFile returns this process's RLIMIT_NOFILE.
	NoFile func() (soft, hard uint64, err error)
	// PageSize is the kernel's page, the unit of net.ipv4.tcp_mem.
	PageSize int
}

// System is this machine and this process.
func System() Box {
	return Box{
		Proc: os.DirFS("/proc"),
		NoFile: func() (uint64, uint64, error) {
			var l syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
				return 0, 0, err
			}
			return l.Cur, l.Max, nil
		},
		PageSize: os.Getpagesize(),
	}
}

// Check runs every check against the target, in the order the README lists
// them: files, backlogs, ports, conntrack, TCP memory, RAM.
func (b Box) Check(t Target) []Finding {
	var out []Finding
	out = append(out, b.openFiles(t)...)
	out = append(out, b.backlogs(t)...)
	out = append(out, b.ports(t)...)
	out = append(out, b.conntrack(t), b.tcpMem(t), b.memory(t))
	return out
}

// Failed counts the findings that fail.
func Failed(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Status == Fail {
			n++
		}
	}
	return n
}
