package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
)

// worker owns one process's connections. It is driven by requests from the
// coordinator (runWorker) and by the nbio poller (onData).
type worker struct {
	setup  setupArgs
	engine *nbio.Engine
	st     counters

	mu      sync.Mutex
	conns   []*wsConn
	byAcct  map[string]*wsConn
	expect  map[string]*pairTrack // offline receivers, attached at dial
	offline *flow                 // receiver side of the offline scenario

	bmu   sync.Mutex // guards bcast, bhist, bdup and every wsConn.bseen
	bcast map[int64]*bcastTrack
	bhist hist  // per-connection broadcast latency, first copies only
	bdup  int64 // copies a connection had already received

	ho atomic.Pointer[handover] // handover scenario: reconnects after the server closes
}

// counters are updated from the poller and request goroutines.
type counters struct {
	open, dialed, failed, closed       atomic.Int64
	textIn, pongs, sent, recv, bcastIn atomic.Int64
	unexpected                         atomic.Int64
	restarts, otherCloses              atomic.Int64 // handover scenario
	reconnected, reconnecting          atomic.Int64
	errMu                              sync.Mutex
	errors                             map[string]int64
	errSample                          string
}

func (s *counters) serverError(code, msg []byte) {
	s.errMu.Lock()
	if s.errors == nil {
		s.errors = make(map[string]int64)
	}
	s.errors[string(code)]++
	if s.errSample == "" {
		s.errSample = string(code) + ": " + string(msg)
	}
	s.errMu.Unlock()
}

func (s *counters) snapshot() *status {
	out := &status{
		Open: s.open.Load(), Dialed: s.dialed.Load(), Failed: s.failed.Load(), Closed: s.closed.Load(),
		TextIn: s.textIn.Load(), Pongs: s.pongs.Load(), Sent: s.sent.Load(), Recv: s.recv.Load(),
		BcastIn: s.bcastIn.Load(), Unexpected: s.unexpected.Load(),
		Restarts: s.restarts.Load(), OtherCloses: s.otherCloses.Load(), Reconnected: s.reconnected.Load(),
		Reconnecting: s.reconnecting.Load(),
	}
	s.errMu.Lock()
	if len(s.errors) > 0 {
		out.Errors = make(map[string]int64, len(s.errors))
		for k, v := range s.errors {
			out.Errors[k] = v
		}
	}
	out.ErrSample = s.errSample
	s.errMu.Unlock()
	return out
}

// runWorker serves requests from r until it is closed (the coordinator
// exited or closed our stdin), then closes every connection.
func runWorker(ctx context.Context, r io.Reader, w io.Writer) error {
	wk := &worker{
		byAcct: make(map[string]*wsConn),
		expect: make(map[string]*pairTrack),
		bcast:  make(map[int64]*bcastTrack),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		outMu sync.Mutex
		enc   = json.NewEncoder(w)
		wg    sync.WaitGroup
	)
	reply := func(res response) {
		outMu.Lock()
		_ = enc.Encode(res)
		outMu.Unlock()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("worker: decode request: %w", err)
		}
		if req.Op == "setup" {
			res := response{ID: req.ID}
			if err := wk.start(ctx, req.Args.Setup); err != nil {
				res.Err = err.Error()
			}
			reply(res)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := wk.handle(ctx, req)
			res.ID = req.ID
			reply(res)
		}()
	}
	cancel()
	wg.Wait()
	wk.stop()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("worker: read requests: %w", err)
	}
	return nil
}

func (wk *worker) handle(ctx context.Context, req request) response {
	if wk.engine == nil {
		return response{Err: "worker: setup first"}
	}
	a := req.Args
	switch req.Op {
	case "connect":
		return response{Conn: wk.connect(ctx, a.Accounts, a.IPOffset)}
	case "status":
		return response{Status: wk.st.snapshot()}
	case "bcast_wait":
		return response{Bcast: wk.bcastWait(ctx, a.Seq, time.Duration(a.TimeoutN))}
	case "bcast_total":
		return response{Bcast: wk.bcastTotal()}
	case "bcast_send":
		b, err := wk.bcastSend(a.Account, a.Seq)
		return errResponse(response{Bcast: b}, err)
	case "pairs":
		f, err := wk.runPairs(ctx, a.Pairs, a.Run)
		return errResponse(response{Flow: f}, err)
	case "offline_send":
		f, err := wk.offlineSend(ctx, a.Pairs, a.Run)
		return errResponse(response{Flow: f}, err)
	case "offline_expect":
		wk.offlineExpect(a.Pairs)
		return response{}
	case "offline_wait":
		return response{Flow: wk.offlineWait(ctx, time.Duration(a.TimeoutN))}
	case "ho_start":
		err := wk.hoStart(ctx, a.Pairs, a.Run)
		return errResponse(response{}, err)
	case "ho_stop":
		return response{Ho: wk.hoStop(ctx, time.Duration(a.TimeoutN))}
	case "close":
		wk.closeAll()
		return response{}
	}
	return response{Err: "worker: unknown op " + req.Op}
}

func errResponse(r response, err error) response {
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

func (wk *worker) start(ctx context.Context, s *setupArgs) error {
	if s == nil || wk.engine != nil {
		return fmt.Errorf("worker: bad or repeated setup")
	}
	wk.setup = *s
	e := nbio.NewEngine(nbio.Config{Name: "chatload", NPoller: 1, ReadBufferSize: 64 << 10})
	e.OnData(func(nc *nbio.Conn, data []byte) {
		if c, ok := nc.Session().(*wsConn); ok {
			c.onData(data)
		}
	})
	e.OnClose(func(nc *nbio.Conn, _ error) {
		if c, ok := nc.Session().(*wsConn); ok {
			wk.closed(c)
			wk.reconnectAfter(c)
		}
	})
	if err := e.Start(); err != nil {
		return fmt.Errorf("worker: start engine: %w", err)
	}
	wk.engine = e
	go wk.heartbeat(ctx)
	return nil
}

// closed accounts for a connection the server (or the network) closed.
func (wk *worker) closed(c *wsConn) {
	if c.closed.Swap(true) {
		return
	}
	c.signal(errClosedEarly)
	if cf := c.closeBy.Load(); cf != nil && wk.setup.Proto == protoCentrifugo {
		// Centrifugo says why it disconnects in the close frame (e.g. 3012 no pong).
		wk.st.serverError([]byte("close "+strconv.Itoa(cf.code)), []byte(cf.reason))
	}
	if c.opened.Load() {
		wk.st.open.Add(-1)
		wk.st.closed.Add(1)
	}
}

func (wk *worker) stop() {
	if wk.engine != nil {
		wk.closeAll()
		wk.engine.Stop()
	}
}

func (wk *worker) closeAll() {
	wk.mu.Lock()
	conns := wk.conns
	wk.conns, wk.byAcct = nil, make(map[string]*wsConn)
	wk.mu.Unlock()
	for _, c := range conns {
		_ = c.nc.Close()
	}
}

// heartbeat keeps every connection alive with one ping per period, spread
// over one-second slots so the server sees a steady trickle.
func (wk *worker) heartbeat(ctx context.Context) {
	period := time.Duration(wk.setup.Heartbeat)
	if period <= 0 {
		return
	}
	slots := max(int(period/time.Second), 1)
	t := time.NewTicker(period / time.Duration(slots))
	defer t.Stop()
	appPing := []byte(`{"flag":"ping"}`)
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wk.mu.Lock()
		conns := wk.conns
		wk.mu.Unlock()
		for _, c := range conns {
			if c.slot%slots != tick%slots || c.closed.Load() {
				continue
			}
			if wk.setup.AppHeartbeat {
				_ = c.writeText(appPing)
			} else {
				c.writeControl(opPing, nil)
			}
		}
	}
}
