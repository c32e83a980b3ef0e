package e2e

import (
	"testing"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"chatserver/internal/app"
)

// TestMain silences nbio's and go-redis's package loggers once (main routes
// them into the server's log before Start; setting them per test would race
// with the servers of tests running in parallel; each server's own log is in
// its test's output), and fails the run if goroutines outlive the tests: every
// server, client and database a test opens must be closed by the time it ends.
// Goroutines started at package init (nbio's task pool) are there before and
// ignored; goleak retries for a while before it reports, so goroutines that
// are ending are not counted, and it prints the stacks of those that are not.
func TestMain(m *testing.M) {
	app.RouteLibraryLogs(zerolog.Nop())
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}
