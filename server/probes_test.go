package server

import (
	"context"
	stdtls "crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/rs/zerolog"

	"chatserver/health"
	"chatserver/hub"
)

// probe GETs path with no header but Host and decodes the JSON answer.
func probe(t *testing.T, client *http.Client, base, path string) (int, map[string]any, string) {
	t.Helper()
	res, err := client.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("GET %s%s: %d, not JSON: %q", base, path, res.StatusCode, raw)
	}
	return res.StatusCode, v, string(raw)
}

// TestProbesOnTheWebSocketPorts: /healthz and /readyz answer on ws:// and
// wss:// without any secret, with the readiness passed in (a failing check is
// named, its error kept back), while the ports keep serving WebSocket.
func TestProbesOnTheWebSocketPorts(t *testing.T) {
	var failing atomic.Bool
	probes := health.New(health.Config{Reuse: time.Nanosecond, Checks: []health.Check{{Name: "sql", Ping: func(context.Context) error {
		if failing.Load() {
			return errors.New("dial tcp 10.9.8.7:3306: connect: connection refused")
		}
		return nil
	}}}}, zerolog.New(zerolog.NewTestWriter(t)))
	cert, roots := testCert(t)
	s, _ := startEcho(t, Config{Probes: probes, TLSAddr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &stdtls.Config{RootCAs: roots}}}
	plainClient := &http.Client{Timeout: 10 * time.Second}
	ports := []struct {
		name   string
		client *http.Client
		base   string
	}{{"ws", plainClient, "http://" + s.Addr()}, {"wss", tlsClient, "https://" + s.TLSAddr()}}
	for _, p := range ports {
		failing.Store(false)
		if code, v, _ := probe(t, p.client, p.base, "/healthz"); code != 200 || v["status"] != "ok" {
			t.Fatalf("%s /healthz: %d %v; want 200 ok", p.name, code, v)
		}
		if code, v, raw := probe(t, p.client, p.base, "/readyz"); code != 200 || v["ready"] != true || !strings.Contains(raw, `"sql":"ok"`) {
			t.Fatalf("%s /readyz: %d %s; want 200, ready, sql ok", p.name, code, raw)
		}
		failing.Store(true)
		code, v, raw := probe(t, p.client, p.base, "/readyz")
		if code != 503 || v["ready"] != false || !strings.Contains(raw, `"sql":"fail"`) {
			t.Fatalf("%s /readyz with sql failing: %d %s; want 503, sql fail", p.name, code, raw)
		}
		if strings.Contains(raw, "10.9.8.7") || strings.Contains(raw, "refused") {
			t.Fatalf("%s /readyz gives the error away: %s", p.name, raw)
		}
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/", nil)
	if err != nil {
		t.Fatalf("upgrade next to the probes: %v", err)
	}
	_ = ws.Close()
}

// TestReadyzSaysDrainingDuringShutdown: once Shutdown starts (here held up by
// a frame handler still running), /readyz on the WebSocket port answers 503
// with draining true, while the port is still open.
func TestReadyzSaysDrainingDuringShutdown(t *testing.T) {
	release := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	table := hub.NewTable(10)
	s := New(Config{Addr: "127.0.0.1:0"}, table, Hooks{
		OnFrame: func(*hub.Conn, bool, []byte) {
			inHandler <- struct{}{}
			<-release
		},
		OnClose: func(*hub.Conn, hub.Removal) {},
	}, zerolog.New(zerolog.NewTestWriter(t)))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + s.Addr()
	if code, v, _ := probe(t, client, base, "/readyz"); code != 200 || v["draining"] != false {
		t.Fatalf("before shutdown: %d %v; want 200, not draining", code, v)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hold")); err != nil {
		t.Fatal(err)
	}
	<-inHandler
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, v, raw := probe(t, client, base, "/readyz")
		if code == 503 && v["draining"] == true && v["ready"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz while shutting down: %d %s; want 503 draining", code, raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _, _ := probe(t, client, base, "/healthz"); code != 200 {
		t.Fatalf("/healthz while draining: %d; want 200", code)
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial("tcp", s.Addr()); err == nil {
		t.Fatal("the port still accepts after shutdown")
	}
}
