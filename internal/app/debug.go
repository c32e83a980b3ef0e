package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// StartPprof serves Go's profiler on addr until ctx ends. It is off unless
// debug.pprof_addr is set, and has no authentication: keep it on loopback.
func StartPprof(ctx context.Context, addr string, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("pprof server stopped")
		}
	}()
	log.Warn().Str("addr", ln.Addr().String()).Msg("pprof enabled (no authentication)")
	return nil
}

// WatchGCSignal runs a full GC and returns freed memory to the OS on SIGUSR1,
// then logs the heap. Operators use it to see the live size of a server; the
// load tool (chatload -gc-signal) uses it to measure memory per connection
// without the garbage a GC cycle has not collected yet.
func WatchGCSignal(ctx context.Context, log zerolog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				runtime.GC()
				debug.FreeOSMemory()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				log.Info().Uint64("heap_inuse", m.HeapInuse).Uint64("heap_objects", m.HeapObjects).
					Uint64("stack_inuse", m.StackInuse).Uint64("sys", m.Sys).Int("goroutines", runtime.NumGoroutine()).
					Msg("SIGUSR1: garbage collected, free memory returned to the OS")
			}
		}
	}()
}

// WatchCerts reloads the TLS certificate on SIGHUP, and when its files change
// (a stat every 10 s), until ctx ends.
func (a *App) WatchCerts(ctx context.Context) {
	if a.certs == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.ReloadCerts()
			case <-tick.C:
				if a.certs.Changed() {
					a.ReloadCerts()
				}
			}
		}
	}()
}
