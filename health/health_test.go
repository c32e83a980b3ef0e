package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// serve runs the probes on a loopback HTTP server until the test ends.
func serve(t *testing.T, p *Probes) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", p.ServeHealth)
	mux.HandleFunc("GET /readyz", p.ServeReady)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// get fails a probe that hangs rather than wait for the test binary's timeout.
func get(t *testing.T, url string) (int, map[string]any, string) {
	t.Helper()
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("GET %s: not JSON: %q", url, raw)
	}
	return res.StatusCode, v, string(raw)
}

// syncBuffer is a log sink the checks' goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReadyNamesTheFailingCheckAndLogsWhy: the answer names each check "ok" or
// "fail"; the error goes to the log, once when the check starts failing and
// once when it passes again, never to the prober.
func TestReadyNamesTheFailingCheckAndLogsWhy(t *testing.T) {
	var sqlErr atomic.Pointer[error]
	var logs syncBuffer
	p := New(Config{Reuse: time.Nanosecond, Checks: []Check{
		{Name: "sql", Ping: func(context.Context) error {
			if e := sqlErr.Load(); e != nil {
				return *e
			}
			return nil
		}},
		{Name: "redis", Ping: func(context.Context) error { return nil }},
	}}, zerolog.New(&logs))
	url := serve(t, p)

	if code, v, raw := get(t, url+"/readyz"); code != 200 || v["ready"] != true || !strings.Contains(raw, `"checks":{"redis":"ok","sql":"ok"}`) {
		t.Fatalf("all passing: %d %s; want 200, ready, both ok", code, raw)
	}
	down := errors.New("dial tcp 10.2.3.4:3306: i/o timeout (user chat)")
	sqlErr.Store(&down)
	for range 3 {
		code, v, raw := get(t, url+"/readyz")
		if code != 503 || v["ready"] != false || !strings.Contains(raw, `"sql":"fail"`) || !strings.Contains(raw, `"redis":"ok"`) {
			t.Fatalf("sql failing: %d %s; want 503 with sql fail, redis ok", code, raw)
		}
		if strings.Contains(raw, "10.2.3.4") || strings.Contains(raw, "chat") || strings.Contains(raw, "timeout") {
			t.Fatalf("the answer gives the error away: %s", raw)
		}
	}
	sqlErr.Store(nil)
	if code, _, raw := get(t, url+"/readyz"); code != 200 {
		t.Fatalf("sql back: %d %s; want 200", code, raw)
	}
	log := logs.String()
	if n := strings.Count(log, "10.2.3.4"); n != 1 || !strings.Contains(log, `"check":"sql"`) {
		t.Fatalf("log %s: want the sql error logged once (not at every probe)", log)
	}
	if !strings.Contains(log, "passes again") {
		t.Fatalf("log %s: want the recovery logged", log)
	}
	if code, v, _ := get(t, url+"/healthz"); code != 200 || v["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, v)
	}
}

// TestReadyChecksAtMostOncePerReuse: however many probes arrive, the checks
// run once per Reuse, so an unauthenticated /readyz cannot be turned against
// the database.
func TestReadyChecksAtMostOncePerReuse(t *testing.T) {
	var pings atomic.Int64
	p := New(Config{Reuse: time.Hour, Checks: []Check{{Name: "sql", Ping: func(context.Context) error {
		pings.Add(1)
		return nil
	}}}}, zerolog.Nop())
	url := serve(t, p)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(url + "/readyz")
			if err != nil {
				t.Error(err)
				return
			}
			_ = res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("readyz %d; want 200", res.StatusCode)
			}
		}()
	}
	wg.Wait()
	if n := pings.Load(); n != 1 {
		t.Fatalf("50 probes pinged the database %d times; want once", n)
	}
}

// TestProbesDoNotWaitForAHungCheck: while a round waits on a dependency that
// does not answer, probes get the previous round's answer at once.
func TestProbesDoNotWaitForAHungCheck(t *testing.T) {
	hang := make(chan struct{})
	entered := make(chan struct{}, 1)
	var hung atomic.Bool
	p := New(Config{Reuse: time.Nanosecond, Timeout: time.Hour, Checks: []Check{{Name: "sql", Ping: func(ctx context.Context) error {
		if !hung.Load() {
			return nil
		}
		entered <- struct{}{}
		select {
		case <-hang:
			return errors.New("gave up")
		case <-ctx.Done():
			return ctx.Err()
		}
	}}}}, zerolog.Nop())
	url := serve(t, p)
	if code, _, _ := get(t, url+"/readyz"); code != 200 {
		t.Fatalf("first round: %d", code)
	}
	hung.Store(true)
	first := make(chan int, 1)
	go func() {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			first <- 0
			return
		}
		_ = res.Body.Close()
		first <- res.StatusCode
	}()
	<-entered // a round is now stuck in the check
	if code, v, _ := get(t, url+"/readyz"); code != 200 || v["ready"] != true {
		t.Fatalf("probe during a hung round: %d %v; want the previous answer (200) at once", code, v)
	}
	close(hang)
	if code := <-first; code != 503 {
		t.Fatalf("the probe that ran the hung round: %d; want 503", code)
	}
}

// TestDrainingIsNotReady: once Drain is called /readyz answers 503 with
// draining true, whatever the checks say; /healthz still answers 200.
func TestDrainingIsNotReady(t *testing.T) {
	p := New(Config{Checks: []Check{{Name: "sql", Ping: func(context.Context) error { return nil }}}}, zerolog.Nop())
	url := serve(t, p)
	if code, v, _ := get(t, url+"/readyz"); code != 200 || v["draining"] != false {
		t.Fatalf("before Drain: %d %v", code, v)
	}
	p.Drain()
	p.Drain()
	if code, v, _ := get(t, url+"/readyz"); code != 503 || v["ready"] != false || v["draining"] != true {
		t.Fatalf("draining: %d %v; want 503, ready false, draining true", code, v)
	}
	if code, _, _ := get(t, url+"/healthz"); code != 200 {
		t.Fatalf("healthz while draining: %d; want 200 (the process is alive)", code)
	}
}

// TestAdvisoryCheckNamedButStillReady: an advisory check that fails is named
// "fail" and logged, and the node stays ready (200); a regular one failing
// beside it still makes it unready.
func TestAdvisoryCheckNamedButStillReady(t *testing.T) {
	var sqlDown atomic.Bool
	var logs syncBuffer
	p := New(Config{Reuse: time.Nanosecond, Checks: []Check{
		{Name: "sql", Ping: func(context.Context) error {
			if sqlDown.Load() {
				return errors.New("sql down")
			}
			return nil
		}},
		{Name: "notify", Advisory: true, Ping: func(context.Context) error { return errors.New("site failing for 6m") }},
	}}, zerolog.New(&logs))
	url := serve(t, p)
	code, v, raw := get(t, url+"/readyz")
	checks, _ := v["checks"].(map[string]any)
	if code != http.StatusOK || v["ready"] != true || checks["notify"] != "fail" || checks["sql"] != "ok" {
		t.Fatalf("readyz = %d %s; want 200, ready, notify named fail", code, raw)
	}
	if !strings.Contains(logs.String(), "site failing for 6m") {
		t.Fatalf("the advisory failure was not logged: %s", logs.String())
	}
	sqlDown.Store(true)
	if code, _, raw := get(t, url+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with sql down = %d %s; want 503", code, raw)
	}
}
