// Package metrics holds the server's Prometheus collectors. One Metrics value is
// made in main and passed to the components that count things; every method is
// safe on a nil *Metrics, so tests and tools can leave it out.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is every collector the server exports, on a registry of its own (no
// global state).
type Metrics struct {
	Registry *prometheus.Registry

	connections    prometheus.GaugeFunc
	framesIn       *prometheus.CounterVec
	framesOut      *prometheus.CounterVec
	pushes         prometheus.Counter
	errors         *prometheus.CounterVec
	offlineWritten prometheus.Counter
	offlineDrained prometheus.Counter
	fanout         prometheus.Histogram
	sql            *prometheus.HistogramVec
	redis          prometheus.Histogram

	// Frames waiting for the frame rate limit (handlers/delayed.go).
	delayedFrames, delayedBytes  prometheus.Gauge
	delayedConnPeak, delayedPeak prometheus.Gauge
	delayedTotal, closedTooFast  prometheus.Counter

	// Children for the label values the hot path uses, made once: a lookup by
	// label on every frame would hash the label values each time.
	outByKind map[string]prometheus.Counter
}

// knownKinds are the frame kinds counted through children made in advance
// (others are counted through the vector).
var knownKinds = []string{"push", "group", "all", "offline", "reply"}

// New registers the collectors. connections, offlineDepth and spooled are read
// at scrape time.
func New(connections, offlineDepth, spooled func() float64) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		connections: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chat_connections", Help: "WebSocket connections open on this node.",
		}, connections),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_frames_in_total", Help: "Client frames received, by flag.",
		}, []string{"flag"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_frames_out_total", Help: "Frames written to clients, by kind (push, offline, group, all, reply).",
		}, []string{"kind"}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_pushes_total", Help: "Messages (msg, group, side API) pushed to at least one live connection.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_errors_total", Help: "Error frames and API errors sent, by code.",
		}, []string{"code"}),
		offlineWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_offline_rows_written_total", Help: "Rows written to the offline pool.",
		}),
		offlineDrained: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_offline_rows_drained_total", Help: "Offline rows pushed at init and marked sent.",
		}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chat_broadcast_fanout_seconds", Help: "Time to write one announcement to every connection.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		sql: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chat_sql_seconds", Help: "SQL statement latency, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"op"}),
		redis: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chat_redis_seconds", Help: "Latency of one pipeline of account-map writes to Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	m.delayedFrames = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chat_delayed_frames", Help: "Client frames waiting for their turn under limits.frames_per_second, all connections.",
	})
	m.delayedBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chat_delayed_bytes", Help: "Bytes of the client frames waiting under limits.frames_per_second (bounded by limits.max_delayed_bytes).",
	})
	m.delayedConnPeak = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chat_delayed_frames_conn_peak", Help: "Most frames one connection had waiting at once since start (bounded by limits.max_delayed_frames).",
	})
	m.delayedPeak = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chat_delayed_bytes_peak", Help: "Most bytes of waiting frames at once since start, all connections.",
	})
	m.delayedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_delayed_frames_total", Help: "Client frames that waited for their turn under limits.frames_per_second.",
	})
	m.closedTooFast = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_closed_too_fast_total", Help: "Connections closed with 4029: more frames waiting under the rate limit than the bound.",
	})
	r.MustRegister(m.delayedFrames, m.delayedBytes, m.delayedConnPeak, m.delayedPeak, m.delayedTotal, m.closedTooFast)
	m.outByKind = make(map[string]prometheus.Counter, len(knownKinds))
	for _, k := range knownKinds {
		m.outByKind[k] = m.framesOut.WithLabelValues(k)
	}
	r.MustRegister(m.connections, m.framesIn, m.framesOut, m.pushes, m.errors, m.offlineWritten,
		m.offlineDrained, m.fanout, m.sql, m.redis,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chat_offline_queue_depth", Help: "Offline messages accepted but not yet written.",
		}, offlineDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chat_offline_spool_rows", Help: "Offline messages in the disk spool, waiting for MySQL.",
		}, spooled),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// FrameInCounter returns the counter of client frames under one flag label,
// for the caller to keep and count through (a lookup by label on every frame
// would hash the label each time). The handlers make one for each label they
// use (see handlers/flags.go). On a nil Metrics it is a counter nobody reads.
func (m *Metrics) FrameInCounter(flag string) prometheus.Counter {
	if m == nil {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_frames_in_total"})
	}
	return m.framesIn.WithLabelValues(flag)
}

// FramesOut counts n frames written of a kind.
func (m *Metrics) FramesOut(kind string, n int) {
	if m == nil || n <= 0 {
		return
	}
	if c, ok := m.outByKind[kind]; ok {
		c.Add(float64(n))
		return
	}
	m.framesOut.WithLabelValues(kind).Add(float64(n))
}

// Pushed counts a message that reached a live connection.
func (m *Metrics) Pushed() {
	if m != nil {
		m.pushes.Inc()
	}
}

// Error counts an error sent, by code.
func (m *Metrics) Error(code string) {
	if m != nil {
		m.errors.WithLabelValues(code).Inc()
	}
}

// OfflineWritten counts rows written to the pool.
func (m *Metrics) OfflineWritten(n int) {
	if m != nil {
		m.offlineWritten.Add(float64(n))
	}
}

// OfflineDrained counts rows pushed at init.
func (m *Metrics) OfflineDrained(n int) {
	if m != nil {
		m.offlineDrained.Add(float64(n))
	}
}

// Fanout records one broadcast's duration.
func (m *Metrics) Fanout(d time.Duration) {
	if m != nil {
		m.fanout.Observe(d.Seconds())
	}
}

// SQL records one statement's latency.
func (m *Metrics) SQL(op string, d time.Duration) {
	if m != nil {
		m.sql.WithLabelValues(op).Observe(d.Seconds())
	}
}

// Redis records one pipeline's latency.
func (m *Metrics) Redis(d time.Duration) {
	if m != nil {
		m.redis.Observe(d.Seconds())
	}
}

// Delayed counts frames that start (n > 0) or stop (n < 0) waiting for the
// frame rate limit, and their bytes. Starting ones are counted in the total too.
func (m *Metrics) Delayed(n, bytes int) {
	if m == nil {
		return
	}
	m.delayedFrames.Add(float64(n))
	m.delayedBytes.Add(float64(bytes))
	if n > 0 {
		m.delayedTotal.Add(float64(n))
	}
}

// DelayedPeaks records new highs: frames waiting on one connection, and bytes
// waiting on all of them.
func (m *Metrics) DelayedPeaks(connFrames, bytes int64) {
	if m == nil {
		return
	}
	if connFrames > 0 {
		m.delayedConnPeak.Set(float64(connFrames))
	}
	if bytes > 0 {
		m.delayedPeak.Set(float64(bytes))
	}
}

// ClosedTooFast counts a connection closed for the frames it had waiting.
func (m *Metrics) ClosedTooFast() {
	if m != nil {
		m.closedTooFast.Inc()
	}
}
