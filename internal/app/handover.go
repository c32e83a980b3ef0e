package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"chatserver/api"
	"chatserver/cluster"
	"chatserver/handover"
	"chatserver/server"
)

// Upgrades without a reconnect storm (README "Upgrades"): the new binary
// starts beside the running one on the same ports (server.reuse_port), then
// the old one gets SIGUSR2 and HandOver runs in it.

const (
	// handoverHint is the window the close reason gives clients to reconnect
	// in: the JavaScript library waits a random moment in it, which spreads
	// each batch's reconnects over a second on top of the batches' own pace.
	handoverHint = time.Second
	// handoverLinger bounds how long a closed connection waits for the
	// client's close frame (frames it sent meanwhile are still served).
	handoverLinger = 2 * time.Second
	// successorWait bounds the check that a new process answers the side API.
	successorWait = 2 * time.Second
)

// HandoverSignal returns a channel that receives once per SIGUSR2, until ctx
// ends.
func HandoverSignal(ctx context.Context) <-chan struct{} {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// HandOver hands this process's connections over to the process started
// beside it on the same ports, then shuts down:
//
//  1. /readyz answers 503, and the side API's listener closes: the site's
//     calls reach the new process.
//  2. On a single node the two processes route to each other: messages for
//     accounts that already moved go to the new process through its side
//     API, and it sends those for accounts still here to a loopback listener
//     of this one, in order (package handover); with cluster.enabled the new
//     process is another node already.
//  3. The WebSocket listeners close and the connections are closed with 1012
//     at server.handover_rate, what each had not acknowledged committed to
//     the offline table before its close frame; within server.shutdown_timeout.
//  4. The shutdown of Close, with a budget of its own.
//  5. The new process is told this one is done: it reads again what this one
//     stored for accounts connected there by then.
//
// ctx ending (SIGTERM meanwhile) closes the remaining connections at once.
func (a *App) HandOver(ctx context.Context) error {
	budget := a.cfg.Server.ShutdownTimeout
	start := time.Now()
	a.log.Info().Int("connections", a.srv.Connections()).Int("rate", a.cfg.Server.HandoverRate).
		Msg("handing over to the process beside this one (SIGUSR2)")
	a.probes.Drain()
	var link *handover.Link
	if a.api != nil {
		if err := a.stage(ctx, "side API", time.Now().Add(budget/8), a.api.Shutdown); err != nil {
			a.log.Error().Err(err).Msg("handover: side API calls under way were cut off")
		}
		link = a.successorLink(ctx)
	} else {
		a.log.Warn().Msg("handover: the side API is off (no api.secret): messages for accounts that moved to the new process are stored for their next init")
	}
	closePeer := func() {}
	if link != nil && !a.cfg.Cluster.Enabled {
		// The new process routes messages for accounts still here to this
		// one, until the connections are gone.
		closePeer = a.peerListener(ctx, link)
	}
	hctx, cancel := context.WithTimeout(ctx, budget)
	res, herr := a.srv.Handover(hctx, server.Handover{
		Rate: a.cfg.Server.HandoverRate, Hint: handoverHint, Linger: handoverLinger, Settle: a.writer.Flush,
	})
	cancel()
	closePeer() // from now on the new process stores what it would have sent here
	if herr != nil {
		a.log.Error().Err(herr).Msg("handover: not every connection closed in time; the shutdown closes the rest")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	err := a.Close(cctx)
	if link != nil {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), successorWait)
		if derr := link.Done(dctx); derr != nil {
			a.log.Warn().Err(derr).Msg("handover: the new process was not told this one is done; what this one stored for accounts there comes at their next init")
		}
		dcancel()
	}
	a.log.Info().Int("closed", res.Closed).Dur("took", time.Since(start)).Msg("handed over")
	if herr != nil && err == nil {
		err = herr
	}
	return err
}

// successorLink reaches the new process through the side API address (this
// process's own listener is closed by now). On a single node the handler
// routes messages for accounts that moved through it until the connections
// are gone. nil when nothing answers there.
func (a *App) successorLink(ctx context.Context) *handover.Link {
	var tc *tls.Config
	if a.cfg.TLS.API {
		c, err := a.certs.LoopbackClientConfig()
		if err != nil {
			a.log.Warn().Err(err).Msg("handover: cannot reach the new process's side API over TLS")
			return nil
		}
		tc = c
	}
	link, err := handover.New(a.cfg.API.Addr, a.cfg.API.Secret, tc, a.handler.Local, a.log.With().Str("component", "handover").Logger())
	if err != nil {
		a.log.Warn().Err(err).Msg("handover: no route to the new process")
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, successorWait)
	defer cancel()
	if err := link.Ready(rctx); err != nil {
		a.log.Warn().Err(err).Str("api_addr", a.cfg.API.Addr).
			Msg("handover: no new process answers at api.addr; closing the connections anyway (they reconnect when one listens)")
		return nil
	}
	if a.cfg.Cluster.Enabled {
		return link // the new process is another node: only told when this one is done
	}
	lctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		link.Run(lctx)
	}()
	if err := a.handler.SetSuccessor(link); err != nil {
		stop()
		<-done
		a.log.Warn().Err(err).Msg("handover: messages are not routed to the new process")
		return link
	}
	// The link runs until no connection is left to send through it: what it
	// has queued then is answered as not taken and stored here, before the
	// offline writer's last flush.
	a.afterConnections = func() {
		stop()
		<-done
	}
	return link
}

// handoverSide is what this process serves to the other one in a handover
// (api.Successor): the handler's Here and Take, and, as the new process, the
// route back to the old one while it hands over.
type handoverSide struct {
	a *App

	mu   sync.Mutex
	link *handover.Link // to the old process, while it hands over
	stop func()
}

func (s *handoverSide) Here(accounts []string) []bool { return s.a.handler.Here(accounts) }

func (s *handoverSide) Take(env cluster.Envelope) <-chan []cluster.Outcome {
	return s.a.handler.Take(env)
}

// PredecessorAt routes messages for accounts still on the old process to it,
// at addr (a loopback listener of its own), until it is done. With several
// nodes the old process is one of them already: nothing to do.
func (s *handoverSide) PredecessorAt(addr string) error {
	if s.a.cfg.Cluster.Enabled {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("the old process's address %q is not on loopback", addr)
	}
	link, err := handover.New(addr, s.a.cfg.API.Secret, nil, s.a.handler.Local, s.a.log.With().Str("component", "handover").Logger())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.link != nil {
		return fmt.Errorf("a handover from another process is under way")
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		link.Run(ctx)
	}()
	if err := s.a.handler.SetSuccessor(link); err != nil {
		stop()
		<-done
		return err
	}
	s.link, s.stop = link, func() { stop(); <-done }
	return nil
}

// PredecessorDone drops the route to the old process (what it still had
// queued is stored here) and reads again what the old process stored for
// the connections here.
func (s *handoverSide) PredecessorDone() {
	s.mu.Lock()
	link, stop := s.link, s.stop
	s.link, s.stop = nil, nil
	s.mu.Unlock()
	if link != nil {
		s.a.handler.ClearSuccessor(link)
		stop()
	}
	s.a.handler.PredecessorDone()
}

// peerListener serves the handover calls to the new process on a loopback
// port of this process's own (its side API is closed), and tells the new
// process where. It returns the function that closes it.
func (a *App) peerListener(ctx context.Context, link *handover.Link) func() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.log.Warn().Err(err).Msg("handover: no listener for the new process; it stores messages for accounts still here")
		return func() {}
	}
	srv := &http.Server{
		Handler:           api.HandoverHandler(a.cfg.API.Secret, &handoverSide{a: a}, a.log.With().Str("component", "handover").Logger()),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	sctx, cancel := context.WithTimeout(ctx, successorWait)
	defer cancel()
	if err := link.Start(sctx, ln.Addr().String()); err != nil {
		a.log.Warn().Err(err).Msg("handover: the new process does not route to this one; it stores messages for accounts still here")
	}
	return func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(cctx)
	}
}
