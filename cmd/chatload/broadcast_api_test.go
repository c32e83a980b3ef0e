package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func startAPIFake(t *testing.T, secret string, dup int) (*fakeServer, string) {
	t.Helper()
	f := &fakeServer{answerPing: true, apiSecret: secret, dupAnnounce: dup, online: map[string]*fakeConn{}, stored: map[string][]fakeMsg{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

// TestBroadcastThroughAPI: with -broadcast-api every announcement is a POST
// to the side API, no client sends an "all" frame, every connection is a
// receiver and gets each announcement once.
func TestBroadcastThroughAPI(t *testing.T) {
	for _, fromEnv := range []bool{false, true} {
		name := "flag"
		if fromEnv {
			name = "env"
		}
		t.Run("secret-"+name, func(t *testing.T) {
			f, addr := startAPIFake(t, "s3cret", 0)
			args := []string{"broadcast", "-addr", addr, "-conns", "30", "-k", "4", "-workers", "2", "-grace", "200ms",
				"-broadcast-api", "http://" + addr + "/api/broadcast"}
			getenv := noEnv
			if fromEnv {
				getenv = func(k string) string {
					if k == "CHAT_API_SECRET" {
						return "s3cret"
					}
					return ""
				}
			} else {
				args = append(args, "-api-secret", "s3cret")
			}
			r := runToolEnv(t, getenv, args...)
			b := r.Broadcast
			if b == nil || b.Receivers != 30 || b.Complete != 4 || b.Delivered != 120 || b.Missing != 0 || b.Duplicates != 0 {
				t.Fatalf("broadcast = %+v", b)
			}
			if !strings.HasPrefix(b.Via, "side API ") || b.APIConnections != 30 {
				t.Errorf("via %q, API node reported %d connections; want the side API and 30", b.Via, b.APIConnections)
			}
			if b.MaxMs <= 0 || b.ConnMaxMs <= 0 || b.ConnP99ms > b.ConnMaxMs {
				t.Errorf("fan-out max %.3f ms, per-connection p99 %.3f max %.3f", b.MaxMs, b.ConnP99ms, b.ConnMaxMs)
			}
			f.mu.Lock()
			frames := f.allFrames
			f.mu.Unlock()
			if frames != 0 {
				t.Errorf("clients sent %d \"all\" frames; the API sends the announcements", frames)
			}
		})
	}
}

// TestBroadcastDuplicatesFailTheRun: a server that writes an announcement
// twice to one connection makes the run report each extra copy and end with
// a deliveryError, its result printed all the same.
func TestBroadcastDuplicatesFailTheRun(t *testing.T) {
	_, addr := startAPIFake(t, "s3cret", 2)
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, []string{"broadcast", "-addr", addr, "-conns", "10", "-k", "3", "-workers", "1", "-grace", "300ms",
		"-broadcast-api", "http://" + addr + "/api/broadcast", "-api-secret", "s3cret", "-json", "-max-time", "50s"},
		noEnv, nil, &out, &syncWriter{w: &log})
	var de *deliveryError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "6 broadcast deliveries duplicated") {
		t.Fatalf("err = %v, want a deliveryError naming 6 duplicates\n%s", err, log.String())
	}
	var r result
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil || r.Broadcast == nil {
		t.Fatalf("the result must still be printed: %v\n%s", jerr, out.String())
	}
	if b := r.Broadcast; b.Duplicates != 6 || b.Missing != 0 || b.Delivered != 30 {
		t.Errorf("broadcast = %+v; want 30 delivered once, 6 duplicates", b)
	}
}

// TestBroadcastAPIRefused: an API that refuses the secret stops the run with
// the server's answer, before any round is counted.
func TestBroadcastAPIRefused(t *testing.T) {
	_, addr := startAPIFake(t, "s3cret", 0)
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err := run(ctx, []string{"broadcast", "-addr", addr, "-conns", "4", "-k", "2", "-workers", "1",
		"-broadcast-api", "http://" + addr + "/api/broadcast", "-api-secret", "wrong", "-max-time", "50s"},
		noEnv, nil, &out, &syncWriter{w: &log})
	var de *deliveryError
	if err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want the API's 401", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("a refused announcement took %s to stop the run; it must not wait out -round-timeout", d)
	}
}

func TestBroadcastAPIConfig(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error substring, "" = valid
	}{
		{[]string{"broadcast", "-pid", "12,34"}, ""},
		{[]string{"broadcast", "-pid", "12,x"}, "-pid"},
		{[]string{"broadcast", "-broadcast-api", "http://127.0.0.1:9053/api/broadcast"}, "CHAT_API_SECRET"},
		{[]string{"broadcast", "-broadcast-api", "127.0.0.1:9053", "-api-secret", "s"}, "-broadcast-api"},
		{[]string{"broadcast", "-broadcast-api", "http://127.0.0.1:9053/api/broadcast", "-api-secret", "s"}, ""},
	} {
		c, err := parseConfig(tc.args, noEnv, &bytes.Buffer{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err = %v, want one naming %s", tc.args, err, tc.want)
		case tc.want == "" && tc.args[1] == "-pid" && (len(c.pids) != 2 || c.pids[0] != 12 || c.pids[1] != 34):
			t.Errorf("%v: pids = %v", tc.args, c.pids)
		}
	}
}
