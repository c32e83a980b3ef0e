package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The workload's timings: clients ping every pingEvery and call a connection
// dead after deadAfter without any frame (a frozen node answers nothing).
const (
	pingEvery   = time.Second
	deadAfter   = 5 * time.Second
	resendAfter = 8 * time.Second // an unacknowledged message this old: reconnect and resend
)

// role is what a client does.
type role struct {
	ack      bool          // init with "ack":true, cid on every msg, acks what it receives
	to       string        // one-to-one recipient of what it sends ("" = sends nothing)
	group    string        // group it sends to
	rate     time.Duration // time between its messages
	churn    bool          // disconnects now and then (clean close or TCP reset after a push)
	idPrefix string        // "m", "g" or "l"
}

// outMsg is a message a sender has not seen acknowledged yet.
type outMsg struct {
	seq      int
	id       string
	frame    []byte
	lastSent time.Time
	failed   bool // refused with a transient error: send again
}

// client is one account with one connection at a time.
type client struct {
	acct string
	role role
	s    *setup
	rng  *rand.Rand // owned by the client's goroutine

	stopSend   <-chan struct{} // no new messages after this
	reconnectC chan struct{}   // ask for a fresh connection (and init)

	mu      sync.Mutex
	unacked []*outMsg
	seq     int
	conns   int
	lastRx  time.Time
	online  bool
	resetAt bool // reset the connection right after the next push
}

func newClient(s *setup, acct string, r role, seed uint64, stopSend <-chan struct{}) *client {
	return &client{acct: acct, role: r, s: s, rng: rand.New(rand.NewPCG(seed, uint64(len(acct))<<32|uint64(acct[len(acct)-1]))),
		stopSend: stopSend, reconnectC: make(chan struct{}, 1)}
}

// pending is how many of its messages wait for an acknowledgement.
func (c *client) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unacked)
}

func (c *client) lastReceive() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastRx
}

func (c *client) isOnline() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online
}

// reconnect asks for a new connection and init.
func (c *client) reconnect() {
	select {
	case c.reconnectC <- struct{}{}:
	default:
	}
}

// run connects, reconnects and sends until ctx ends.
func (c *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		node := c.rng.IntN(len(c.s.nodes))
		reason := c.session(ctx, node)
		if ctx.Err() != nil {
			return
		}
		// A short pause, as a real client's back-off, before the next node.
		pause := time.Duration(100+c.rng.IntN(700)) * time.Millisecond
		if strings.HasPrefix(reason, "dial") {
			pause += 300 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// session is one connection: dial, init, wait for the pong that follows init,
// then send, ack and ping until it ends. It returns why it ended.
func (c *client) session(ctx context.Context, node int) string {
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second, NetDialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext}
	dctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	ws, _, err := d.DialContext(dctx, "ws://"+c.s.nodes[node].wsAddr+"/ws", nil)
	cancel()
	if err != nil {
		return "dial: " + err.Error()
	}
	c.mu.Lock()
	c.conns++
	connN := c.conns
	c.online = false
	c.mu.Unlock()
	conn := &wsConn{ws: ws}
	c.s.rec.Add(Event{Kind: evOpen, Client: c.acct, Conn: connN, Node: node})
	defer func() {
		c.mu.Lock()
		c.online = false
		c.mu.Unlock()
		_ = ws.Close()
	}()
	initFrame := map[string]any{"flag": "init", "from": c.acct}
	if c.role.ack {
		initFrame["ack"] = true
	}
	b, _ := json.Marshal(initFrame)
	if err := conn.write(b); err != nil {
		return c.ended(node, connN, "write init: "+err.Error())
	}
	if err := conn.write([]byte(`{"flag":"ping"}`)); err != nil {
		return c.ended(node, connN, "write ping: "+err.Error())
	}
	readDone := make(chan string, 1)
	onlineC := make(chan struct{})
	go func() { readDone <- c.read(conn, node, connN, onlineC) }()

	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	var sendC <-chan time.Time
	if c.role.to != "" || c.role.group != "" {
		t := time.NewTicker(c.role.rate)
		defer t.Stop()
		sendC = t.C
	}
	var churnC <-chan time.Time
	if c.role.churn {
		churnC = time.After(time.Duration(5+c.rng.IntN(16)) * time.Second)
	}
	lastResync := time.Now()
	online := false
	for {
		select {
		case <-ctx.Done():
			_ = conn.closeClean()
			<-readDone
			return c.ended(node, connN, "stopped")
		case why := <-readDone:
			return c.ended(node, connN, why)
		case <-c.reconnectC:
			_ = conn.closeClean()
			<-readDone
			return c.ended(node, connN, "asked to reconnect")
		case <-onlineC:
			onlineC = nil
			online = true
			if err := c.resendAll(conn, node, connN); err != nil {
				_ = ws.Close()
				return c.ended(node, connN, <-readDone)
			}
		case <-ping.C:
			if err := conn.write([]byte(`{"flag":"ping"}`)); err != nil {
				_ = ws.Close()
				return c.ended(node, connN, <-readDone)
			}
			if online && c.needsResync() && time.Since(lastResync) > 3*time.Second {
				// What was refused or never acknowledged goes again, first and
				// in order, on a fresh connection (as chat.umd.js does).
				_ = conn.closeClean()
				<-readDone
				return c.ended(node, connN, "resync: unacknowledged messages")
			}
		case <-sendC:
			select {
			case <-c.stopSend:
				sendC = nil
				continue
			default:
			}
			if err := c.sendNew(conn, node, connN, online); err != nil {
				_ = ws.Close()
				return c.ended(node, connN, <-readDone)
			}
		case <-churnC:
			churnC = nil
			if c.rng.IntN(2) == 0 {
				_ = conn.closeClean()
				<-readDone
				return c.ended(node, connN, "churn: clean close")
			}
			c.mu.Lock()
			c.resetAt = true // the reader resets the connection after the next push
			c.mu.Unlock()
		}
	}
}

func (c *client) ended(node, connN int, why string) string {
	c.s.rec.Add(Event{Kind: evDisconnect, Client: c.acct, Conn: connN, Node: node, Detail: why})
	return why
}

// read handles every frame of one connection; it returns why the connection
// ended.
func (c *client) read(conn *wsConn, node, connN int, onlineC chan struct{}) string {
	for {
		_ = conn.ws.SetReadDeadline(time.Now().Add(deadAfter))
		_, data, err := conn.ws.ReadMessage()
		if err != nil {
			return "read: " + err.Error()
		}
		var f struct {
			Flag    string `json:"flag"`
			From    string `json:"from"`
			Content string `json:"content"`
			Group   string `json:"group"`
			ID      string `json:"id"`
			CID     string `json:"cid"`
			Status  string `json:"status"`
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			c.s.note("%s: unparsable frame %q", c.acct, data)
			continue
		}
		now := time.Now()
		switch f.Flag {
		case "pong":
			if onlineC != nil {
				c.mu.Lock()
				c.online = true
				c.mu.Unlock()
				c.s.rec.Add(Event{Kind: evConnect, Client: c.acct, Conn: connN, Node: node})
				close(onlineC)
				onlineC = nil
			}
		case "ack":
			c.acked(f.CID, f.ID, f.Status, node)
		case "error":
			c.refused(f.CID, f.Code, f.Message, node, connN)
		case "":
			c.mu.Lock()
			c.lastRx = now
			reset := c.resetAt
			c.resetAt = false
			c.mu.Unlock()
			c.s.rec.Add(Event{T: now, Kind: evRecv, Client: c.acct, Conn: connN, Node: node, ID: f.Content, From: f.From, Group: f.Group, MsgID: f.ID, Legacy: !c.role.ack})
			if reset {
				conn.reset()
				return "churn: TCP reset right after a push"
			}
			if c.role.ack && f.ID != "" {
				if err := conn.write([]byte(`{"flag":"ack","id":` + quoteJSON(f.ID) + `}`)); err != nil {
					return "write ack: " + err.Error()
				}
			}
		default:
			c.s.note("%s: unexpected frame %s", c.acct, data)
		}
	}
}

func (c *client) acked(cid, id, status string, node int) {
	c.mu.Lock()
	for i, m := range c.unacked {
		if m.id == cid {
			c.unacked = append(c.unacked[:i], c.unacked[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	c.s.rec.Add(Event{Kind: evAck, Client: c.acct, Node: node, ID: cid, MsgID: id, Status: status})
}

func (c *client) refused(cid, code, msg string, node, connN int) {
	if cid == "" {
		c.s.rec.Add(Event{Kind: evNote, Client: c.acct, Conn: connN, Node: node, Code: code, Detail: "error frame: " + msg})
		return
	}
	c.mu.Lock()
	for _, m := range c.unacked {
		if m.id == cid {
			m.failed = true
		}
	}
	c.mu.Unlock()
	c.s.rec.Add(Event{Kind: evSendError, Client: c.acct, Conn: connN, Node: node, ID: cid, Code: code, Detail: msg})
}

func (c *client) needsResync() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.unacked {
		if m.failed || time.Since(m.lastSent) > resendAfter {
			return true
		}
	}
	return false
}

// sendNew makes the next message; it is written now if the connection is
// online, else it waits in order for the next init.
func (c *client) sendNew(conn *wsConn, node, connN int, online bool) error {
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	id := fmt.Sprintf("%s:%s:%d", c.role.idPrefix, c.acct, seq)
	flag, to := "msg", c.role.to
	if c.role.group != "" {
		flag, to = "group", c.role.group
	}
	fields := `{"flag":"` + flag + `","from":` + quoteJSON(c.acct) + `,"to":` + quoteJSON(to) + `,"content":` + quoteJSON(id)
	if !c.role.ack {
		if !online {
			return nil // a legacy client has nowhere to keep it
		}
		c.s.rec.Add(Event{Kind: evSend, Client: c.acct, Conn: connN, Node: node, ID: id, To: c.role.to, Group: c.role.group, Legacy: true})
		return conn.write([]byte(fields + `}`))
	}
	m := &outMsg{seq: seq, id: id, frame: []byte(fields + `,"cid":` + quoteJSON(id) + `}`)}
	c.mu.Lock()
	c.unacked = append(c.unacked, m)
	c.mu.Unlock()
	if !online {
		return nil
	}
	return c.write(conn, m, node, connN)
}

func (c *client) write(conn *wsConn, m *outMsg, node, connN int) error {
	c.mu.Lock()
	m.lastSent, m.failed = time.Now(), false
	c.mu.Unlock()
	c.s.rec.Add(Event{Kind: evSend, Client: c.acct, Conn: connN, Node: node, ID: m.id, To: c.role.to, Group: c.role.group})
	return conn.write(m.frame)
}

// resendAll writes every unacknowledged message, in order, same cid.
func (c *client) resendAll(conn *wsConn, node, connN int) error {
	c.mu.Lock()
	todo := append([]*outMsg(nil), c.unacked...)
	c.mu.Unlock()
	for _, m := range todo {
		if err := c.write(conn, m, node, connN); err != nil {
			return err
		}
	}
	return nil
}

// wsConn serializes writes on a gorilla connection.
type wsConn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func (w *wsConn) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.ws.SetWriteDeadline(time.Now().Add(3 * time.Second))
	return w.ws.WriteMessage(websocket.TextMessage, b)
}

func (w *wsConn) closeClean() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return w.ws.Close()
}

// reset closes with SO_LINGER 0: the peer sees a TCP RST, not a close.
func (w *wsConn) reset() {
	if tc, ok := w.ws.UnderlyingConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = w.ws.Close()
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// apiPusher sends one-to-one messages through the side API of a random node;
// the answer (pushed or stored) is the acknowledgement.
type apiPusher struct {
	from, to string
	s        *setup
	rng      *rand.Rand
	rate     time.Duration
}

func (p *apiPusher) run(ctx context.Context, stopSend <-chan struct{}) {
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-stopSend:
			return
		case <-time.After(p.rate):
		}
		node := p.rng.IntN(len(p.s.nodes))
		id := fmt.Sprintf("a:%s:%d", p.from, seq)
		body := `{"from":` + quoteJSON(p.from) + `,"to":` + quoteJSON(p.to) + `,"content":` + quoteJSON(id) + `}`
		p.s.rec.Add(Event{Kind: evSend, Client: p.from, Node: node, ID: id, To: p.to})
		code, resp, err := p.s.api(ctx, node, http.MethodPost, "/api/push", body, 8*time.Second)
		switch {
		case err != nil:
			p.s.rec.Add(Event{Kind: evSendError, Client: p.from, Node: node, ID: id, Code: "no_answer", Uncertain: true, Detail: err.Error()})
		case code != http.StatusOK:
			p.s.rec.Add(Event{Kind: evSendError, Client: p.from, Node: node, ID: id, Code: fmt.Sprintf("http_%d", code), Detail: strings.TrimSpace(resp)})
		default:
			var r struct {
				Status string `json:"status"`
			}
			_ = json.Unmarshal([]byte(resp), &r)
			p.s.rec.Add(Event{Kind: evAck, Client: p.from, Node: node, ID: id, Status: r.Status})
		}
	}
}
