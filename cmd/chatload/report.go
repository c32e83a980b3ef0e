package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is what a run reports: printed as a table, or as JSON with -json.
// Times are in milliseconds or seconds as the field name says.
type result struct {
	Scenario  string           `json:"scenario"`
	Target    string           `json:"target"`
	Prefix    string           `json:"prefix"`
	Workers   int              `json:"workers"`
	Connect   *connectStats    `json:"connect,omitempty"`
	Idle      *idleResult      `json:"idle,omitempty"`
	Broadcast *broadcastResult `json:"broadcast,omitempty"`
	Pairs     *pairsResult     `json:"pairs,omitempty"`
	Offline   *offlineResult   `json:"offline,omitempty"`
	Handover  *handoverResult  `json:"handover,omitempty"`
	CPU       *cpuResult       `json:"cpu,omitempty"`
	Client    *status          `json:"client,omitempty"`
	ElapsedS  float64          `json:"elapsed_s"`
}

type connectStats struct {
	Attempted  int     `json:"attempted"`
	OK         int     `json:"ok"`
	Failed     int     `json:"failed"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"per_sec"` // connect + init (+ pong) completed per second
	FirstError string  `json:"first_error,omitempty"`
}

func (a *connectStats) plus(b *connectStats) *connectStats {
	if a == nil {
		c := *b
		return &c
	}
	out := &connectStats{Attempted: a.Attempted + b.Attempted, OK: a.OK + b.OK, Failed: a.Failed + b.Failed,
		Seconds: a.Seconds + b.Seconds, FirstError: a.FirstError}
	if out.FirstError == "" {
		out.FirstError = b.FirstError
	}
	if out.Seconds > 0 {
		out.PerSec = float64(out.OK) / out.Seconds
	}
	return out
}

type idleResult struct {
	BaselineRSS    int64      `json:"baseline_rss_bytes,omitempty"`
	BaselineHeap   *float64   `json:"baseline_heap_inuse_bytes,omitempty"`
	Steps          []idleStep `json:"steps"`
	SlopeFirstLast *float64   `json:"slope_first_last_bytes_per_conn,omitempty"`
}

type idleStep struct {
	Conns         int64    `json:"conns"` // open at the sample
	ConnectPerSec float64  `json:"connect_per_sec"`
	RSS           int64    `json:"rss_bytes,omitempty"`
	Settled       bool     `json:"settled"`
	Slope         *float64 `json:"slope_bytes_per_conn,omitempty"` // vs the previous step (or the baseline)
	HeapInuse     *float64 `json:"heap_inuse_bytes,omitempty"`
	HeapSlope     *float64 `json:"heap_slope_bytes_per_conn,omitempty"`
}

type broadcastResult struct {
	Via            string `json:"via"`                       // "all frame" or "side API <url>"
	APIConnections int64  `json:"api_connections,omitempty"` // the API node's own count for the last announcement
	Receivers      int64  `json:"receivers"`                 // expected per broadcast (every open connection)
	Rounds         int    `json:"rounds"`
	Complete       int    `json:"complete"` // rounds every receiver got in time
	Delivered      int64  `json:"delivered"`
	Missing        int64  `json:"missing"`    // not received within the round
	Duplicates     int64  `json:"duplicates"` // further copies to a connection, until -grace after the last round
	// Fan-out completion per round: the slowest receiver's receipt minus the send.
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Per-connection latency: every first copy's receipt minus the send.
	ConnP50ms        float64   `json:"conn_p50_ms"`
	ConnP99ms        float64   `json:"conn_p99_ms"`
	ConnMaxMs        float64   `json:"conn_max_ms"`
	DeliveriesPerSec float64   `json:"deliveries_per_sec"` // delivered / sum of completion times
	RoundsMs         []float64 `json:"rounds_ms"`
}

type pairsResult struct {
	Pairs           int         `json:"pairs"`
	Rate            float64     `json:"rate"` // 0 = closed loop
	Window          int         `json:"window,omitempty"`
	DurationS       float64     `json:"duration_s"`
	Sent            int64       `json:"sent"`
	Delivered       int64       `json:"delivered"`
	Lost            int64       `json:"lost"`
	Duplicated      int64       `json:"duplicated"`
	OutOfOrder      int64       `json:"out_of_order"`
	WrongFrom       int64       `json:"wrong_from"`
	SentPerSec      float64     `json:"sent_per_sec"`
	DeliveredPerSec float64     `json:"delivered_per_sec"`
	LatP50ms        float64     `json:"latency_p50_ms"`
	LatP99ms        float64     `json:"latency_p99_ms"`
	LatMaxMs        float64     `json:"latency_max_ms"`
	Behind          int64       `json:"late_sends"`     // paced sends more than 10 ms late (client could not keep the rate)
	Skipped         int64       `json:"pairs_skipped"`  // a connection of the pair failed to open
	Ping            *pingResult `json:"ping,omitempty"` // -ping-conns
}

type offlineResult struct {
	Messages        int64    `json:"messages"`
	Accounts        int      `json:"accounts"`
	Sent            int64    `json:"sent"`
	RowsSeen        *int64   `json:"rows_seen,omitempty"`
	WriteSeconds    *float64 `json:"write_s,omitempty"`
	RowsWrittenPerS *float64 `json:"rows_written_per_sec,omitempty"`
	DrainSeconds    float64  `json:"drain_s"`
	DrainedPerSec   float64  `json:"drained_per_sec"`
	Delivered       int64    `json:"delivered"`
	Lost            int64    `json:"lost"`
	Duplicated      int64    `json:"duplicated"`
	OutOfOrder      int64    `json:"out_of_order"`
	WrongFrom       int64    `json:"wrong_from"`
	UnsentAfter     *int64   `json:"rows_unsent_after_drain,omitempty"`
}

type cpuResult struct {
	Seconds       float64 `json:"seconds"`             // server utime+stime (0 without -pid), all its processes
	Processes     int     `json:"processes,omitempty"` // server processes summed (-pid a,b,c)
	Delivered     int64   `json:"delivered"`
	PerThousand   float64 `json:"seconds_per_1000_delivered"`
	ClientSeconds float64 `json:"client_seconds"` // all worker processes
}

func printResult(w io.Writer, asJSON bool, r *result) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("print json: %w", err)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, format string, a ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...)
	}
	row("scenario", "%s  target %s  prefix %s  workers %d  elapsed %.1fs", r.Scenario, r.Target, r.Prefix, r.Workers, r.ElapsedS)
	if c := r.Connect; c != nil {
		row("connect+init", "%d ok / %d failed in %.2fs = %.0f conns/s", c.OK, c.Failed, c.Seconds, c.PerSec)
		if c.FirstError != "" {
			row("  first error", "%s", c.FirstError)
		}
	}
	printIdle(row, r.Idle)
	printBroadcast(row, r.Broadcast)
	printPairs(row, r.Pairs)
	printOffline(row, r.Offline)
	printHandover(row, r.Handover)
	if c := r.CPU; c != nil {
		if c.Seconds > 0 {
			procs := ""
			if c.Processes > 1 {
				procs = fmt.Sprintf(" (%d processes)", c.Processes)
			}
			row("server CPU", "%.2f s%s for %d delivered = %.4f CPU-s per 1000", c.Seconds, procs, c.Delivered, c.PerThousand)
		}
		row("client CPU", "%.2f s (all workers, same phase)", c.ClientSeconds)
	}
	if s := r.Client; s != nil {
		row("client", "open %d  closed by server %d  failed dials %d  unexpected frames %d", s.Open, s.Closed, s.Failed, s.Unexpected)
		row("server errors", "%s", formatErrors(s))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print table: %w", err)
	}
	return nil
}

type rowFunc func(k string, format string, a ...any)

func printIdle(row rowFunc, r *idleResult) {
	if r == nil {
		return
	}
	if r.BaselineRSS > 0 {
		row("baseline RSS", "%s%s", mib(r.BaselineRSS), optBytes("  heap_inuse ", r.BaselineHeap))
	}
	for _, s := range r.Steps {
		line := fmt.Sprintf("%.0f conns/s", s.ConnectPerSec)
		if s.RSS > 0 {
			line += fmt.Sprintf("  RSS %s%s", mib(s.RSS), optNum("  Δ/conn ", s.Slope, " B"))
			if !s.Settled {
				line += " (not settled)"
			}
		}
		line += optBytes("  heap_inuse ", s.HeapInuse) + optNum("  heap Δ/conn ", s.HeapSlope, " B")
		row(fmt.Sprintf("step %d conns", s.Conns), "%s", line)
	}
	if r.SlopeFirstLast != nil {
		row("RSS slope first→last", "%.0f B/conn", *r.SlopeFirstLast)
	}
}

func printBroadcast(row rowFunc, r *broadcastResult) {
	if r == nil {
		return
	}
	via := r.Via
	if r.APIConnections > 0 {
		via += fmt.Sprintf(" (its node: %d connections)", r.APIConnections)
	}
	row("broadcast", "%d rounds to %d receivers via %s", r.Rounds, r.Receivers, via)
	row("complete / missing / dup", "%d rounds / %d / %d", r.Complete, r.Missing, r.Duplicates)
	row("fan-out completion", "p50 %.1f ms  p99 %.1f ms  max %.1f ms", r.P50ms, r.P99ms, r.MaxMs)
	row("per-connection latency", "p50 %.1f ms  p99 %.1f ms  max %.1f ms", r.ConnP50ms, r.ConnP99ms, r.ConnMaxMs)
	row("deliveries", "%d = %.0f /s during fan-out", r.Delivered, r.DeliveriesPerSec)
}

func printPairs(row rowFunc, r *pairsResult) {
	if r == nil {
		return
	}
	mode := fmt.Sprintf("rate %.0f msg/s", r.Rate)
	if r.Rate == 0 {
		mode = fmt.Sprintf("flat out (window %d per pair)", r.Window)
	}
	row("pairs", "%d pairs, %s, %.1fs", r.Pairs, mode, r.DurationS)
	row("sent / delivered", "%d (%.0f/s) / %d (%.0f/s)", r.Sent, r.SentPerSec, r.Delivered, r.DeliveredPerSec)
	row("latency", "p50 %.2f ms  p99 %.2f ms  max %.2f ms", r.LatP50ms, r.LatP99ms, r.LatMaxMs)
	row("lost / dup / out-of-order", "%d / %d / %d  (wrong sender %d, late sends %d, pairs skipped %d)",
		r.Lost, r.Duplicated, r.OutOfOrder, r.WrongFrom, r.Behind, r.Skipped)
	if p := r.Ping; p != nil {
		row("ping round trip", "p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d conns every %.0f ms: %d sent, %d answered, %d unanswered at the end)",
			p.P50ms, p.P99ms, p.MaxMs, p.Conns, p.EveryMs, p.Sent, p.Answered, p.Unanswered)
	}
}

func printOffline(row rowFunc, r *offlineResult) {
	if r == nil {
		return
	}
	row("offline", "%d messages to %d accounts, %d sent", r.Messages, r.Accounts, r.Sent)
	if r.WriteSeconds != nil && r.RowsWrittenPerS != nil {
		row("rows written", "%d in %.2fs = %.0f rows/s", deref(r.RowsSeen), *r.WriteSeconds, *r.RowsWrittenPerS)
	}
	row("drained", "%d in %.2fs = %.0f rows/s", r.Delivered, r.DrainSeconds, r.DrainedPerSec)
	row("lost / dup / out-of-order", "%d / %d / %d  (wrong sender %d)", r.Lost, r.Duplicated, r.OutOfOrder, r.WrongFrom)
	if r.UnsentAfter != nil {
		row("rows status=0 after drain", "%d", *r.UnsentAfter)
	}
}

func formatErrors(s *status) string {
	if len(s.Errors) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(s.Errors))
	for k := range s.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, s.Errors[k])
	}
	return b.String() + "(e.g. " + s.ErrSample + ")"
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func optBytes(label string, v *float64) string {
	if v == nil {
		return ""
	}
	return label + mib(int64(*v))
}

func optNum(label string, v *float64, unit string) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%s%.0f%s", label, *v, unit)
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr[T any](v T) *T { return &v }

// problems lists what went wrong with delivery in a run that did complete:
// failed connects, broadcast deliveries that never came, and messages lost,
// duplicated, reordered or from the wrong sender. Empty when all is well.
func (r *result) problems() []string {
	var out []string
	add := func(n int64, what string) {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, what))
		}
	}
	if c := r.Connect; c != nil {
		add(int64(c.Failed), "connects failed")
	}
	if b := r.Broadcast; b != nil {
		add(b.Missing, "broadcast deliveries missing")
		add(b.Duplicates, "broadcast deliveries duplicated")
	}
	if p := r.Pairs; p != nil {
		add(p.Lost, "messages lost")
		add(p.Duplicated, "messages duplicated")
		add(p.OutOfOrder, "messages out of order")
		add(p.WrongFrom, "messages from the wrong sender")
		if p.Ping != nil {
			add(p.Ping.Unanswered, "pings unanswered")
		}
	}
	if h := r.Handover; h != nil {
		add(h.Lost, "acknowledged messages lost")
		add(h.Unacked, "messages never acknowledged")
		add(h.WrongFrom, "messages from the wrong sender")
		add(h.OtherCloses, "connections closed without 1012")
	}
	if o := r.Offline; o != nil {
		add(o.Lost, "offline messages lost")
		add(o.Duplicated, "offline messages duplicated")
		add(o.OutOfOrder, "offline messages out of order")
		add(o.WrongFrom, "offline messages from the wrong sender")
	}
	return out
}

// deliveryError is a completed run's problems; chatload exits 2 for it, so a
// script can tell a run that found loss from one that could not run (1).
type deliveryError struct{ problems []string }

func (e *deliveryError) Error() string {
	return "delivery problems: " + strings.Join(e.problems, ", ")
}
