package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// dashboard is the part of a Grafana dashboard that holds queries.
type dashboard struct {
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type dashPanel struct {
	ID      int         `json:"id"`
	Title   string      `json:"title"`
	Type    string      `json:"type"`
	Panels  []dashPanel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardQueries returns every PromQL expression of the dashboard: panel
// targets (rows' included) and template variable queries; and fails the test
// on duplicate panel ids.
func dashboardQueries(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]string{} // expression -> where
	ids := map[int]bool{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice (%q)", p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out[tg.Expr] = "panel " + p.Title
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if err := json.Unmarshal(v.Query, &s); err != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
			q.Query = s
		}
		expr := q.Query
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			expr = m[1] // label_values(metric, label): the label is no metric
		}
		out[expr] = "variable " + v.Name
	}
	return out
}

var (
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\[\]]*\]`)
	promClauses  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent    = regexp.MustCompile(`\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(\s*\()?`)
	promKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"}
)

// promMetrics returns the metric names a PromQL expression reads: identifiers
// that are not functions or aggregations (followed by "("), keywords, label
// names (in matchers and by/on clauses), strings or durations.
func promMetrics(expr string) []string {
	s := promStrings.ReplaceAllString(expr, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promClauses.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promIdent.FindAllStringSubmatch(s, -1) {
		name := strings.TrimSpace(m[0])
		if m[1] != "" || slices.Contains(promKeywords, strings.ToLower(name)) || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestPromMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le, op) (rate(chat_sql_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`: {"chat_sql_seconds_bucket"},
		`process_resident_memory_bytes{instance=~"$instance"} / clamp_min(chat_connections{instance=~"$instance"}, 1)`:       {"process_resident_memory_bytes", "chat_connections"},
		`sum without (code) (rate(chat_errors_total{code!="x"}[5m] offset 1h)) > bool 0 and on(instance) up`:                 {"chat_errors_total", "up"},
		`chat_connections`:    {"chat_connections"},
		`1e3 * go_goroutines`: {"go_goroutines"},
	} {
		if got := promMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promMetrics(%s) = %v; want %v", expr, got, want)
		}
	}
}

// TestDashboardMetricsExported reads every PromQL expression of
// deploy/grafana-dashboard.json and checks that each metric it names is in
// the /metrics of a real server (Redis and MariaDB, after some chat so that
// labelled series exist): a renamed metric or a typo leaves a panel empty,
// and this catches it. It also checks that the dashboard covers what an
// operator of a large node watches.
func TestDashboardMetricsExported(t *testing.T) {
	t.Parallel()
	queries := dashboardQueries(t, "../deploy/grafana-dashboard.json")

	ts := startServer(t, "redis+mariadb", nil)
	alice, _ := login(t, ts, "alice", "")
	alice.send(`{"flag":"nonsense"}`) // an error frame: chat_errors_total{code}
	alice.sendJSON(map[string]string{"flag": "msg", "from": "alice", "to": "nobody-online", "content": "stored"})
	alice.sync()
	eventually(t, "the offline row written", func() bool { return ts.metric("chat_offline_rows_written_total") >= 1 })
	login(t, ts, "nobody-online", "") // a drain: chat_sql_seconds{op="drain_select"}
	code, out := ts.api("GET", "/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	text, _ := out["text"].(string)
	exported := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		exported[name] = true
	}

	used := map[string]bool{}
	for expr, where := range queries {
		names := promMetrics(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %s", where, expr)
		}
		for _, name := range names {
			used[name] = true
			if !exported[name] {
				t.Errorf("%s reads %s, which the server does not export (in %s)", where, name, expr)
			}
		}
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("the dashboard reads %d metrics: %s", len(names), strings.Join(names, " "))

	for _, want := range []string{
		"chat_connections", "chat_frames_in_total", "chat_frames_out_total", "chat_errors_total",
		"chat_offline_queue_depth", "chat_offline_spool_rows", "chat_sql_seconds_bucket", "chat_redis_seconds_bucket",
		"chat_broadcast_fanout_seconds_bucket", "process_resident_memory_bytes",
	} {
		if !used[want] {
			t.Errorf("the dashboard has no panel on %s", want)
		}
	}
}
