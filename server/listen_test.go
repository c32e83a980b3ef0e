package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/rs/zerolog"

	"chatserver/hub"
)

// TestStartOnBusyAddress: a listen address in use is an error from Start that
// names it, the other address is released, and Shutdown returns at once.
func TestStartOnBusyAddress(t *testing.T) {
	cert, _ := testCert(t)
	for _, which := range []string{"server.addr", "tls.addr"} {
		t.Run(which, func(t *testing.T) {
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			free := freeAddr(t)
			cfg := Config{Addr: held.Addr().String(), TLSAddr: free, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
			if which == "tls.addr" {
				cfg.Addr, cfg.TLSAddr = free, held.Addr().String()
			}
			s := New(cfg, hub.NewTable(10), Hooks{}, zerolog.New(zerolog.NewTestWriter(t)))
			err = s.Start()
			if err == nil || !strings.Contains(err.Error(), which+" "+held.Addr().String()) {
				t.Fatalf("Start = %v; want an error naming %s %s", err, which, held.Addr())
			}
			done := make(chan error, 1)
			go func() { done <- s.Shutdown(context.Background()) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Shutdown after a failed Start: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Shutdown after a failed Start hangs")
			}
			ln, err := net.Listen("tcp", free)
			if err != nil {
				t.Fatalf("the other address %s is still held after the failed Start: %v", free, err)
			}
			_ = ln.Close()
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
