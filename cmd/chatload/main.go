// Command chatload sizes a deployment of the chat server: it opens real
// WebSocket connections speaking the legacy protocol (against this server,
// the nbio baseline in bench/baseline, or the old PHP server) from several
// worker processes, and reports connect rate, memory per connection,
// broadcast fan-out, one-to-one latency and loss, and offline throughput.
//
//	chatload idle -conns 19000 -steps 5000,10000,19000 -pid $(pidof server)
//	chatload broadcast -conns 19000 -k 20
//	chatload pairs -pairs 9500 -rate 50000 -duration 10s
//	chatload offline -messages 10000 -mysql-dsn 'user:pw@tcp(127.0.0.1:3306)/chat'
//
// The tool re-executes itself with -worker for each worker process; that
// mode reads JSON requests on stdin and is not meant to be run by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lesismal/nbio/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "chatload:", err)
		}
		var de *deliveryError
		if errors.As(err, &de) {
			os.Exit(2) // the run completed and its result is printed: it found loss
		}
		os.Exit(1)
	}
}

// run is the whole tool; getenv is the environment (CHAT_API_SECRET).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "-worker" {
		// stdout carries the worker protocol: nbio logs go to stderr.
		logging.SetLogger(nbioLog{w: stderr})
		return runWorker(ctx, stdin, stdout)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.maxTime)
	defer cancel()
	res, err := runScenario(ctx, cfg, stderr)
	if res != nil {
		if perr := printResult(stdout, cfg.json, res); perr != nil && err == nil {
			err = perr
		}
		if p := res.problems(); len(p) > 0 && err == nil {
			err = &deliveryError{problems: p}
		}
	}
	return err
}

// nbioLog sends nbio's warnings and errors to w and drops the rest.
type nbioLog struct{ w io.Writer }

func (nbioLog) Debug(string, ...any) {}
func (nbioLog) Info(string, ...any)  {}
func (l nbioLog) Warn(format string, v ...any) {
	fmt.Fprintf(l.w, "chatload worker: nbio: "+format+"\n", v...)
}
func (l nbioLog) Error(format string, v ...any) {
	fmt.Fprintf(l.w, "chatload worker: nbio: "+format+"\n", v...)
}
