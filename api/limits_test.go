package api

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func startAPI(t *testing.T) *Server {
	t.Helper()
	s := New(Config{Addr: "127.0.0.1:0", Secret: "s3cret"}, Deps{Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// send writes head and up to n bytes of filler on a fresh connection and
// returns the answer's status (0: closed without one); it fails the test if
// the server neither answers nor closes within 5 s.
func send(t *testing.T, addr, head string, n int, filler []byte) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	for sent := 0; sent < n; {
		m, err := c.Write(filler[:min(len(filler), n-sent)])
		sent += m
		if err != nil {
			break
		}
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("side API neither answered nor closed within 5 s")
		}
		return 0
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// TestBodyOverLimitRefusedUnread: a call announcing more than the body limit
// is answered 413 from its header, before the body is read.
func TestBodyOverLimitRefusedUnread(t *testing.T) {
	s := startAPI(t)
	head := "POST /api/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Length: 2000000000\r\n\r\n"
	if got := send(t, s.Addr(), head, 0, nil); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("push announcing 2 GB answered %d; want 413", got)
	}
}

// TestRequestCostIsBounded sends 20 requests at once, each pushing 3 MB at the
// side API (a giant body with or without the secret, a header that never
// ends), and checks each is cut off and that together they cost the process a
// few MB.
func TestRequestCostIsBounded(t *testing.T) {
	s := startAPI(t)
	const perRequest = 3 << 20
	for _, k := range []struct{ name, head, fill string }{
		{"body-unauthenticated", "POST /api/push HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000000\r\n\r\n", "b"},
		{"body-authenticated", "POST /api/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Length: 2000000000\r\n\r\n{\"content\":\"", "b"},
		{"header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", "h"},
	} {
		t.Run(k.name, func(t *testing.T) {
			filler := []byte(strings.Repeat(k.fill, 64<<10))
			send(t, s.Addr(), k.head, 256<<10, filler) // warm-up
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			codes := make([]int, 20)
			var wg sync.WaitGroup
			for i := range codes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes[i] = send(t, s.Addr(), k.head, perRequest, filler)
				}()
			}
			wg.Wait()
			runtime.GC()
			runtime.ReadMemStats(&after)
			for _, c := range codes {
				if c != 0 && c < 400 {
					t.Fatalf("answers %v; want errors or closes", codes)
				}
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("20 requests of 3 MB: answers %v, allocated %d KB", codes, allocated>>10)
			if allocated > 8<<20 {
				t.Fatalf("20 requests made the process allocate %d MB; want a few", allocated>>20)
			}
			if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
				t.Fatalf("heap grew by %d MB; want under 4", grown>>20)
			}
		})
	}
}

// TestChunkedBodyOverLimit: a body without a length is cut off at the limit
// and answered 413.
func TestChunkedBodyOverLimit(t *testing.T) {
	s := startAPI(t)
	head := "POST /api/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\n\r\n"
	chunk := []byte("3e8\r\n" + strings.Repeat(" ", 1000) + "\r\n")
	if got := send(t, s.Addr(), head, 2<<20, []byte(strings.Repeat(string(chunk), 64))); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 2 MB chunked push answered %d; want 413", got)
	}
}
