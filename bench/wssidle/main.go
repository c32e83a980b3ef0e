// Command wssidle holds N idle wss:// (or ws://) connections, each inited as its
// own account and sending a WebSocket ping every 25 s, until interrupted. It is
// a second wss client, independent of chatload's, for cross-checking the memory
// an idle TLS connection costs the server (docs/benchmarks.md says how).
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	url := flag.String("url", "wss://127.0.0.1:9443/", "server URL")
	n := flag.Int("n", 1000, "connections to hold")
	prefix := flag.String("prefix", "w", "account name prefix")
	insecure := flag.Bool("insecure", false, "accept any certificate (a test certificate)")
	conc := flag.Int("c", 64, "concurrent dials")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{InsecureSkipVerify: *insecure}} //nolint:gosec // flag-controlled, for test certificates
	var (
		mu    sync.Mutex
		conns []*websocket.Conn
		fails int
	)
	sem := make(chan struct{}, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			ws, _, err := d.DialContext(ctx, *url, nil)
			if err == nil {
				err = ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"flag":"init","from":"%s%d"}`, *prefix, i)))
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				return
			}
			conns = append(conns, ws)
			go func() { // discard what arrives
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						return
					}
				}
			}()
		}(i)
	}
	wg.Wait()
	fmt.Printf("open %d, failed %d, in %v\n", len(conns), fails, time.Since(start).Round(time.Millisecond))
	tick := time.NewTicker(25 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			mu.Lock()
			for _, c := range conns {
				_ = c.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second))
			}
			mu.Unlock()
		}
	}
}
