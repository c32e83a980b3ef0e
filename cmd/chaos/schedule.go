package main

import (
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"strings"
	"time"
)

// The fault kinds.
const (
	fStop           = "node-stop"       // SIGSTOP for Dur, then SIGCONT
	fKill           = "node-kill"       // SIGKILL, restart after Dur
	fMySQLCut       = "mysql-cut"       // connections closed, new ones refused
	fMySQLBlackhole = "mysql-blackhole" // nothing arrives until healed
	fMySQLDelay     = "mysql-delay"     // every chunk 4 s late
	fRedisCut       = "redis-cut"
	fRedisBlackhole = "redis-blackhole"
	fRedisRestart   = "redis-restart" // down for Dur, back empty
)

var allFaults = []string{fStop, fKill, fMySQLCut, fMySQLBlackhole, fMySQLDelay, fRedisCut, fRedisBlackhole, fRedisRestart}

// mysqlDelay is how late every chunk is under fMySQLDelay.
const mysqlDelay = 4 * time.Second

// Fault is one entry of the schedule.
type Fault struct {
	At   time.Duration // from the start of the fault phase
	Dur  time.Duration
	Kind string
	Node int // the node (node faults, or a partition of one node from a dependency); -1: every node
}

func (f Fault) String() string {
	target := "all nodes"
	if f.Node >= 0 {
		target = fmt.Sprintf("node %d", f.Node)
	}
	return fmt.Sprintf("+%-7s %-16s %-9s for %s", f.At.Truncate(100*time.Millisecond), f.Kind, target, f.Dur.Truncate(100*time.Millisecond))
}

// resource is what two faults must not share at the same time (healing one
// would heal the other).
func (f Fault) resource() string {
	switch f.Kind {
	case fStop, fKill:
		return fmt.Sprintf("node:%d", f.Node)
	case fMySQLCut, fMySQLBlackhole, fMySQLDelay:
		return "mysql"
	}
	return "redis"
}

// parseFaults reads -faults: "all" or a comma-separated list of kinds.
func parseFaults(s string) ([]string, error) {
	if s == "" || s == "all" {
		return allFaults, nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		ok := false
		for _, a := range allFaults {
			ok = ok || a == k
		}
		if !ok {
			return nil, fmt.Errorf("-faults: unknown kind %q (known: %s)", k, strings.Join(allFaults, ","))
		}
		out = append(out, k)
	}
	return out, nil
}

// setupRand is the setup's random source: the seed and the setup's name, so
// that a seed replays both setups' schedules and workloads.
func setupRand(seed uint64, setup string) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(setup))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// makeSchedule draws the faults of one setup over d. Faults start every 2-12 s
// and last longer than that, so some overlap; two faults on the same resource
// never do.
func makeSchedule(r *rand.Rand, d time.Duration, nodes int, kinds []string) []Fault {
	var out []Fault
	busy := map[string]time.Duration{}
	for at := between(r, 2*time.Second, 5*time.Second); at < d-2*time.Second; at += between(r, 2*time.Second, 12*time.Second) {
		for try := 0; try < 6; try++ {
			f := Fault{At: at, Kind: kinds[r.IntN(len(kinds))], Node: -1}
			switch f.Kind {
			case fStop:
				f.Node, f.Dur = r.IntN(nodes), between(r, time.Second, 20*time.Second)
			case fKill:
				f.Node, f.Dur = r.IntN(nodes), between(r, time.Second, 8*time.Second)
			case fRedisRestart:
				f.Dur = between(r, 0, 5*time.Second)
			default:
				f.Dur = between(r, 3*time.Second, 20*time.Second)
				if nodes > 1 && r.IntN(2) == 0 {
					f.Node = r.IntN(nodes) // a partition: one node loses the dependency
				}
			}
			if f.At+f.Dur > d {
				f.Dur = d - f.At
			}
			if busy[f.resource()] > f.At {
				continue
			}
			busy[f.resource()] = f.At + f.Dur + time.Second
			out = append(out, f)
			break
		}
	}
	return out
}

func printSchedule(w io.Writer, setup string, seed uint64, sched []Fault) {
	fmt.Fprintf(w, "schedule %s (seed %d): %d faults\n", setup, seed, len(sched))
	for _, f := range sched {
		fmt.Fprintf(w, "  %s\n", f)
	}
}
