// Package faultproxy is a TCP proxy that injects the faults a dependency shows in
// production: it can pass traffic, cut it (close every connection and refuse new
// ones), black-hole it (connections stay open and nothing arrives, as in a network
// partition; what was held is forwarded once the fault heals, as TCP would
// retransmit it), or delay every chunk by a fixed time (a slow answer that still
// does the work). Tests and the fault campaign put one in front of MySQL or Redis.
package faultproxy

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Mode is the fault the proxy injects.
type Mode int

// The modes.
const (
	Pass      Mode = iota // forward everything
	Cut                   // close every connection, refuse new ones
	Blackhole             // hold every chunk until the mode changes
	Delay                 // forward every chunk after the configured delay
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Cut:
		return "cut"
	case Blackhole:
		return "blackhole"
	case Delay:
		return "delay"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Proxy forwards connections from its listener to one target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced at every mode change
	links   map[*link]struct{}
	closed  bool
	wg      sync.WaitGroup
}

type link struct{ client, server net.Conn }

func (l *link) close() {
	_ = l.client.Close()
	_ = l.server.Close()
}

// Start listens on a loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	return Listen("127.0.0.1:0", target)
}

// Listen listens on addr (host:port) and forwards to target.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen %s: %w", addr, err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address (host:port) for clients.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set switches the mode; delay is used by Delay only. Cut closes every open
// connection at once.
func (p *Proxy) Set(m Mode, delay time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, delay
	close(p.changed)
	p.changed = make(chan struct{})
	var cut []*link
	if m == Cut {
		for l := range p.links {
			cut = append(cut, l)
			delete(p.links, l)
		}
	}
	p.mu.Unlock()
	for _, l := range cut {
		l.close()
	}
}

// Close stops the listener and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := p.links
	p.links = map[*link]struct{}{}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	err := p.ln.Close()
	for l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.closed || p.mode == Cut
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		if p.closed || p.mode == Cut {
			p.mu.Unlock()
			l.close()
			continue
		}
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, c, s)
		go p.pipe(l, s, c)
	}
}

// chunk is data read at a time, forwarded according to the mode.
type chunk struct {
	data []byte
	read time.Time
}

// pipe copies src to dst chunk by chunk. A reader goroutine takes chunks off the
// socket as they come, so that a held or delayed direction still reads (as a
// kernel would buffer) and the order of chunks is kept.
func (p *Proxy) pipe(l *link, src, dst net.Conn) {
	defer p.wg.Done()
	chunks := make(chan chunk, 1024)
	// On the way out: close the link (which ends the reader), then let the
	// reader finish so that it never blocks on a full channel.
	defer func() {
		for range chunks {
		}
	}()
	defer p.drop(l)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{data: buf[:n], read: time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range chunks {
		if !p.wait(ch.read) {
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			return
		}
	}
	// src closed: pass the half-close on.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// wait holds a chunk read at `read` until the mode lets it through; false means
// the link is gone.
func (p *Proxy) wait(read time.Time) bool {
	for {
		p.mu.Lock()
		mode, delay, changed, closed := p.mode, p.delay, p.changed, p.closed
		p.mu.Unlock()
		switch {
		case closed || mode == Cut:
			return false
		case mode == Pass:
			return true
		case mode == Delay:
			d := time.Until(read.Add(delay))
			if d <= 0 {
				return true
			}
			select {
			case <-time.After(d):
				return true
			case <-changed:
			}
		default: // Blackhole
			<-changed
		}
	}
}

func (p *Proxy) drop(l *link) {
	p.mu.Lock()
	_, ok := p.links[l]
	delete(p.links, l)
	p.mu.Unlock()
	if ok {
		l.close()
	}
}
