package app

import (
	"context"
	"testing"
	"time"
)

func TestShutdownPlan(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := planShutdown(t0, 10*time.Second)
	want := shutdownPlan{
		api:         t0.Add(1250 * time.Millisecond),
		connections: t0.Add(5 * time.Second),
		writer:      t0.Add(9 * time.Second),
		end:         t0.Add(10 * time.Second),
	}
	if p != want {
		t.Fatalf("plan for 10 s = %+v; want %+v", p, want)
	}
	for _, budget := range []time.Duration{100 * time.Millisecond, time.Second, 10 * time.Second, time.Minute, 10 * time.Minute} {
		p := planShutdown(t0, budget)
		switch {
		case p.connections.Sub(t0) > budget/2:
			t.Errorf("%v: the connections may take %v, over half", budget, p.connections.Sub(t0))
		case p.writer.Sub(p.connections) < budget*2/5:
			t.Errorf("%v: the writer is left %v after the connections; want at least 2/5", budget, p.writer.Sub(p.connections))
		case p.end.Sub(p.writer) <= 0 || p.end.Sub(p.writer) > 2*time.Second:
			t.Errorf("%v: the account map is left %v; want some, at most 2 s", budget, p.end.Sub(p.writer))
		case p.end != t0.Add(budget):
			t.Errorf("%v: the plan ends at %v", budget, p.end.Sub(t0))
		case !(t0.Before(p.api) && p.api.Before(p.connections) && p.connections.Before(p.writer)):
			t.Errorf("%v: stages out of order: %+v", budget, p)
		}
	}
}

func TestShutdownBudget(t *testing.T) {
	if got := shutdownBudget(context.Background(), 10*time.Second); got != 10*time.Second {
		t.Errorf("no deadline: %v; want the configured 10 s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if got := shutdownBudget(ctx, 10*time.Second); got > 3*time.Second || got < 2*time.Second {
		t.Errorf("3 s deadline: %v; want about 3 s", got)
	}
	if got := shutdownBudget(ctx, time.Second); got != time.Second {
		t.Errorf("3 s deadline, 1 s configured: %v; want 1 s", got)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if got := shutdownBudget(done, time.Second); got != time.Second {
		t.Errorf("cancelled without deadline: %v; want the configured 1 s", got)
	}
}
