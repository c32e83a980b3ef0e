// Command faultproxy puts internal/faultproxy in front of a dependency of a
// running server, for measurements under a fault: it forwards -listen to
// -target and switches on signals. SIGUSR1 black-holes the traffic
// (connections stay open, nothing is answered), SIGUSR2 passes it again.
// bench/blackhole.sh uses it with chatload -fault-pid.
//
//	faultproxy -listen 127.0.0.1:3307 -target 127.0.0.1:3306
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
	"time"

	"chatserver/internal/faultproxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	if err := run(ctx, os.Args[1:], sigs, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "faultproxy:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, switching the mode on each signal; it logs
// every change with the time, so a measurement can be lined up with it.
func run(ctx context.Context, args []string, sigs <-chan os.Signal, log io.Writer) error {
	fs := flag.NewFlagSet("faultproxy", flag.ContinueOnError)
	fs.SetOutput(log)
	listen := fs.String("listen", "127.0.0.1:3307", "address to accept on")
	target := fs.String("target", "127.0.0.1:3306", "address to forward to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := faultproxy.Listen(*listen, *target)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(log, "faultproxy: listening on %s -> %s (SIGUSR1 black-hole, SIGUSR2 pass)\n", p.Addr(), *target)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-sigs:
			m := modeFor(s)
			p.Set(m, 0)
			fmt.Fprintf(log, "faultproxy: %s %s\n", time.Now().Format("15:04:05.000"), m)
		}
	}
}

func modeFor(s os.Signal) faultproxy.Mode {
	if s == syscall.SIGUSR1 {
		return faultproxy.Blackhole
	}
	return faultproxy.Pass
}
