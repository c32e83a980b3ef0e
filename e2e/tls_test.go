package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"chatserver/config"
	"chatserver/internal/testcert"
)

// writeCert makes a self-signed certificate for 127.0.0.1 with the given serial
// and writes it and its key as PEM files; it returns a pool that trusts it.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.CertPool {
	t.Helper()
	certPEM, keyPEM, roots := testcert.New(t, serial)
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return roots
}

func dialWSS(t *testing.T, url string, tc *tls.Config) (*client, *tls.ConnectionState, error) {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: tc, HandshakeTimeout: 5 * time.Second}
	ws, res, err := d.Dial(url, nil)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = res
	st := ws.UnderlyingConn().(*tls.Conn).ConnectionState()
	return &client{t: t, ws: ws}, &st, nil
}

// TestNativeTLS: wss on the event loops beside ws; legacy frames over wss; a
// reloaded certificate is what a new client sees while an old connection keeps
// chatting; a bad new pair keeps the current one; TLS 1.1 is refused; garbage
// on the TLS port disturbs nobody.
func TestNativeTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool1 := writeCert(t, certFile, keyFile, 1)
	ts := startServer(t, "embedded", func(c *config.Config) {
		c.TLS.Addr, c.TLS.CertFile, c.TLS.KeyFile = "127.0.0.1:0", certFile, keyFile
	})
	wss := "wss://" + ts.app.TLSAddr() + "/"

	alice, st, err := dialWSS(t, wss, &tls.Config{RootCAs: pool1})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	if st.Version < tls.VersionTLS12 || st.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("handshake: version %x, serial %v", st.Version, st.PeerCertificates[0].SerialNumber)
	}
	alice.send(`{"flag":"init","from":"alice"}`)
	alice.sync()
	bob, _ := login(t, ts, "bob", "") // plain ws, side by side
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"over wss"}`)
	if f := bob.next(5 * time.Second); f["content"] != "over wss" {
		t.Fatalf("bob got %v", f)
	}
	bob.send(`{"flag":"msg","from":"bob","to":"alice","content":"back over ws"}`)
	if f := alice.next(5 * time.Second); f["content"] != "back over ws" {
		t.Fatalf("alice got %v", f)
	}

	// Reload with a second certificate.
	pool2 := writeCert(t, certFile, keyFile, 2)
	ts.app.ReloadCerts()
	_, st2, err := dialWSS(t, wss, &tls.Config{RootCAs: pool2})
	if err != nil || st2.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("after reload a new client: %v, %v; want certificate 2", err, st2)
	}
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"still here"}`)
	if f := bob.next(5 * time.Second); f["content"] != "still here" {
		t.Fatalf("the old wss connection stopped working after the reload: bob got %v", f)
	}

	// A bad new pair keeps certificate 2.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.app.ReloadCerts()
	if _, st3, err := dialWSS(t, wss, &tls.Config{RootCAs: pool2}); err != nil || st3.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("after a bad reload: %v; want certificate 2 still", err)
	}

	// TLS 1.1 refused.
	if _, _, err := dialWSS(t, wss, &tls.Config{RootCAs: pool2, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 client was accepted")
	}

	// Garbage on the TLS port.
	raw, err := net.Dial("tcp", ts.app.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 4096)
	_, _ = rand.Read(junk)
	_, _ = raw.Write(junk)
	_ = raw.Close()
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"after the garbage"}`)
	if f := bob.next(5 * time.Second); f["content"] != "after the garbage" {
		t.Fatalf("bob got %v", f)
	}
}
