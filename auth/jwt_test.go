package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubFile := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := New(Config{Secret: "s3cret", PublicKeyFile: pubFile, Issuer: "site", Leeway: DefaultLeeway})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	good := jwt.MapClaims{"sub": "alice", "exp": exp, "iss": "site"}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name, token, account, want string
	}{
		{"hs256", sign(t, jwt.SigningMethodHS256, []byte("s3cret"), good), "alice", ""},
		{"rs256", sign(t, jwt.SigningMethodRS256, priv, good), "alice", ""},
		{"wrong subject", sign(t, jwt.SigningMethodHS256, []byte("s3cret"), good), "mallory", "subject"},
		{"bad hmac secret", sign(t, jwt.SigningMethodHS256, []byte("guess"), good), "alice", "signature"},
		{"other rsa key", sign(t, jwt.SigningMethodRS256, other, good), "alice", "signature"},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix(), "iss": "site"}), "alice", "expired"},
		{"no exp", sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "alice", "iss": "site"}), "alice", "exp"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "alice", "exp": exp, "iss": "evil"}), "alice", "issuer"},
		{"alg none", none, "alice", "signature"},
		{"garbage", "not.a.token", "alice", "invalid"},
		{"hs384 not allowed", sign(t, jwt.SigningMethodHS384, []byte("s3cret"), good), "alice", "signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			until, err := j.Verify(tc.token, tc.account)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v; want accepted", err)
				}
				if want := time.Unix(exp, 0).Add(DefaultLeeway); !until.Equal(want) {
					t.Fatalf("Verify accepted until %v; want exp plus the leeway, %v", until, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v; want an error about %q", err, tc.want)
			}
		})
	}
}

// TestLeeway: a token past its exp is accepted within the leeway, with the
// time it stops being accepted; with no leeway it is refused; a negative
// leeway is a configuration error.
func TestLeeway(t *testing.T) {
	exp := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	tok := sign(t, jwt.SigningMethodHS256, []byte("k"), jwt.MapClaims{"sub": "alice", "exp": exp.Unix()})
	lenient, err := New(Config{Secret: "k", Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if until, err := lenient.Verify(tok, "alice"); err != nil || !until.Equal(exp.Add(time.Minute)) {
		t.Fatalf("10 s past exp with a minute of leeway: %v, %v; want accepted until %v", until, err, exp.Add(time.Minute))
	}
	strict, err := New(Config{Secret: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Verify(tok, "alice"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("10 s past exp with no leeway: %v; want expired", err)
	}
	if _, err := New(Config{Secret: "k", Leeway: -time.Second}); err == nil {
		t.Fatal("a negative leeway was accepted")
	}
}
