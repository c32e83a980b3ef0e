package app

import (
	"context"
	"fmt"

	"chatserver/health"
)

// newProbes makes the /healthz and /readyz answers the WebSocket port and the
// side API share: ready while SQL answers, the spool holds nothing (MySQL
// takes writes) and Redis answers, and not while shutting down.
func (a *App) newProbes() *health.Probes {
	checks := []health.Check{{Name: "sql", Ping: a.store.Ping}}
	if a.spool != nil {
		checks = append(checks, health.Check{Name: "spool", Ping: func(context.Context) error {
			if n := a.writer.Spooled(); n > 0 {
				return fmt.Errorf("%d messages wait in the spool for MySQL", n)
			}
			return nil
		}})
	}
	if a.rdb != nil {
		checks = append(checks, health.Check{Name: "redis", Ping: func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() }})
	}
	return health.New(health.Config{Checks: checks}, a.log.With().Str("component", "health").Logger())
}
