package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"chatserver/config"
	"chatserver/internal/testcert"
)

// TestTLSSuites: under TLS 1.2 both TLS listeners (wss and the side API)
// offer only ECDHE key exchange with AEAD ciphers, so a client offering only
// RSA key exchange or CBC ciphers is refused, while default clients connect
// with TLS 1.3 and with TLS 1.2. The certificate is RSA so that the weak
// suites are possible at all; the policy is what refuses them.
func TestTLSSuites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM, keyPEM, roots := testcert.NewRSA(t, 1)
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "embedded", func(c *config.Config) {
		c.TLS.Addr, c.TLS.CertFile, c.TLS.KeyFile, c.TLS.API = "127.0.0.1:0", certFile, keyFile, true
	})
	listeners := map[string]string{"wss": ts.app.TLSAddr(), "api": ts.app.APIAddr()}

	handshake := func(addr string, tc *tls.Config) (*tls.ConnectionState, error) {
		tc.RootCAs = roots
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.(*tls.Conn).ConnectionState()
		return &st, nil
	}
	for name, addr := range listeners {
		t.Run(name, func(t *testing.T) {
			for _, weak := range []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256} {
				if st, err := handshake(addr, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{weak}}); err == nil {
					t.Errorf("a client offering only %s got %s", tls.CipherSuiteName(weak), tls.CipherSuiteName(st.CipherSuite))
				}
			}
			st, err := handshake(addr, &tls.Config{})
			if err != nil || st.Version != tls.VersionTLS13 {
				t.Fatalf("default client: %v; want TLS 1.3", err)
			}
			st, err = handshake(addr, &tls.Config{MaxVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatalf("default TLS 1.2 client: %v", err)
			}
			if !allowedTLS12(st.CipherSuite) {
				t.Fatalf("default TLS 1.2 client got %s", tls.CipherSuiteName(st.CipherSuite))
			}

			openssl, err := exec.LookPath("openssl")
			if err != nil {
				t.Log("openssl not installed: its check skipped")
				return
			}
			sClient := func(cipher string) ([]byte, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-tls1_2", "-cipher", cipher)
				return cmd.CombinedOutput() // stdin is empty: it quits after the handshake
			}
			for cipher, want := range map[string]bool{"AES128-SHA": false, "ECDHE-RSA-AES128-SHA": false, "ECDHE-RSA-AES128-GCM-SHA256": true} {
				out, err := sClient(cipher)
				if err != nil && want {
					// Under the full suite's load the server once closed an
					// allowed handshake before answering (read 0 bytes), not
					// traced: a second try tells a refused suite from that.
					t.Logf("openssl s_client -cipher %s failed once, trying again:\n%s", cipher, out)
					out, err = sClient(cipher)
				}
				if got := err == nil; got != want {
					t.Errorf("openssl s_client -tls1_2 -cipher %s: handshake ok = %v, want %v\n%s", cipher, got, want, out)
				}
			}
		})
	}
}

func allowedTLS12(id uint16) bool {
	switch id {
	case tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
		return true
	}
	return false
}
