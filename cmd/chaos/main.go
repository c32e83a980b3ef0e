// Command chaos is the fault campaign: it starts the real chat server as a
// single node and as a three-node cluster, each with its own MySQL database and
// Redis behind fault proxies, runs a workload whose every message carries an id
// of its own, injects a random schedule of faults drawn from a printed seed
// (nodes frozen or killed, MySQL and Redis cut, black-holed, slowed or
// restarted empty), heals everything, waits until nothing moves, and checks the
// recorded history: nothing acknowledged lost, nothing invented, order per
// sender and recipient, duplicates droppable by id, no row left behind, no
// crash. docs/faults.md is its manual.
//
//	chaos -duration 2m -seed 42 -out /tmp/chaos
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "chaos:", err)
	}
	if err != nil || failed {
		os.Exit(1)
	}
}

// run parses the flags, runs the campaign and prints the report; failed is
// true when the checker found failures.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (failed bool, err error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 2*time.Minute, "fault phase per setup")
	seed := fs.Uint64("seed", 0, "random seed of the schedules and the workload (0 = from the time)")
	setups := fs.String("setups", "single,cluster", "setups to run at the same time: single, cluster")
	faults := fs.String("faults", "all", "fault kinds allowed: all, or a list of "+strings.Join(allFaults, ","))
	out := fs.String("out", "", "directory for the history, the node logs and the report (default: a new temporary directory)")
	bin := fs.String("bin", "", "chat server binary (default: go build from the module root)")
	mysqlDSN := fs.String("mysql-dsn", "root@tcp(127.0.0.1:3306)/", "MariaDB/MySQL server (without database); each setup makes its own database")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "shared Redis, used with a key prefix only when redis-server is not installed")
	keep := fs.Bool("keep", false, "keep the databases")
	check := fs.String("check", "", "only check a history file written by an earlier run (with -setups naming its setup)")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *check != "" {
		events, err := readHistory(*check)
		if err != nil {
			return false, err
		}
		r := Check(events, strings.Split(*setups, ",")[0], *seed, *duration)
		r.History = *check
		printReport(stdout, []*Result{r})
		return r.Failed(), nil
	}
	kinds, err := parseFaults(*faults)
	if err != nil {
		return false, err
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	c := campaignConfig{seed: *seed, duration: *duration, faults: kinds, bin: *bin, out: *out,
		mysqlDSN: *mysqlDSN, redis: *redisAddr, keep: *keep, log: stdout}
	for _, s := range strings.Split(*setups, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.setups = append(c.setups, s)
		}
	}
	results, err := campaign(ctx, c)
	if results != nil {
		failed = anyFailed(results)
	}
	return failed, err
}

// campaign fills in the output directory and the binary, runs, and writes the
// report to the output directory and to c.log.
func campaign(ctx context.Context, c campaignConfig) ([]*Result, error) {
	if c.out == "" {
		dir, err := os.MkdirTemp("", "chaos-")
		if err != nil {
			return nil, err
		}
		c.out = dir
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(c.log, "chaos: output in %s\n", c.out)
	if c.bin == "" {
		fmt.Fprintln(c.log, "chaos: building the server")
		bin, err := buildServer(ctx, c.out)
		if err != nil {
			return nil, err
		}
		c.bin = bin
	}
	results, err := runCampaign(ctx, c)
	var report strings.Builder
	printReport(&report, results)
	fmt.Fprint(c.log, "\n"+report.String())
	if werr := os.WriteFile(filepath.Join(c.out, "report.txt"), []byte(report.String()), 0o644); werr != nil && err == nil {
		err = werr
	}
	return results, err
}

func anyFailed(rs []*Result) bool {
	for _, r := range rs {
		if r != nil && r.Failed() {
			return true
		}
	}
	return false
}
