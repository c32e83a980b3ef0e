package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lesismal/nbio"
)

// connect opens one connection per account, DialConc at a time, each
// bound with init; it returns once every account succeeded or failed.
func (wk *worker) connect(ctx context.Context, accounts []string, ipOffset int) *connResult {
	start := time.Now()
	res := &connResult{}
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(wk.setup.DialConc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := wk.dial(ctx, accounts[i], ipOffset+i)
				mu.Lock()
				if err != nil {
					res.Failed++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				} else {
					res.OK++
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range accounts {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if iw := time.Duration(wk.setup.InitWait); iw > 0 && res.OK > 0 {
		sleepCtx(ctx, iw) // no ping reply from this server: give init time to finish
	}
	res.Nanos = int64(time.Since(start))
	return res
}

// dial connects one account: TCP, handshake, init, then (unless InitWait
// is set) a {"flag":"ping"} whose pong proves init has been handled.
func (wk *worker) dial(ctx context.Context, account string, idx int) error {
	s := wk.setup
	timeout := time.Duration(s.ConnectTimeout)
	d := net.Dialer{Timeout: timeout}
	if len(s.SrcIPs) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(s.SrcIPs[idx%len(s.SrcIPs)])}
		d.Control = bindNoPort
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wk.st.dialed.Add(1)
	fail := func(err error) error {
		wk.st.failed.Add(1)
		return fmt.Errorf("%s: %w", account, err)
	}
	addr := pickAddr(s.Addr, account)
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	req, key, err := upgradeRequest(addr, s.Path)
	if err != nil {
		_ = raw.Close()
		return fail(err)
	}
	c := &wsConn{w: wk, account: account, slot: idx, ready: make(chan error, 1), key: key}
	wk.mu.Lock()
	if t := wk.expect[account]; t != nil {
		c.track.Store(t)
	}
	wk.mu.Unlock()
	if s.TLS {
		if err := wk.startTLS(ctx, c, raw, addr); err != nil {
			return fail(err)
		}
	} else {
		nc, err := nbio.NBConn(raw) // dups the fd and closes raw
		if err != nil {
			_ = raw.Close()
			return fail(err)
		}
		c.nc = nc
		nc.SetSession(c)
		if _, err := wk.engine.AddConn(nc); err != nil {
			_ = nc.Close()
			return fail(err)
		}
	}
	if _, err := c.nc.Write(req); err != nil {
		return fail(err)
	}
	select {
	case err = <-c.ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = c.nc.Close()
		return fail(err)
	}
	wk.mu.Lock()
	wk.conns = append(wk.conns, c)
	wk.byAcct[account] = c
	wk.mu.Unlock()
	c.live.Store(true)
	if c.closed.Load() { // closed before it was counted up: reconnect now
		wk.reconnectAfter(c)
	}
	return nil
}

// afterUpgrade runs in the poller once the handshake is accepted.
func (wk *worker) afterUpgrade(c *wsConn) {
	c.opened.Store(true)
	wk.st.open.Add(1)
	if wk.setup.Proto == protoCentrifugo {
		if err := c.writeText(cfConnectCmd()); err != nil {
			c.signal(err)
		}
		return
	}
	init := fmt.Appendf(nil, `{"flag":"init","from":%q}`, c.account)
	if wk.setup.AckInit {
		init = fmt.Appendf(nil, `{"flag":"init","from":%q,"ack":true}`, c.account)
	}
	if err := c.writeText(init); err != nil {
		c.signal(err)
		return
	}
	if wk.setup.InitWait > 0 {
		c.signal(nil)
		return
	}
	if err := c.writeText([]byte(`{"flag":"ping"}`)); err != nil {
		c.signal(err)
	}
}

// onText handles one complete text message (payload valid for the call).
func (wk *worker) onText(c *wsConn, payload []byte) {
	wk.st.textIn.Add(1)
	if wk.setup.Proto == protoCentrifugo {
		if err := parseCfFrame(payload, func(r *cfReply) { wk.onCentrifugo(c, r) }); err != nil {
			wk.st.unexpected.Add(1)
		}
		return
	}
	var f fields
	if err := scanFields(payload, &f); err != nil {
		wk.st.unexpected.Add(1)
		return
	}
	switch string(f.flag) {
	case "pong":
		wk.st.pongs.Add(1)
		if p := c.pinger.Load(); p != nil {
			p.pong(c, time.Now().UnixNano())
		}
		c.signal(nil)
	case "error":
		wk.st.serverError(f.code, f.message)
	case "ack":
		if t := c.sends.Load(); t != nil && f.cid != nil {
			t.acked(f.cid)
			return
		}
		wk.st.unexpected.Add(1)
	case "all":
		wk.st.bcastIn.Add(1)
		wk.onBroadcast(c, f.content)
	default:
		if t := c.track.Load(); t != nil && f.content != nil {
			wk.st.recv.Add(1)
			t.receive(f.from, f.content)
			if wk.setup.AckInit && f.id != nil {
				c.ackReceived(f.id)
			}
			return
		}
		wk.st.unexpected.Add(1)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

var errNoConn = errors.New("no such connection in this worker")

func (wk *worker) conn(account string) (*wsConn, error) {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	c := wk.byAcct[account]
	if c == nil {
		return nil, fmt.Errorf("%s: %w", account, errNoConn)
	}
	return c, nil
}

// pickAddr chooses the node an account connects to when -addr lists several:
// a hash of the account, so with N nodes about (N-1)/N of the pairs cross nodes.
func pickAddr(addrs, account string) string {
	if !strings.Contains(addrs, ",") {
		return addrs
	}
	list := strings.Split(addrs, ",")
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return list[int(h.Sum32())%len(list)]
}

// startTLS wraps raw in a TLS client (-tls) and reads it from a goroutine of
// its own, feeding the same parser as the nbio path. The client side pays a
// goroutine and a buffer per connection; the server's figures are unaffected.
func (wk *worker) startTLS(ctx context.Context, c *wsConn, raw net.Conn, addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(raw, &tls.Config{ServerName: host, InsecureSkipVerify: wk.setup.Insecure}) //nolint:gosec // -insecure: test certificates
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return fmt.Errorf("tls: %w", err)
	}
	c.nc = tc
	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := tc.Read(buf)
			if n > 0 {
				c.onData(buf[:n])
			}
			if err != nil {
				wk.closed(c)
				_ = tc.Close()
				wk.reconnectAfter(c)
				return
			}
		}
	}()
	return nil
}
