// Command baseline is the floor the load tool (cmd/chatload) compares with:
// a bare account -> connections router on nbio for the legacy protocol's
// init, msg, all and ping flags. No storage (a message to an absent account
// is dropped) and no validation beyond what keeps it from crashing.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log io.Writer) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9100", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := newServer(*addr)
	if err := s.engine.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Fprintf(log, "baseline: listening on %s (pid %d)\n", s.engine.Addrs[0], os.Getpid())
	// SIGUSR1: full GC and free memory back to the OS, as chatserver does, so
	// that chatload -gc-signal measures both the same way.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			runtime.GC()
			debug.FreeOSMemory()
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.engine.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
