package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in microseconds: exact below 128 µs,
// then 64 buckets per power of two (≤1.6% error), enough for hours.
type hist struct {
	counts [64 * 64]uint64
	total  uint64
	max    int64 // ns, exact
}

// histEntry is one non-empty bucket on the wire.
type histEntry struct {
	Idx   int    `json:"i"`
	Count uint64 `json:"c"`
}

func histIndex(us uint64) int {
	if us < 128 {
		return int(us)
	}
	exp := bits.Len64(us) - 7
	idx := exp*64 + int(us>>exp)
	if idx >= len(hist{}.counts) {
		idx = len(hist{}.counts) - 1
	}
	return idx
}

// histValue is the upper bound of bucket idx, in microseconds.
func histValue(idx int) uint64 {
	if idx < 128 {
		return uint64(idx)
	}
	exp := idx/64 - 1
	return (uint64(idx%64+64)+1)<<exp - 1
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d/time.Microsecond))]++
	h.total++
	h.max = max(h.max, int64(d))
}

func (h *hist) entries() []histEntry {
	var out []histEntry
	for i, c := range h.counts {
		if c != 0 {
			out = append(out, histEntry{i, c})
		}
	}
	return out
}

func (h *hist) merge(es []histEntry, maxNs int64) {
	for _, e := range es {
		if e.Idx >= 0 && e.Idx < len(h.counts) {
			h.counts[e.Idx] += e.Count
			h.total += e.Count
		}
	}
	h.max = max(h.max, maxNs)
}

// quantile returns the q-th latency (0 < q ≤ 1); the maximum is exact.
func (h *hist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	want := uint64(q*float64(h.total) + 0.5)
	want = max(want, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			return min(time.Duration(histValue(i))*time.Microsecond, time.Duration(h.max))
		}
	}
	return time.Duration(h.max)
}
