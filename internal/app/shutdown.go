package app

import (
	"context"
	"fmt"
	"time"
)

// shutdownPlan gives each stage of app.Close its own deadline inside the
// shutdown budget (server.shutdown_timeout), so that one stage running long
// cannot leave the next none:
//
//	side API       until 1/8 of the budget: in-flight calls finish or are cut
//	connections    until 1/2: close with 1001, wait for running handlers
//	offline writer until the budget less the presence reserve
//	account map    the reserve (1/10 of the budget, at most 2 s)
//	databases      what is left of the reserve (at least 100 ms)
//
// The deadlines are points in time, so a stage that ends early leaves its
// time to the next ones. The writer flushes in the background all along; its
// stage is the wait for the last rows, and it is always left at least
// 2/5 of the budget after the connections are gone.
type shutdownPlan struct {
	api, connections, writer, end time.Time
}

func planShutdown(now time.Time, budget time.Duration) shutdownPlan {
	reserve := min(budget/10, 2*time.Second)
	return shutdownPlan{
		api:         now.Add(budget / 8),
		connections: now.Add(budget / 2),
		writer:      now.Add(budget - reserve),
		end:         now.Add(budget),
	}
}

// databases is when closing the databases is given up: the end of the plan, or
// 100 ms from now if the plan is spent.
func (p shutdownPlan) databases(now time.Time) time.Time {
	if grace := now.Add(100 * time.Millisecond); grace.After(p.end) {
		return grace
	}
	return p.end
}

// shutdownBudget is the configured timeout, or less if ctx ends sooner.
func shutdownBudget(ctx context.Context, configured time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < configured {
		return max(time.Until(d), 0)
	}
	return configured
}

// stage runs one shutdown step with ctx cut at until, and logs it if it did not
// finish in time.
func (a *App) stage(ctx context.Context, name string, until time.Time, step func(context.Context) error) error {
	start := time.Now()
	sctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	if err := step(sctx); err != nil {
		a.log.Error().Err(err).Str("stage", name).Dur("budget", until.Sub(start)).Dur("took", time.Since(start)).
			Msg("shutdown stage did not finish")
		return fmt.Errorf("shutdown %s: %w", name, err)
	}
	return nil
}

// closeStoresUntil closes the databases, giving up waiting when ctx ends: a
// database/sql pool's Close waits for queries under way, and one stuck behind a
// lock would hold the exit past the budget.
func (a *App) closeStoresUntil(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.closeStores()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("queries still running: %w", ctx.Err())
	}
}
