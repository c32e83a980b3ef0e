package main

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// wsConn is one client WebSocket connection on the worker's nbio engine:
// no goroutine and no buffer of its own while idle. Reads are parsed in
// the poller goroutine (onData); writes go straight to nbio, which queues
// only what the socket does not take at once.
type wsConn struct {
	// Static after dial.
	nc      io.WriteCloser // *nbio.Conn, or a *tls.Conn read by its own goroutine (-tls)
	w       *worker
	account string
	slot    int                        // heartbeat slot
	ready   chan error                 // first result of handshake + init (buffered 1)
	key     string                     // handshake key; read only by the poller
	track   atomic.Pointer[pairTrack]  // receiver side of a pairs/offline stream
	pinger  atomic.Pointer[pinger]     // measures this connection's ping round trips (-ping-conns)
	pingAt  atomic.Int64               // send time of the unanswered ping, 0 if none
	sends   atomic.Pointer[pairTrack]  // sender side of a handover stream: its acks
	closeBy atomic.Pointer[closeFrame] // the server's close frame, if one came
	bseen   []uint64                   // broadcasts received, one bit per seq; guarded by worker.bmu

	// Owned by the poller goroutine (onData).
	upgraded bool
	pending  []byte // partial frame carried to the next read
	frag     []byte // fragmented message being assembled

	cfNext atomic.Uint32 // -protocol centrifugo: publish commands sent (their ids follow the handshake's)
	cfSubs atomic.Int32  // -protocol centrifugo: subscriptions answered (ready at 2)

	wmu    sync.Mutex // serialises control-frame writes built in wbuf
	wbuf   []byte
	closed atomic.Bool
	opened atomic.Bool // handshake accepted (counted in open)
	live   atomic.Bool // dial completed (init answered); cleared by the reconnect it triggers
}

var errClosedEarly = errors.New("connection closed before init completed")

// closeFrame is the code and reason of the server's close frame.
type closeFrame struct {
	code   int
	reason string
}

func (c *wsConn) signal(err error) {
	select {
	case c.ready <- err:
	default:
	}
}

// onData is called by the poller with bytes read from the socket.
func (c *wsConn) onData(data []byte) {
	buf := data
	if len(c.pending) > 0 {
		c.pending = append(c.pending, data...)
		buf = c.pending
	}
	if !c.upgraded {
		i := bytes.Index(buf, []byte("\r\n\r\n"))
		if i < 0 {
			if len(buf) > 16<<10 {
				c.fail(errors.New("handshake response over 16 KiB"))
				return
			}
			c.keep(buf)
			return
		}
		if err := checkUpgrade(buf[:i+4], c.key); err != nil {
			c.fail(err)
			return
		}
		c.upgraded = true
		buf = buf[i+4:]
		c.w.afterUpgrade(c)
	}
	for len(buf) > 0 {
		fin, op, payload, n, err := parseFrame(buf)
		if err != nil {
			c.fail(err)
			return
		}
		if n == 0 {
			break
		}
		c.handleFrame(fin, op, payload)
		buf = buf[n:]
	}
	c.keep(buf)
}

// keep stores the unparsed tail; it may alias c.pending, so copy first.
func (c *wsConn) keep(rest []byte) {
	if len(rest) == 0 {
		c.pending = nil
		return
	}
	c.pending = append(make([]byte, 0, len(rest)+512), rest...)
}

func (c *wsConn) handleFrame(fin bool, op byte, payload []byte) {
	switch op {
	case opText, opCont:
		if op == opText && fin && c.frag == nil {
			c.w.onText(c, payload)
			return
		}
		c.frag = append(c.frag, payload...)
		if fin {
			msg := c.frag
			c.frag = nil
			c.w.onText(c, msg)
		}
	case opPing:
		c.writeControl(opPong, payload)
	case opPong:
		c.w.st.pongs.Add(1)
	case opClose:
		cf := &closeFrame{}
		if len(payload) >= 2 {
			cf.code = int(payload[0])<<8 | int(payload[1])
			cf.reason = string(payload[2:])
		}
		c.closeBy.Store(cf)
		c.writeControl(opClose, payload)
		_ = c.nc.Close()
	}
}

// writeControl writes a small control frame (pong, close, ping).
func (c *wsConn) writeControl(op byte, payload []byte) {
	c.wmu.Lock()
	c.wbuf = appendFrame(c.wbuf[:0], op, payload)
	_, _ = c.nc.Write(c.wbuf)
	c.wmu.Unlock()
}

// writeText frames and writes one text message; safe from any goroutine.
func (c *wsConn) writeText(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = appendFrame(c.wbuf[:0], opText, p)
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > 4096 {
		c.wbuf = nil // idle conns keep no big buffer
	}
	return err
}

func (c *wsConn) fail(err error) {
	c.signal(err)
	_ = c.nc.Close()
}
