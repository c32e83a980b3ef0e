package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"chatserver/config"
	"chatserver/internal/app"
	"chatserver/internal/boxcheck"
)

// serviceTimeout bounds each dependency's answer in a check.
const serviceTimeout = 5 * time.Second

// runCheck is chatserver -check: it reaches the services the configuration
// names, then holds the machine and this process's limits against
// server.max_connections, and prints every finding with the line to change.
// It returns an error when something fails, so that the exit code says
// whether the box is ready.
func runCheck(ctx context.Context, cfg config.Config, source string, box boxcheck.Box, stdout io.Writer) error {
	target, err := app.CheckTarget(cfg)
	if err != nil {
		return err
	}
	kind := "ws://"
	if target.TLS {
		kind = "ws:// and wss://"
	}
	if _, err := fmt.Fprintf(stdout, "chatserver check (%s): %d connections over %s (server.max_connections)\n"+
		"Limits are this process's: run it as the service runs (see README, Run it in production).\n\n", source, target.Connections, kind); err != nil {
		return err
	}
	// The drivers' own loggers would print every failed dial; the finding
	// says it once.
	app.RouteLibraryLogs(zerolog.Nop())
	findings := append(app.CheckServices(ctx, cfg, serviceTimeout), box.Check(target)...)
	if err := boxcheck.Write(stdout, target, findings); err != nil {
		return err
	}
	if n := boxcheck.Failed(findings); n > 0 {
		return fmt.Errorf("check: %d of %d checks failed", n, len(findings))
	}
	return nil
}
