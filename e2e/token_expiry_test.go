package e2e

import (
	"testing"
	"time"

	"chatserver/config"
)

// TestTokenExpiry: with auth.mode jwt a connection is closed with 4003 once
// its token expires; one that sends a fresh token in an auth frame before
// then stays open; a token refused in an auth frame (another account's, an
// expired one) changes nothing, so that connection is closed at the first
// token's expiry.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, backend, func(c *config.Config) {
				c.Auth.Mode = "jwt"
				c.Auth.JWTSecret = "site-secret"
				c.Auth.JWTLeeway = 0
				c.Server.IdleTimeout = 10 * time.Second // swept every second
			})
			exp := time.Unix(time.Now().Unix()+3, 0)
			hour := time.Unix(time.Now().Add(time.Hour).Unix(), 0)
			connect := func(account string) *client {
				c := dial(t, ts.url)
				c.sendJSON(map[string]string{"flag": "init", "from": account, "token": token(t, "site-secret", account, exp)})
				if got := c.sync(); len(got) != 0 {
					t.Fatalf("%s's init answered %v", account, got)
				}
				return c
			}

			early := dial(t, ts.url)
			early.sendJSON(map[string]string{"flag": "auth", "token": token(t, "site-secret", "alice", hour)})
			if f := early.next(5 * time.Second); f["code"] != "not_initialized" {
				t.Fatalf("auth before init -> %v; want not_initialized", f)
			}

			alice := connect("alice") // sends nothing newer
			bob := connect("bob")     // renews in time
			carol := connect("carol") // tries tokens that are refused

			bob.send(`{"flag":"auth"}`)
			if f := bob.next(5 * time.Second); f["code"] != "missing_field" {
				t.Fatalf("auth without a token -> %v; want missing_field", f)
			}
			bob.sendJSON(map[string]string{"flag": "auth", "token": token(t, "site-secret", "bob", hour)})
			if f := bob.next(5 * time.Second); f["flag"] != "auth" || f["ok"] != true || f["expires"] != float64(hour.Unix()) {
				t.Fatalf("auth with a fresh token -> %v; want {flag:auth, ok:true, expires:%d}", f, hour.Unix())
			}
			for name, tok := range map[string]string{
				"another account's": token(t, "site-secret", "bob", hour),
				"an expired":        token(t, "site-secret", "carol", time.Now().Add(-time.Minute)),
				"a badly signed":    token(t, "guessed", "carol", hour),
			} {
				carol.sendJSON(map[string]string{"flag": "auth", "token": tok})
				if f := carol.next(5 * time.Second); f["code"] != "unauthorized" {
					t.Fatalf("auth with %s token -> %v; want unauthorized", name, f)
				}
			}
			// Still carol, still usable.
			carol.send(`{"flag":"msg","from":"carol","to":"bob","content":"still me"}`)
			if f := bob.next(5 * time.Second); f["content"] != "still me" || f["from"] != "carol" {
				t.Fatalf("bob got %v; want carol's message", f)
			}

			for name, c := range map[string]*client{"alice": alice, "carol": carol} {
				ce, before := c.closed(15 * time.Second)
				if now := time.Now(); now.Before(exp) {
					t.Fatalf("%s closed at %v, before the token's exp %v", name, now, exp)
				}
				if ce.Code != 4003 || ce.Text != "token expired" || len(before) != 0 {
					t.Fatalf("%s: closed with %d %q after %v; want 4003 \"token expired\"", name, ce.Code, ce.Text, before)
				}
			}
			// A sweep or two after the others' expiry, bob is still there.
			time.Sleep(2 * time.Second)
			if got := bob.sync(); len(got) != 0 {
				t.Fatalf("bob got %v", got)
			}
		})
	}
}

// TestAuthFrameWithoutJWT: with auth.mode none an auth frame checks nothing
// (as init ignores a token there) and is answered ok, without an expiry.
func TestAuthFrameWithoutJWT(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", nil)
	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"auth","token":"anything"}`)
	if f := alice.next(5 * time.Second); f["flag"] != "auth" || f["ok"] != true || f["expires"] != nil {
		t.Fatalf("auth with auth.mode none -> %v; want {flag:auth, ok:true}", f)
	}
}
