package app

import (
	"context"
	"fmt"
	"time"

	"chatserver/health"
)

// notifyFailingLong is how long posts to notify.url fail before /readyz
// names "notify" failing.
const notifyFailingLong = 5 * time.Minute

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
	if a.notifier != nil {
		// Advisory: the site's endpoint being down is no reason to take chat
		// nodes out of the load balancer, but the answer names it.
		checks = append(checks, health.Check{Name: "notify", Advisory: true, Ping: func(context.Context) error {
			if d := a.notifier.Failing(); d >= notifyFailingLong {
				return fmt.Errorf("posts to notify.url have failed for %v", d.Round(time.Second))
			}
			return nil
		}})
	}
	return health.New(health.Config{Checks: checks}, a.log.With().Str("component", "health").Logger())
}
