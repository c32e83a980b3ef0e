package server

import (
	"fmt"
	"net"
	"sync"
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
type listeners struct {
	mu   sync.Mutex
	open map[string]net.Listener
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
		ln, err := net.Listen(network, a.addr)
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
	return ln, nil
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
