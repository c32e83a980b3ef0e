package server

import (
	"fmt"
	"net"
	"sync"

	"chatserver/internal/reuseport"
)

// listeners are the sockets Start opens before the engine starts; the engine
// takes them through its Listen hook instead of opening its own.
//
// Why: when nbio (v1.6.12) fails to open its second listener it closes the
// first without marking itself shut down, so that listener's accept loop spins
// on the closed socket forever and the engine's Stop waits for it forever: a
// second server on a busy port hung at full CPU and said nothing. With every
// socket open before the engine starts, a busy address is an error returned by
// Start, and the engine is never started or stopped half-way.
//
// With share (server.reuse_port) the sockets carry SO_REUSEPORT, so that the
// next version of the server can start on the same port beside this one
// (README "Upgrades").
type listeners struct {
	mu     sync.Mutex
	open   map[string]net.Listener
	taken  []*parkingListener // handed to the engine; StopAccepting closes them
	share  bool
	parked bool // StopAccepting ran: a listener taken later is closed at once
}

// openAll listens on each address (name says which setting it came from, for
// the error) and returns the bound addresses, in order; or it closes what it
// opened and fails. Sockets are kept by bound address, which tells two ":0"
// apart.
func (l *listeners) openAll(network string, addrs []namedAddr) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open = make(map[string]net.Listener, len(addrs))
	bound := make([]string, 0, len(addrs))
	for _, a := range addrs {
		ln, err := reuseport.Listen(network, a.addr, l.share)
		if err != nil {
			l.closeLocked()
			return nil, fmt.Errorf("server: %s %s: %w", a.name, a.addr, err)
		}
		l.open[ln.Addr().String()] = ln
		bound = append(bound, ln.Addr().String())
	}
	return bound, nil
}

// take hands the engine the socket opened for addr (nbio's Listen hook).
func (l *listeners) take(_, addr string) (net.Listener, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln, ok := l.open[addr]
	if !ok {
		return nil, fmt.Errorf("server: %s was not opened before the engine started", addr)
	}
	delete(l.open, addr)
	p := newParkingListener(ln)
	l.taken = append(l.taken, p)
	if l.parked {
		p.park()
	}
	return p, nil
}

// stopAccepting closes the listening sockets the engine serves, so that the
// kernel sends new connections to the other processes on the port (or refuses
// them), while the engine and its connections keep running.
func (l *listeners) stopAccepting() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parked = true
	for _, p := range l.taken {
		p.park()
	}
}

// closeAll closes the sockets the engine has not taken.
func (l *listeners) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked()
}

func (l *listeners) closeLocked() {
	for a, ln := range l.open {
		_ = ln.Close()
		delete(l.open, a)
	}
}

type namedAddr struct{ name, addr string }

// parkingListener is a listener whose socket can be closed while nbio's accept
// loop goes on: nbio (v1.6.12) loops on Accept until the engine is shut down,
// and an Accept that fails at once, as on a closed socket, would spin that
// loop at full CPU. Once parked, Accept waits instead, until the engine's own
// shutdown closes the listener.
type parkingListener struct {
	net.Listener
	parked    chan struct{} // closed by park
	closed    chan struct{} // closed by Close
	parkOnce  sync.Once
	closeOnce sync.Once
}

func newParkingListener(ln net.Listener) *parkingListener {
	return &parkingListener{Listener: ln, parked: make(chan struct{}), closed: make(chan struct{})}
}

// park closes the socket; the engine keeps its accept loop, now idle.
func (p *parkingListener) park() {
	p.parkOnce.Do(func() {
		close(p.parked)
		_ = p.Listener.Close()
	})
}

func (p *parkingListener) Accept() (net.Conn, error) {
	c, err := p.Listener.Accept()
	if err == nil {
		return c, nil
	}
	select {
	case <-p.parked:
		<-p.closed // until the engine shuts down
		return nil, net.ErrClosed
	default:
		return nil, err
	}
}

// Close is the engine's: it ends a parked Accept too.
func (p *parkingListener) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	p.park()
	return nil
}
