package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/internal/servicetest"
)

// TestHandoverMovesEveryClient: process A serves 200 clients: 100 senders
// streaming messages with cids to 100 receivers that acknowledge what they
// get. Process B starts beside A on the same ports, then A gets SIGUSR2. Every
// client is closed by A once, with 1012 and the reconnect window, in batches
// spread at server.handover_rate; each reconnects (after a random moment in
// the window, as the JavaScript library does) and lands on B; A exits. Every
// message the server acknowledged to its sender reaches its receiver, live
// or from B's init drain; none is lost.
func TestHandoverMovesEveryClient(t *testing.T) {
	t.Parallel()
	bin := buildServer(t)
	for _, backend := range handoverBackends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := []string{
				"CHAT_SERVER_ADDR=" + freeLoopbackAddr(t), "CHAT_API_ADDR=" + freeLoopbackAddr(t),
				"CHAT_API_SECRET=" + testAPISecret, "CHAT_LIMITS_FRAMES_PER_SECOND=0", "CHAT_LOG_LEVEL=info",
				"CHAT_SERVER_HANDOVER_RATE=" + strconv.Itoa(handoverRate), "CHAT_SERVER_SHUTDOWN_TIMEOUT=20s",
				// The same id for both: the new process takes the other one itself.
				"CHAT_NODE=handover-" + servicetest.Unique(),
			}
			switch backend {
			case "embedded":
				env = append(env, "CHAT_EMBEDDED_PATH="+filepath.Join(t.TempDir(), "chat.db"))
			default:
				_, prefix := servicetest.Redis(t)
				env = append(env, "CHAT_MYSQL_DSN="+servicetest.MySQLDSN(t), "CHAT_REDIS_ADDR="+servicetest.RedisAddr(t),
					"CHAT_REDIS_KEY_PREFIX="+prefix, "CHAT_OFFLINE_SPOOL_PATH="+filepath.Join(t.TempDir(), "spool.db"))
				if backend == "cluster" {
					env = append(env, "CHAT_CLUSTER_ENABLED=true")
				}
			}
			handoverRun(t, bin, env)
		})
	}
}

// handoverBackends: the embedded default, Redis + MariaDB on one node, and
// the same as a cluster (the new process is then one more node).
var handoverBackends = append(append([]string(nil), backends...), "cluster")

const (
	handoverRate  = 100 // connections closed a second: 200 take 2 s
	handoverPairs = 100
)

func handoverRun(t *testing.T, bin string, env []string) {
	addr := envValue(env, "CHAT_SERVER_ADDR")
	a := startProc(t, bin, env, addr)
	waitLog(t, a, "chat server listening")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	url := "ws://" + addr + "/"
	var clients []*hoClient
	var receivers, senders []*hoClient
	for i := range handoverPairs {
		r := &hoClient{url: url, account: fmt.Sprintf("r%d", i), acking: true}
		s := &hoClient{url: url, account: fmt.Sprintf("s%d", i), to: r.account}
		receivers, senders = append(receivers, r), append(senders, s)
		clients = append(clients, r, s)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		if err := c.connect(); err != nil {
			t.Fatalf("%s: connect to A: %v", c.account, err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.run(ctx) }()
	}
	t.Cleanup(func() {
		stop()
		for _, c := range clients {
			c.closeNow()
		}
		wg.Wait()
	})
	sending, stopSending := context.WithCancel(ctx)
	for _, s := range senders {
		wg.Add(1)
		go func() { defer wg.Done(); s.stream(sending, 50*time.Millisecond) }()
	}
	time.Sleep(500 * time.Millisecond) // messages flowing on A

	b := startProc(t, bin, env, addr)
	waitLog(t, b, "chat server listening")
	if envValue(env, "CHAT_REDIS_ADDR") != "" {
		// Sharing Redis, the new process must not take the old one's node id.
		if id := envValue(env, "CHAT_NODE") + "~2"; !strings.Contains(b.tail(), `"node":"`+id+`"`) {
			t.Fatalf("the new process did not take node id %s beside the old one; log:\n%s", id, b.tail())
		}
	}
	signalled := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }()
	select {
	case err := <-exited:
		a.cmd = nil // waited for: the cleanup must not kill it again
		if err != nil {
			t.Fatalf("A exited with %v after its handover; log:\n%s", err, a.tail())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("A still runs 60 s after SIGUSR2; log:\n%s", a.tail())
	}
	t.Logf("A handed over and exited %v after SIGUSR2", time.Since(signalled).Round(time.Millisecond))
	time.Sleep(time.Second) // messages flowing on B
	stopSending()

	// Every client was closed once by A, with 1012 and the window, and is
	// back (on B: A is gone).
	var closes []time.Time
	for _, c := range clients {
		c.mu.Lock()
		got := append([]hoClose(nil), c.closes...)
		c.mu.Unlock()
		if len(got) != 1 || got[0].code != 1012 || !strings.HasPrefix(got[0].reason, "service restart; reconnect within ") {
			t.Fatalf("%s was closed %v; want once, with 1012 and the reconnect window", c.account, got)
		}
		closes = append(closes, got[0].at)
	}
	eventually(t, "every client back and bound on B", func() bool {
		for _, c := range clients {
			if !c.online() {
				return false
			}
		}
		return true
	})
	if n := apiConnections(t, envValue(env, "CHAT_API_ADDR")); n != len(clients) {
		t.Fatalf("B has %d connections; want all %d clients", n, len(clients))
	}

	// Paced: at handoverRate a second, not all at once. Lower bounds only: a
	// slow machine spreads them further.
	sort.Slice(closes, func(i, j int) bool { return closes[i].Before(closes[j]) })
	want := time.Duration(len(clients)) * time.Second / handoverRate
	if span := closes[len(closes)-1].Sub(closes[0]); span < want/2 {
		t.Fatalf("the %d closes spread over %v; at %d/s they take %v", len(closes), span, handoverRate, want)
	}
	early := 0
	for _, at := range closes {
		if at.Sub(closes[0]) < 100*time.Millisecond {
			early++
		}
	}
	if early > handoverRate*3/10 {
		t.Fatalf("%d of %d clients closed within 100 ms of the first; want batches at %d/s", early, len(closes), handoverRate)
	}

	// Nothing acknowledged is lost: every sender hears an ack for every
	// message (it resends the unacknowledged ones on B), and each receiver
	// gets every one its sender had acknowledged.
	eventually(t, "every message acknowledged to its sender", func() bool {
		for _, s := range senders {
			if s.unackedCount() > 0 {
				return false
			}
		}
		return true
	})
	total, dups := 0, 0
	for i, s := range senders {
		r := receivers[i]
		acked := s.ackedSeqs()
		total += len(acked)
		deadline := time.Now().Add(15 * time.Second)
		for {
			missing := r.missing(acked)
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s -> %s: %d acknowledged messages never arrived (first %v)", s.account, r.account, len(missing), missing[:min(5, len(missing))])
			}
			time.Sleep(50 * time.Millisecond)
		}
		dups += r.duplicates()
	}
	if total < handoverPairs*20 {
		t.Fatalf("only %d messages were acknowledged; the senders did not stream", total)
	}
	t.Logf("%d messages acknowledged and received across the handover (%d repeats dropped by id)", total, dups)
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// hoClient is one chat client that reconnects when the server closes it, as
// the JavaScript library does: after a 1012 at a random moment within the
// window the reason gives, otherwise after a short pause. A sender streams
// messages with cids and writes the unacknowledged ones again, first, on each
// new connection; a receiver acknowledges what it gets and drops repeats by
// id.
type hoClient struct {
	url, account, to string
	acking           bool

	wmu sync.Mutex // guards ws writes and ws
	ws  *websocket.Conn

	mu      sync.Mutex
	closes  []hoClose
	bound   bool
	nextSeq int
	unacked map[int]bool // sender: sent, not acknowledged
	acked   map[int]bool
	got     map[int]bool // receiver: contents received
	ids     map[string]bool
	repeats int
}

type hoClose struct {
	at     time.Time
	code   int
	reason string
}

var windowRe = regexp.MustCompile(`reconnect within (\d+) ms`)

func (c *hoClient) connect() error {
	ws, _, err := websocket.DefaultDialer.Dial(c.url, nil)
	if err != nil {
		return err
	}
	init := map[string]any{"flag": "init", "from": c.account}
	if c.acking {
		init["ack"] = true
	}
	b, _ := json.Marshal(init)
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		_ = ws.Close()
		return err
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"flag":"ping"}`)); err != nil {
		_ = ws.Close()
		return err
	}
	c.wmu.Lock()
	c.ws = ws
	c.wmu.Unlock()
	return nil
}

// run reads until ctx ends, reconnecting whenever the connection ends.
func (c *hoClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.wmu.Lock()
		ws := c.ws
		c.wmu.Unlock()
		err := c.read(ws)
		c.mu.Lock()
		c.bound = false
		c.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		wait := 200 * time.Millisecond
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			c.mu.Lock()
			c.closes = append(c.closes, hoClose{time.Now(), ce.Code, ce.Text})
			c.mu.Unlock()
			if m := windowRe.FindStringSubmatch(ce.Text); ce.Code == 1012 && m != nil {
				ms, _ := strconv.Atoi(m[1])
				wait = time.Duration(rand.IntN(ms+1)) * time.Millisecond
			}
		} else {
			c.mu.Lock()
			c.closes = append(c.closes, hoClose{time.Now(), 0, err.Error()})
			c.mu.Unlock()
		}
		for ctx.Err() == nil {
			sleepCtx(ctx, wait)
			if c.connect() == nil {
				break
			}
			wait = 200 * time.Millisecond
		}
	}
}

func (c *hoClient) read(ws *websocket.Conn) error {
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		var f map[string]any
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch {
		case f["flag"] == "pong":
			c.mu.Lock()
			first := !c.bound
			c.bound = true
			c.mu.Unlock()
			if first && c.to != "" {
				c.resend(ws)
			}
		case f["flag"] == "ack" && f["cid"] != nil:
			seq, _ := strconv.Atoi(fmt.Sprint(f["cid"]))
			c.mu.Lock()
			if c.unacked[seq] {
				delete(c.unacked, seq)
				c.acked[seq] = true
			}
			c.mu.Unlock()
		case f["content"] != nil && f["from"] != nil:
			seq, _ := strconv.Atoi(fmt.Sprint(f["content"]))
			id := fmt.Sprint(f["id"])
			c.mu.Lock()
			if c.ids == nil {
				c.ids, c.got = map[string]bool{}, map[int]bool{}
			}
			if c.ids[id] {
				c.repeats++
			}
			c.ids[id] = true
			c.got[seq] = true
			c.mu.Unlock()
			if c.acking {
				c.write(ws, map[string]any{"flag": "ack", "id": id})
			}
		}
	}
}

// resend writes the unacknowledged messages again, oldest first, on a new
// connection (same cid: the server acknowledges it without a second copy).
func (c *hoClient) resend(ws *websocket.Conn) {
	c.mu.Lock()
	var seqs []int
	for s := range c.unacked {
		seqs = append(seqs, s)
	}
	c.mu.Unlock()
	sort.Ints(seqs)
	for _, s := range seqs {
		c.write(ws, c.msg(s))
	}
}

func (c *hoClient) msg(seq int) map[string]any {
	return map[string]any{"flag": "msg", "from": c.account, "to": c.to, "content": strconv.Itoa(seq), "cid": strconv.Itoa(seq)}
}

// stream sends a new message every period while bound, until ctx ends.
func (c *hoClient) stream(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		if !c.bound {
			c.mu.Unlock()
			continue
		}
		if c.unacked == nil {
			c.unacked, c.acked = map[int]bool{}, map[int]bool{}
		}
		c.nextSeq++
		seq := c.nextSeq
		c.unacked[seq] = true
		c.mu.Unlock()
		c.wmu.Lock()
		ws := c.ws
		c.wmu.Unlock()
		c.write(ws, c.msg(seq))
	}
}

func (c *hoClient) write(ws *websocket.Conn, v any) {
	b, _ := json.Marshal(v)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = ws.WriteMessage(websocket.TextMessage, b) // a failed write is resent on the next connection
}

func (c *hoClient) online() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bound
}

func (c *hoClient) unackedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unacked)
}

func (c *hoClient) ackedSeqs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for s := range c.acked {
		out = append(out, s)
	}
	sort.Ints(out)
	return out
}

func (c *hoClient) missing(seqs []int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, s := range seqs {
		if !c.got[s] {
			out = append(out, s)
		}
	}
	return out
}

func (c *hoClient) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.repeats
}

func (c *hoClient) closeNow() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ws != nil {
		_ = c.ws.Close()
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

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// waitLog waits until the process's log has a line with msg.
func waitLog(t *testing.T, p *proc, msg string) {
	t.Helper()
	eventually(t, "log line "+strconv.Quote(msg), func() bool {
		b, _ := os.ReadFile(p.log.Name())
		return strings.Contains(string(b), `"message":"`+msg+`"`)
	})
}

// tail is the end of the process's log, for a failure message.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log.Name())
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// apiConnections reads chat_connections from the side API at addr.
func apiConnections(t *testing.T, addr string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAPISecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "chat_connections "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	t.Fatal("chat_connections not in /metrics")
	return 0
}
