package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"chatserver/internal/faultproxy"
)

// runSchedule injects every fault at its time from now, each healed at its end;
// it returns when the last one is healed (at once, healing, when ctx ends).
func (s *setup) runSchedule(ctx context.Context, sched []Fault) {
	start := time.Now()
	var wg sync.WaitGroup
	for _, f := range sched {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(f.At))):
			}
			s.inject(ctx, f)
		}()
	}
	wg.Wait()
}

// inject applies f, holds it for f.Dur (or until ctx ends) and heals it.
func (s *setup) inject(ctx context.Context, f Fault) {
	s.rec.Add(Event{Kind: evFaultStart, Code: f.Kind, Node: f.Node, Detail: f.String()})
	var heal func()
	switch f.Kind {
	case fStop:
		n := s.nodes[f.Node]
		if err := n.signal(syscall.SIGSTOP); err != nil {
			s.note("SIGSTOP node %d: %v", f.Node, err)
		}
		heal = func() { _ = n.signal(syscall.SIGCONT) }
	case fKill:
		n := s.nodes[f.Node]
		n.kill()
		heal = func() {
			if err := n.start(context.WithoutCancel(ctx)); err != nil {
				s.note("restart node %d after SIGKILL: %v", f.Node, err)
			}
		}
	case fMySQLCut, fMySQLBlackhole, fMySQLDelay:
		mode := map[string]faultproxy.Mode{fMySQLCut: faultproxy.Cut, fMySQLBlackhole: faultproxy.Blackhole, fMySQLDelay: faultproxy.Delay}[f.Kind]
		ps := s.proxiesOf(f.Node, func(p *proxies) *faultproxy.Proxy { return p.mysql })
		setAll(ps, mode, mysqlDelay)
		heal = func() { setAll(ps, faultproxy.Pass, 0) }
	case fRedisCut, fRedisBlackhole:
		mode := faultproxy.Cut
		if f.Kind == fRedisBlackhole {
			mode = faultproxy.Blackhole
		}
		ps := s.proxiesOf(f.Node, func(p *proxies) *faultproxy.Proxy { return p.redis })
		setAll(ps, mode, 0)
		heal = func() { setAll(ps, faultproxy.Pass, 0) }
	case fRedisRestart:
		// The down time is part of the restart; nothing to hold after it.
		if err := s.redis.restartEmpty(ctx, f.Dur); err != nil {
			s.note("redis restart: %v", err)
		}
		s.rec.Add(Event{Kind: evFaultEnd, Code: f.Kind, Node: f.Node, Detail: f.String()})
		return
	default:
		s.note("unknown fault kind %q", f.Kind)
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(f.Dur):
	}
	heal()
	s.rec.Add(Event{Kind: evFaultEnd, Code: f.Kind, Node: f.Node, Detail: f.String()})
}

// proxiesOf picks one kind of proxy of one node, or of every node (-1).
func (s *setup) proxiesOf(node int, pick func(*proxies) *faultproxy.Proxy) []*faultproxy.Proxy {
	var out []*faultproxy.Proxy
	for i, p := range s.prox {
		if node < 0 || node == i {
			out = append(out, pick(p))
		}
	}
	return out
}

func setAll(ps []*faultproxy.Proxy, m faultproxy.Mode, d time.Duration) {
	for _, p := range ps {
		p.Set(m, d)
	}
}

// healAll ends every fault: proxies pass, stopped nodes continue, dead nodes
// and a dead Redis start again.
func (s *setup) healAll(ctx context.Context) error {
	for _, p := range s.prox {
		p.mysql.Set(faultproxy.Pass, 0)
		p.redis.Set(faultproxy.Pass, 0)
	}
	if !s.redis.running() {
		if err := s.redis.start(ctx); err != nil {
			return fmt.Errorf("heal: redis: %w", err)
		}
	}
	for _, n := range s.nodes {
		if n.alive() {
			_ = n.signal(syscall.SIGCONT)
			continue
		}
		if err := n.start(ctx); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
	}
	return nil
}

func (s *setup) note(format string, args ...any) {
	s.rec.Add(Event{Kind: evNote, Node: -1, Detail: fmt.Sprintf(format, args...)})
}
