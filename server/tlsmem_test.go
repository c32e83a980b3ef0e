package server

import (
	"bytes"
	stdtls "crypto/tls"
	"crypto/x509"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"

	"chatserver/internal/testcert"
)

func TestReleaseHandshakeFieldsExist(t *testing.T) {
	typ := reflect.TypeOf(tls.Conn{})
	for _, name := range append(handshakeFields, "hand", "inputBuf") {
		f, ok := typ.FieldByName(name)
		if !ok {
			t.Fatalf("llib tls.Conn has no field %q any more: review releaseHandshake for this llib version", name)
		}
		if k := f.Type.Kind(); k != reflect.Pointer {
			t.Fatalf("llib tls.Conn.%s is a %s, not a pointer: review releaseHandshake", name, k)
		}
	}
	if f, ok := typ.FieldByName("closeMux"); !ok || f.Type != reflect.TypeOf(sync.Mutex{}) {
		t.Fatal("llib tls.Conn has no closeMux sync.Mutex any more: review releaseHandshake (it must hold the read path's lock)")
	}
}

// TestIdleTLSConnHoldsOnlyItsKeys drives llib's non-blocking server side as
// nbio does (bytes from the socket appended, records read out) against Go's
// own TLS client over loopback, for each version we accept, and checks what
// the connection still holds once the handshake is released: no handshake
// state, no pooled buffer, and a last record no bigger than itself. The
// connection must then still carry data both ways.
func TestIdleTLSConnHoldsOnlyItsKeys(t *testing.T) {
	cert, roots := testCert(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(map[uint16]string{tls.VersionTLS12: "TLS1.2", tls.VersionTLS13: "TLS1.3"}[v], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client := make(chan *stdtls.Conn, 1)
			go func() {
				c, err := stdtls.Dial("tcp", ln.Addr().String(), &stdtls.Config{RootCAs: roots, MinVersion: v, MaxVersion: v})
				if err != nil {
					t.Error(err)
					close(client)
					return
				}
				_, _ = c.Write([]byte("GET / HTTP/1.1\r\n\r\n")) // what an upgrade request is to the record layer
				client <- c
			}()
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			srv := tls.NewConn(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, false, true, newTLSBuffers())
			if got := readRecords(t, raw, srv); got != "GET / HTTP/1.1\r\n\r\n" {
				t.Fatalf("server read %q before the handshake was released", got)
			}
			c := <-client
			if c == nil {
				t.FailNow()
			}
			defer c.Close()
			// llib prefers ChaCha20-Poly1305 whenever the client offers it
			// (its copy of internal/cpu is never initialised, so it assumes
			// no AES hardware). That keeps a connection's keys at ~60 bytes a
			// direction where AES-GCM's tables take ~790; docs/benchmarks.md
			// counts on it, so a dependency upgrade that changes it must show.
			want := map[uint16]uint16{tls.VersionTLS12: stdtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.VersionTLS13: stdtls.TLS_CHACHA20_POLY1305_SHA256}[v]
			if got := c.ConnectionState().CipherSuite; got != want {
				t.Errorf("negotiated %s, want %s", stdtls.CipherSuiteName(got), stdtls.CipherSuiteName(want))
			}

			releaseTLSState(srv)
			f := reflect.ValueOf(srv).Elem()
			for _, name := range append(handshakeFields, "hand", "sendBuf") {
				if !f.FieldByName(name).IsNil() {
					t.Errorf("after release, tls.Conn.%s still holds state", name)
				}
			}
			if in := f.FieldByName("inputBuf"); !in.IsNil() && in.Elem().Cap() >= smallTLSBuffer {
				t.Errorf("an 18-byte record is held in a %d-byte buffer", in.Elem().Cap())
			}

			// Still a working connection, both ways.
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if got := readRecords(t, raw, srv); got != "ping" {
				t.Fatalf("server read %q after the release, want ping", got)
			}
			if _, err := srv.Write([]byte("pong")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "pong" {
				t.Fatalf("client read %q, %v; want pong", buf[:n], err)
			}
		})
	}
}

// readRecords feeds the server side what arrives on raw until a record of
// application data comes out, the way nbio's TLS data handler does.
func readRecords(t *testing.T, raw net.Conn, srv *tls.Conn) string {
	t.Helper()
	var out bytes.Buffer
	in := make([]byte, 4096)
	plain := make([]byte, 4096)
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	for out.Len() == 0 {
		n, err := raw.Read(in)
		if err != nil {
			t.Fatalf("read from the client: %v", err)
		}
		appended := in[:n]
		for {
			_, m, err := srv.AppendAndRead(appended, plain)
			if err != nil {
				t.Fatalf("server TLS: %v", err)
			}
			out.Write(plain[:m])
			if m == 0 {
				break
			}
			appended = nil
		}
	}
	return out.String()
}

// testCert makes a self-signed certificate for 127.0.0.1 in llib's form.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, roots := testcert.New(t, 1)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, roots
}
