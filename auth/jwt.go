// Package auth verifies the tokens clients present at init when auth.mode is
// jwt: HS256 with a shared secret or RS256 with a public key, the subject must be
// the account claimed, and the token must carry an expiry that has not passed.
package auth

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWT verifies tokens. It accepts only the algorithms it has a key for; "none"
// and any other algorithm are refused.
type JWT struct {
	hmac    []byte
	rsa     *rsa.PublicKey
	issuer  string
	methods []string
	leeway  time.Duration
}

// Config names the keys; at least one must be set.
type Config struct {
	Secret        string // HS256
	PublicKeyFile string // RS256, PEM
	Issuer        string // if set, iss must equal it
	// Leeway is the clock skew allowed between the site that issues tokens
	// and this server: a token is accepted until its exp plus Leeway (0: until
	// exp). config.Default sets DefaultLeeway.
	Leeway time.Duration
}

// DefaultLeeway is the leeway of the shipped configuration.
const DefaultLeeway = 30 * time.Second

// New loads the keys.
func New(c Config) (*JWT, error) {
	if c.Leeway < 0 {
		return nil, fmt.Errorf("auth: leeway %v is negative", c.Leeway)
	}
	j := &JWT{issuer: c.Issuer, leeway: c.Leeway}
	if c.Secret != "" {
		j.hmac = []byte(c.Secret)
		j.methods = append(j.methods, jwt.SigningMethodHS256.Alg())
	}
	if c.PublicKeyFile != "" {
		pem, err := os.ReadFile(c.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: public key: %w", err)
		}
		if j.rsa, err = jwt.ParseRSAPublicKeyFromPEM(pem); err != nil {
			return nil, fmt.Errorf("auth: public key %s: %w", c.PublicKeyFile, err)
		}
		j.methods = append(j.methods, jwt.SigningMethodRS256.Alg())
	}
	if len(j.methods) == 0 {
		return nil, errors.New("auth: jwt needs a secret (HS256) or a public key (RS256)")
	}
	return j, nil
}

// Verify checks token for account and returns until when it is accepted: its
// exp plus the leeway (a connection authenticated with it is closed after
// that). The error says why a token is refused, in words fit for the client
// (no key material).
func (j *JWT) Verify(token, account string) (until time.Time, err error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(j.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(j.leeway),
	}
	if j.issuer != "" {
		opts = append(opts, jwt.WithIssuer(j.issuer))
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(token, &claims, j.key, opts...)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return time.Time{}, errors.New("expired")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return time.Time{}, errors.New("no expiry (exp)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return time.Time{}, errors.New("wrong issuer")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return time.Time{}, errors.New("bad signature or algorithm")
	case err != nil:
		return time.Time{}, errors.New("invalid token")
	}
	if claims.Subject != account {
		return time.Time{}, fmt.Errorf("token subject %q is not the account %q", claims.Subject, account)
	}
	return claims.ExpiresAt.Add(j.leeway), nil
}

func (j *JWT) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if j.hmac != nil {
			return j.hmac, nil
		}
	case *jwt.SigningMethodRSA:
		if j.rsa != nil {
			return j.rsa, nil
		}
	}
	return nil, fmt.Errorf("auth: no key for %s", t.Method.Alg())
}
