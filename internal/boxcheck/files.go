package boxcheck

import (
	"fmt"
	"math"
)

// fileReserve is what the server keeps open besides its connections: the
// listeners, the MySQL and Redis pools, the SQLite files, the side API's
// clients. Generous, because a process at its file limit accepts nothing.
const fileReserve = 1024

// otherFiles is what the rest of a dedicated machine keeps open (system
// services, Redis or MySQL if they share it), for fs.file-max.
const otherFiles = 65536

// filesNeeded is the descriptors the server needs at the target.
func (t Target) filesNeeded() int64 { return int64(t.Connections) + fileReserve }

// limitNoFile is the LimitNOFILE the fixes suggest: the need rounded up to a
// power of two (1,048,576 for a million connections).
func (t Target) limitNoFile() int64 { return pow2(t.filesNeeded()) }

// openFiles compares the process's RLIMIT_NOFILE, fs.nr_open and fs.file-max
// with the descriptors the target needs: one per connection.
func (b Box) openFiles(t Target) []Finding {
	need, limit := t.filesNeeded(), t.limitNoFile()
	why := fmt.Sprintf("%s connections + %s for listeners, pools and files", num(int64(t.Connections)), num(fileReserve))
	fixLimit := fmt.Sprintf("LimitNOFILE=%d in the unit's [Service] section (deploy/chatserver.service)\n"+
		"outside systemd, as root in the shell that starts it: ulimit -n %d", limit, limit)
	var out []Finding

	soft, hard, err := b.NoFile()
	if err != nil {
		out = append(out, Finding{Name: "RLIMIT_NOFILE", Status: Warn, Detail: "cannot read this process's file limit: " + err.Error()})
	} else {
		s, h := capped(soft), capped(hard)
		sf := Finding{Name: "RLIMIT_NOFILE soft"}
		switch {
		case s >= need:
			sf.Detail = fmt.Sprintf("%s, need %s (%s)", limitNum(s), num(need), why)
		case h >= need:
			sf.Detail = fmt.Sprintf("%s, below the %s needed, but the server raises its soft limit to the hard one (%s) at start", limitNum(s), num(need), limitNum(h))
		default:
			sf.Status, sf.Fix = Fail, fixLimit
			sf.Detail = fmt.Sprintf("%s, need %s (%s): connections past it are refused", limitNum(s), num(need), why)
		}
		hf := Finding{Name: "RLIMIT_NOFILE hard", Detail: fmt.Sprintf("%s, need %s (%s)", limitNum(h), num(need), why)}
		if h < need {
			hf.Status, hf.Fix = Fail, fixLimit
			hf.Detail += ": this process can never open that many"
		}
		out = append(out, sf, hf)
	}

	nrOpen := Finding{Name: "fs.nr_open"}
	switch v, err := b.sysctl1("fs.nr_open"); {
	case err != nil:
		nrOpen = unreadable("fs.nr_open", err)
	case v < need:
		nrOpen.Status = Fail
		nrOpen.Detail = fmt.Sprintf("%s, need %s: no process may be given more files than this, so LimitNOFILE cannot reach the target", num(v), num(need))
		nrOpen.Fix = fmt.Sprintf("sysctl -w fs.nr_open=%d", 2*limit)
	case v < limit:
		nrOpen.Status = Warn
		nrOpen.Detail = fmt.Sprintf("%s: enough for %s, but LimitNOFILE=%d (the suggested round figure) would stop the service from starting; keep LimitNOFILE between the two, or raise it", num(v), num(need), limit)
		nrOpen.Fix = fmt.Sprintf("sysctl -w fs.nr_open=%d", 2*limit)
	default:
		nrOpen.Detail = fmt.Sprintf("%s, need %s (the ceiling of any process's file limit)", num(v), num(need))
	}
	out = append(out, nrOpen)

	sysNeed := need + otherFiles
	sysWhy := "the server's files + " + num(otherFiles) + " for the rest of the machine"
	if t.LocalProxy {
		sysNeed += need
		sysWhy = "the server's files, as many for the proxy on this machine, + " + num(otherFiles) + " for the rest"
	}
	fileMax := Finding{Name: "fs.file-max"}
	switch v, err := b.sysctl1("fs.file-max"); {
	case err != nil:
		fileMax = unreadable("fs.file-max", err)
	case v < sysNeed:
		fileMax.Status = Fail
		fileMax.Detail = fmt.Sprintf("%s, need %s (%s): past it every process's open fails", num(v), num(sysNeed), sysWhy)
		fileMax.Fix = fmt.Sprintf("sysctl -w fs.file-max=%d", pow2(sysNeed))
	default:
		fileMax.Detail = fmt.Sprintf("%s, need %s (%s)", limitNum(v), num(sysNeed), sysWhy)
	}
	return append(out, fileMax)
}

// limitNum writes a limit, "unlimited" for the largest value.
func limitNum(v int64) string {
	if v == math.MaxInt64 {
		return "unlimited"
	}
	return num(v)
}
