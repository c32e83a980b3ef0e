package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// workerProc is the coordinator's handle on one worker process.
type workerProc struct {
	idx    int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	wmu    sync.Mutex // serialises request lines
	enc    *json.Encoder
	nextID atomic.Int64

	mu      sync.Mutex // guards pending and dead
	pending map[int64]chan response
	dead    error
	exited  chan struct{}
}

// pool is the set of worker processes of one run.
type pool struct {
	procs []*workerProc
}

// startPool re-executes this binary as n workers ("chatload -worker").
func startPool(ctx context.Context, n int, stderr io.Writer) (*pool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("pool: find executable: %w", err)
	}
	p := &pool{}
	for i := range n {
		wp, err := startWorker(ctx, exe, i, stderr)
		if err != nil {
			p.stop()
			return nil, err
		}
		p.procs = append(p.procs, wp)
	}
	return p, nil
}

func startWorker(ctx context.Context, exe string, idx int, stderr io.Writer) (*workerProc, error) {
	cmd := exec.CommandContext(ctx, exe, "-worker")
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("pool: worker %d stdin: %w", idx, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("pool: worker %d stdout: %w", idx, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pool: start worker %d: %w", idx, err)
	}
	wp := &workerProc{
		idx: idx, cmd: cmd, stdin: in, enc: json.NewEncoder(in),
		pending: make(map[int64]chan response), exited: make(chan struct{}),
	}
	go wp.readLoop(out)
	return wp, nil
}

func (wp *workerProc) readLoop(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var res response
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			continue
		}
		wp.mu.Lock()
		ch := wp.pending[res.ID]
		delete(wp.pending, res.ID)
		wp.mu.Unlock()
		if ch != nil {
			ch <- res
		}
	}
	err := wp.cmd.Wait()
	wp.mu.Lock()
	wp.dead = fmt.Errorf("worker %d exited: %v", wp.idx, err)
	for id, ch := range wp.pending {
		ch <- response{ID: id, Err: wp.dead.Error()}
		delete(wp.pending, id)
	}
	wp.mu.Unlock()
	close(wp.exited)
}

// call sends one request and waits for its response.
func (wp *workerProc) call(ctx context.Context, op string, a args) (response, error) {
	id := wp.nextID.Add(1)
	ch := make(chan response, 1)
	wp.mu.Lock()
	if wp.dead != nil {
		wp.mu.Unlock()
		return response{}, wp.dead
	}
	wp.pending[id] = ch
	wp.mu.Unlock()
	wp.wmu.Lock()
	err := wp.enc.Encode(request{ID: id, Op: op, Args: a})
	wp.wmu.Unlock()
	if err != nil {
		return response{}, fmt.Errorf("worker %d: send %s: %w", wp.idx, op, err)
	}
	select {
	case res := <-ch:
		if res.Err != "" {
			return res, fmt.Errorf("worker %d: %s: %s", wp.idx, op, res.Err)
		}
		return res, nil
	case <-ctx.Done():
		wp.mu.Lock()
		delete(wp.pending, id)
		wp.mu.Unlock()
		return response{}, fmt.Errorf("worker %d: %s: %w", wp.idx, op, ctx.Err())
	}
}

// all runs fn for every worker concurrently and joins the errors.
func (p *pool) all(fn func(i int, wp *workerProc) error) error {
	errs := make([]error, len(p.procs))
	var wg sync.WaitGroup
	for i, wp := range p.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, wp)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// status sums the workers' counters.
func (p *pool) status(ctx context.Context) (*status, error) {
	sts := make([]*status, len(p.procs))
	err := p.all(func(i int, wp *workerProc) error {
		res, err := wp.call(ctx, "status", args{})
		sts[i] = res.Status
		return err
	})
	sum := &status{}
	for _, s := range sts {
		if s != nil {
			sum.add(s)
		}
	}
	return sum, err
}

func (s *status) add(o *status) {
	s.Open += o.Open
	s.Dialed += o.Dialed
	s.Failed += o.Failed
	s.Closed += o.Closed
	s.TextIn += o.TextIn
	s.Pongs += o.Pongs
	s.Sent += o.Sent
	s.Recv += o.Recv
	s.BcastIn += o.BcastIn
	s.Unexpected += o.Unexpected
	s.Restarts += o.Restarts
	s.OtherCloses += o.OtherCloses
	s.Reconnected += o.Reconnected
	s.Reconnecting += o.Reconnecting
	for k, v := range o.Errors {
		if s.Errors == nil {
			s.Errors = make(map[string]int64)
		}
		s.Errors[k] += v
	}
	if s.ErrSample == "" {
		s.ErrSample = o.ErrSample
	}
}

// stop closes the workers' stdin (they close their connections and exit)
// and waits for them; the process context kills any that hang.
func (p *pool) stop() {
	for _, wp := range p.procs {
		_ = wp.stdin.Close()
	}
	deadline := time.After(15 * time.Second)
	expired := false
	for _, wp := range p.procs {
		if !expired {
			select {
			case <-wp.exited:
				continue
			case <-deadline:
				expired = true
			}
		}
		_ = wp.cmd.Process.Kill()
		<-wp.exited
	}
}
