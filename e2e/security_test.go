package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"chatserver/config"
)

func token(t *testing.T, key, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWTAtInit: with auth.mode jwt, init needs a token for the account it
// claims, in the frame or on the URL; every bad token is refused and binds
// nothing.
func TestJWTAtInit(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, func(c *config.Config) {
				c.Auth.Mode = "jwt"
				c.Auth.JWTSecret = "site-secret"
			})
			hour := time.Now().Add(time.Hour)
			none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": hour.Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
			refused := map[string]string{
				"no token":      "",
				"bad signature": token(t, "guessed", "alice", hour),
				"expired":       token(t, "site-secret", "alice", time.Now().Add(-time.Hour)),
				"wrong subject": token(t, "site-secret", "mallory", hour),
				"alg none":      none,
			}
			for name, tok := range refused {
				c := dial(t, ts.url)
				c.sendJSON(map[string]string{"flag": "init", "from": "alice", "token": tok})
				if f := c.next(5 * time.Second); f["code"] != "unauthorized" {
					t.Fatalf("%s: init -> %v; want unauthorized", name, f)
				}
				c.send(`{"flag":"msg","from":"alice","to":"bob","content":"x"}`)
				if f := c.next(5 * time.Second); f["code"] != "not_initialized" {
					t.Fatalf("%s: after a refused init, msg -> %v; want not_initialized", name, f)
				}
			}
			// In the frame.
			alice := dial(t, ts.url)
			alice.sendJSON(map[string]string{"flag": "init", "from": "alice", "token": token(t, "site-secret", "alice", hour)})
			alice.sync()
			// On the URL.
			bob := dial(t, ts.url+"?token="+token(t, "site-secret", "bob", hour))
			bob.send(`{"flag":"init","from":"bob"}`)
			bob.sync()
			alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"authenticated"}`)
			if f := bob.next(5 * time.Second); f["content"] != "authenticated" {
				t.Fatalf("bob got %v", f)
			}
			// After init, only as itself.
			alice.send(`{"flag":"msg","from":"bob","to":"alice","content":"spoof"}`)
			if f := alice.next(5 * time.Second); f["code"] != "wrong_sender" {
				t.Fatalf("spoofed from -> %v", f)
			}
		})
	}
}

// TestBroadcastPermission: only listed accounts may send "all"; the default
// list is empty; "*" restores the legacy "anyone".
func TestBroadcastPermission(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", func(c *config.Config) { c.Broadcast.Allowed = []string{"admin"} })
	admin, _ := login(t, ts, "admin", "")
	user, _ := login(t, ts, "user", "")
	user.send(`{"flag":"all","from":"user","content":"free crypto"}`)
	if f := user.next(5 * time.Second); f["code"] != "forbidden" {
		t.Fatalf("broadcast by user -> %v; want forbidden", f)
	}
	admin.send(`{"flag":"all","from":"admin","content":"notice"}`)
	if f := user.next(5 * time.Second); f["content"] != "notice" {
		t.Fatalf("user got %v; want the admin's notice", f)
	}

	def := startServer(t, "embedded", nil)
	someone, _ := login(t, def, "admin", "")
	someone.send(`{"flag":"all","from":"admin","content":"x"}`)
	if f := someone.next(5 * time.Second); f["code"] != "forbidden" {
		t.Fatalf("broadcast with the default (empty) list -> %v; want forbidden", f)
	}

	legacy := startServer(t, "embedded", func(c *config.Config) { c.Broadcast.Allowed = []string{"*"} })
	anyone, _ := login(t, legacy, "anyone", "")
	anyone.send(`{"flag":"all","from":"anyone","content":"hi all"}`)
	if f := anyone.next(5 * time.Second); f["content"] != "hi all" {
		t.Fatalf("with * anyone may broadcast: got %v", f)
	}
}

// TestLimits: frames per second (refused for clients that use cids, delayed
// for the others), connections per IP, content length and allowed origins,
// each with its error and nothing else disturbed.
// Not parallel: its rate and per-IP checks count on timing that a busy
// machine stretches (once, under parallel load, the allowed-origin dial got an
// EOF instead of the upgrade, not yet explained).
func TestLimits(t *testing.T) {
	ts := startServer(t, "embedded", func(c *config.Config) {
		c.Limits.FramesPerSecond, c.Limits.FrameBurst = 5, 5
		c.Limits.ConnectionsPerIP = 3
		c.Limits.MaxContentBytes = 100
		c.Limits.AllowedOrigins = []string{"https://chat.example.com"}
	})
	alice, _ := login(t, ts, "alice", "") // init + ping: 2 of the burst
	bob, _ := login(t, ts, "bob", "")
	// Frames with a cid (acknowledging clients) over the rate are refused at
	// once, each with its cid: their client resends.
	for i := 0; i < 10; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": "c", "cid": strconv.Itoa(i)})
	}
	acked, limited := 0, 0
	for i := 0; i < 10; i++ {
		f := alice.next(5 * time.Second)
		switch {
		case f["flag"] == "ack":
			acked++
		case f["code"] == "rate_limited" && f["cid"] != nil:
			limited++
		default:
			t.Fatalf("alice got %v; want acks and rate_limited errors carrying their cid", f)
		}
	}
	for i := 0; i < acked; i++ {
		if f := bob.next(time.Second); f["content"] != "c" {
			t.Fatalf("bob got %v", f)
		}
	}
	if limited < 5 {
		t.Fatalf("only %d of 10 frames with a cid over the limit were refused", limited)
	}
	// Legacy frames (no cid) over the rate wait for their turn: none is
	// refused, all arrive, in order.
	for i := 0; i < 10; i++ {
		alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "bob", "content": "x" + strconv.Itoa(i)})
	}
	if got := alice.sync(); len(got) != 0 {
		t.Fatalf("alice got %v; want no error for frames that waited", got)
	}
	for i := 0; i < 10; i++ {
		if f := bob.next(time.Second); f["content"] != "x"+strconv.Itoa(i) {
			t.Fatalf("bob got %v; want x%d", f, i)
		}
	}
	time.Sleep(time.Second) // the bucket refills
	alice.send(`{"flag":"msg","from":"alice","to":"bob","content":"` + strings.Repeat("y", 101) + `"}`)
	if f := alice.next(time.Second); f["code"] != "too_long" {
		t.Fatalf("101-byte content -> %v; want too_long", f)
	}

	// Connections per IP: alice and bob hold 2; one more fits, the next is refused.
	dial(t, ts.url)
	_, res, err := websocket.DefaultDialer.Dial(ts.url, nil)
	if err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th connection from one IP: %v, %v; want HTTP 429", err, res)
	}

	// Origins: a browser from elsewhere is refused; the allowed one and
	// non-browsers (no Origin) get in.
	h := http.Header{"Origin": {"https://evil.example.net"}}
	_ = bob.ws.Close()
	_ = alice.ws.Close()
	// The server frees the closed connections' per-IP slots when it sees the
	// closes: until then a dial is refused for the count, not the origin.
	eventually(t, "the closed connections' slots freed", func() bool {
		_, res, err = websocket.DefaultDialer.Dial(ts.url, h)
		return err == nil || (res != nil && res.StatusCode != http.StatusTooManyRequests)
	})
	if err == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v, %v; want HTTP 403", err, res)
	}
	ok, _, err := websocket.DefaultDialer.Dial(ts.url, http.Header{"Origin": {"https://chat.example.com"}})
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	_ = ok.Close()
}

// TestAnnouncementsReachBoundConnectionsOnly: with auth.mode jwt, a connection
// that never sent init and one whose init was refused receive no announcement
// (side API or flag:all); a bound one receives both.
func TestAnnouncementsReachBoundConnectionsOnly(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "embedded", func(c *config.Config) {
		c.Auth.Mode = "jwt"
		c.Auth.JWTSecret = "site-secret"
		c.Broadcast.Allowed = []string{"admin"}
	})
	hour := time.Now().Add(time.Hour)
	admin := dial(t, ts.url)
	admin.sendJSON(map[string]string{"flag": "init", "from": "admin", "token": token(t, "site-secret", "admin", hour)})
	admin.sync()
	silent := dial(t, ts.url) // never sends init
	refused := dial(t, ts.url)
	refused.sendJSON(map[string]string{"flag": "init", "from": "mallory", "token": "forged"})
	if f := refused.next(5 * time.Second); f["code"] != "unauthorized" {
		t.Fatalf("forged init got %v; want unauthorized", f)
	}

	admin.send(`{"flag":"all","from":"admin","content":"from a client"}`)
	if f := admin.next(5 * time.Second); f["content"] != "from a client" {
		t.Fatalf("the bound sender got %v; want its announcement", f)
	}
	if code, _ := ts.api("POST", "/api/broadcast", map[string]string{"from": "admin", "content": "from the site"}); code != 200 {
		t.Fatalf("api broadcast: %d", code)
	}
	if f := admin.next(5 * time.Second); f["content"] != "from the site" {
		t.Fatalf("the bound connection got %v; want the API announcement", f)
	}
	silent.none(500 * time.Millisecond)
	refused.none(100 * time.Millisecond)
}
