package e2e

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/config"
)

// dialVia connects as a balancer with send-proxy would: header first on the
// raw socket, then the WebSocket upgrade. It returns the client, or nil and
// the HTTP status of the refusal (0: closed without one).
func dialVia(t *testing.T, url, header string) (*client, int) {
	t.Helper()
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_, err = c.Write([]byte(header))
		}
		return c, err
	}}
	ws, res, err := d.Dial(url, nil)
	if err != nil {
		if res == nil {
			return nil, 0
		}
		return nil, res.StatusCode
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &client{t: t, ws: ws}, http.StatusSwitchingProtocols
}

// v2Local is a PROXY v2 header with the LOCAL command: a balancer's own
// health check.
const v2Local = "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"

// TestBehindABalancer runs the real server as configured behind HAProxy with
// send-proxy: clients named by their PROXY headers chat, the per-IP limit
// counts them by those addresses, and the balancer's health check reaches
// /readyz with a LOCAL header. The transport is the same whatever the
// stores, so the embedded backend is enough.
func TestBehindABalancer(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", func(c *config.Config) {
		c.Server.TrustedProxies = []string{"127.0.0.0/8"}
		c.Server.ProxyProtocol = true
		c.Limits.ConnectionsPerIP = 1
	})
	alice, code := dialVia(t, ts.url, "PROXY TCP4 203.0.113.5 10.0.0.1 40001 9052\r\n")
	if alice == nil {
		t.Fatalf("alice via the balancer: %d", code)
	}
	bob, code := dialVia(t, ts.url, "PROXY TCP4 203.0.113.6 10.0.0.1 40002 9052\r\n")
	if bob == nil {
		t.Fatalf("bob via the balancer: %d", code)
	}
	alice.sendJSON(map[string]string{"flag": "init", "from": "alice"})
	alice.sync()
	bob.sendJSON(map[string]string{"flag": "init", "from": "bob"})
	bob.sync()
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"through the balancer"}`)
	if f := bob.next(5 * time.Second); f["content"] != "through the balancer" {
		t.Fatalf("bob got %v", f)
	}
	if c, code := dialVia(t, ts.url, "PROXY TCP4 203.0.113.5 10.0.0.1 40003 9052\r\n"); c != nil || code != http.StatusTooManyRequests {
		t.Fatalf("a second connection of 203.0.113.5 with connections_per_ip 1: %d; want 429", code)
	}
	if c, code := dialVia(t, ts.url, ""); c != nil {
		t.Fatalf("no PROXY header from the trusted balancer: %d; want refused", code)
	}

	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(ts.url, "ws://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(v2Local + "GET /readyz HTTP/1.1\r\nHost: chat\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("health check with a LOCAL header: %v", err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("health check with a LOCAL header: %d; want 200", res.StatusCode)
	}
}
