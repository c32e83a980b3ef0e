package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestProbesOnBothPorts: the WebSocket port and the side API answer /healthz
// and /readyz without the secret, with the same checks (SQL, and with Redis
// and MySQL the spool and Redis too).
func TestProbesOnBothPorts(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := startServer(t, backend, nil)
			wsBase := "http://" + strings.TrimSuffix(strings.TrimPrefix(ts.url, "ws://"), "/")
			get := func(url string) (int, map[string]any) {
				res, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
				if err != nil {
					t.Fatalf("GET %s: %v", url, err)
				}
				defer res.Body.Close()
				raw, _ := io.ReadAll(res.Body)
				var v map[string]any
				if err := json.Unmarshal(raw, &v); err != nil {
					t.Fatalf("GET %s: %d, not JSON: %q", url, res.StatusCode, raw)
				}
				return res.StatusCode, v
			}
			want := map[string]any{"sql": "ok"}
			if backend == "redis+mariadb" {
				want = map[string]any{"sql": "ok", "spool": "ok", "redis": "ok"}
			}
			for _, base := range []string{wsBase, ts.apiURL} {
				if code, v := get(base + "/healthz"); code != 200 || v["status"] != "ok" {
					t.Fatalf("%s/healthz: %d %v; want 200 ok", base, code, v)
				}
				code, v := get(base + "/readyz")
				if code != 200 || v["ready"] != true || !reflect.DeepEqual(v["checks"], want) {
					t.Fatalf("%s/readyz: %d %v; want 200, ready, checks %v", base, code, v, want)
				}
			}
		})
	}
}
