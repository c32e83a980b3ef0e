// Package certs holds the server's TLS certificate and replaces it without a
// restart: Reload reads the files again and swaps the certificate new
// handshakes get; a bad pair keeps the old one. Connections already open keep
// their session. It serves both nbio's TLS (the WebSocket listener, on the event
// loops) and Go's crypto/tls (the side API).
package certs

import (
	stdtls "crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
)

// Store is the current certificate, in both TLS stacks' types.
type Store struct {
	certFile, keyFile string

	mu      sync.RWMutex
	nb      *tls.Certificate
	std     *stdtls.Certificate
	modTime time.Time
}

// Load reads the pair once; it fails if the pair is unusable.
func Load(certFile, keyFile string) (*Store, error) {
	s := &Store{certFile: certFile, keyFile: keyFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the current certificate stays.
func (s *Store) Reload() error {
	certPEM, err := os.ReadFile(s.certFile)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	keyPEM, err := os.ReadFile(s.keyFile)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	nb, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("certs: %s / %s: %w", s.certFile, s.keyFile, err)
	}
	std, err := stdtls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("certs: %s / %s: %w", s.certFile, s.keyFile, err)
	}
	s.mu.Lock()
	s.nb, s.std, s.modTime = &nb, &std, newest(s.certFile, s.keyFile)
	s.mu.Unlock()
	return nil
}

// Changed reports whether either file is newer than what was loaded (a cheap
// stat, for polling).
func (s *Store) Changed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return newest(s.certFile, s.keyFile).After(s.modTime)
}

func newest(files ...string) time.Time {
	var t time.Time
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

// TLS12Suites are the only cipher suites either listener offers under TLS 1.2:
// ECDHE key exchange (forward secrecy) with an AEAD cipher, as Mozilla's
// "intermediate" guidance has it; no RSA key exchange, no CBC. ChaCha20 comes
// first, as llib's default order has it (see server/tlsmem_test.go); the
// client's preference decides. TLS 1.3 suites are not configurable and all
// three are offered.
var TLS12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// NBIOConfig is the TLS configuration for the WebSocket listener.
func (s *Store) NBIOConfig(minVersion uint16) *tls.Config {
	return &tls.Config{
		MinVersion:   minVersion,
		CipherSuites: TLS12Suites,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.RLock()
			defer s.mu.RUnlock()
			return s.nb, nil
		},
	}
}

// StdConfig is the TLS configuration for the side API.
func (s *Store) StdConfig(minVersion uint16) *stdtls.Config {
	return &stdtls.Config{
		MinVersion:   minVersion,
		CipherSuites: TLS12Suites, // the IDs are the IANA numbers in both stacks
		GetCertificate: func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
			s.mu.RLock()
			defer s.mu.RUnlock()
			return s.std, nil
		},
	}
}

// Version parses "1.2" or "1.3".
func Version(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return stdtls.VersionTLS12, nil
	case "1.3":
		return stdtls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("certs: TLS version %q: want 1.2 or 1.3", v)
}

// LoopbackClientConfig is a client configuration for this process's call to
// its own side API address on loopback (a handover, where the process behind
// it is the new one): it trusts the system's roots and this certificate
// itself, and names the certificate's first DNS name or IP address as the
// server, so a self-signed certificate, or one for the public name, verifies.
func (s *Store) LoopbackClientConfig() (*stdtls.Config, error) {
	s.mu.RLock()
	cert := s.std
	s.mu.RUnlock()
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("certs: no certificate loaded")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AddCert(leaf)
	name := ""
	switch {
	case len(leaf.DNSNames) > 0:
		name = leaf.DNSNames[0]
	case len(leaf.IPAddresses) > 0:
		name = leaf.IPAddresses[0].String()
	default:
		return nil, fmt.Errorf("certs: the certificate names no DNS name or IP address")
	}
	return &stdtls.Config{RootCAs: pool, ServerName: name, MinVersion: stdtls.VersionTLS12}, nil
}
