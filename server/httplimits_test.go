package server

import (
	"bufio"
	stdtls "crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
)

// plain dials addr over TCP.
func plain(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.Dial("tcp", addr) }
}

// rawRequest sends head over a fresh connection, then up to bodyBytes of
// filler (stopping when the server stops reading), and returns the status code
// of the answer (0 when the server closed without one). It fails the test if the
// server neither answers nor closes within 5 s.
func rawRequest(t *testing.T, dial func() (net.Conn, error), head string, bodyBytes int, filler []byte) int {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatalf("write head: %v", err)
	}
	for sent := 0; sent < bodyBytes; {
		n, err := c.Write(filler[:min(len(filler), bodyBytes-sent)])
		sent += n
		if err != nil {
			break // the server closed: what we want, unless it was our deadline
		}
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("server neither answered nor closed within 5 s (still reading?)")
		}
		return 0 // closed without an answer
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// TestWebSocketPortRefusesBodies: the WebSocket port needs no request body (the
// upgrade and the pages are GETs), so a request that brings one is refused
// with 413 and the connection closed, and one announcing gigabytes costs the
// server a few kilobytes, not what it sends.
func TestWebSocketPortRefusesBodies(t *testing.T) {
	s, _ := startEcho(t, Config{})
	for _, head := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /ws HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		if got := rawRequest(t, plain(s.Addr()), head, 0, nil); got != http.StatusRequestEntityTooLarge {
			t.Errorf("%q answered %d; want 413", head, got)
		}
	}
	// A body-less GET still works on the same port. (Once, under the full
	// suite's load, this connection was closed without an answer, not traced;
	// a second try tells a port that refuses GETs from that.)
	got := rawRequest(t, plain(s.Addr()), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, nil)
	if got == 0 {
		t.Logf("plain GET: closed without an answer; trying once more")
		got = rawRequest(t, plain(s.Addr()), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, nil)
	}
	if got != 200 {
		t.Fatalf("plain GET answered %d; want 200", got)
	}
}

// TestWebSocketPortBoundsWhatARequestCosts sends 20 requests at once that each
// push 3 MB at the server (a giant Content-Length, a chunked body, a header
// that never ends), on ws:// and wss://, and checks that each is cut off and
// that, together, they made the server allocate only a few MB.
func TestWebSocketPortBoundsWhatARequestCosts(t *testing.T) {
	cert, roots := testCert(t)
	s, _ := startEcho(t, Config{TLSAddr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	t.Run("ws", func(t *testing.T) { requestCosts(t, plain(s.Addr())) })
	t.Run("wss", func(t *testing.T) {
		requestCosts(t, func() (net.Conn, error) {
			return stdtls.Dial("tcp", s.TLSAddr(), &stdtls.Config{RootCAs: roots})
		})
	})
}

func requestCosts(t *testing.T, dial func() (net.Conn, error)) {
	const perRequest = 3 << 20
	chunk := []byte("3e8\r\n" + strings.Repeat("c", 1000) + "\r\n")
	kinds := []struct {
		name, head string
		filler     []byte
	}{
		{"content-length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000000\r\n\r\n", []byte(strings.Repeat("b", 64<<10))},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", []byte(strings.Repeat(string(chunk), 64))},
		{"header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", []byte(strings.Repeat("h", 64<<10))},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			// Warm up: the first connection allocates the engine's pools.
			rawRequest(t, dial, k.head, 256<<10, k.filler)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var wg sync.WaitGroup
			codes := make([]int, 20)
			for i := range codes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes[i] = rawRequest(t, dial, k.head, perRequest, k.filler)
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
			grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("20 requests of %d MB: server allocated %d KB, heap grew %d KB", perRequest>>20, allocated>>10, grown>>10)
			// Counts the test's own clients too (TLS records, handshakes);
			// unbounded, 20 requests of 3 MB allocate well over 100 MB.
			if allocated > 32<<20 {
				t.Fatalf("20 requests made the process allocate %d MB; want a few", allocated>>20)
			}
			if grown > 4<<20 {
				t.Fatalf("heap grew by %d MB after 20 requests; want under 4", grown>>20)
			}
		})
	}
}
