package handlers

import (
	"testing"
	"time"
)

func TestRowMarksBefore(t *testing.T) {
	var r rowMarks
	if got := r.before(time.Now()); got != 0 {
		t.Fatalf("no marks: %d; want 0", got)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 1000; i++ { // 1000 marks, 5 s apart: thinned to at most maxRowMarks
		r.add(rowMark{at: t0.Add(time.Duration(i) * 5 * time.Second), id: int64(i * 10)})
	}
	if len(r.s) > maxRowMarks {
		t.Fatalf("%d marks kept; want at most %d", len(r.s), maxRowMarks)
	}
	// The newest marks stay 5 s apart: a short outage gets a close mark.
	last := t0.Add(999 * 5 * time.Second)
	if got := r.before(last.Add(-7 * time.Second)); got != 9970 {
		t.Fatalf("mark before the last-7s = %d; want 9970 (the one noted 10 s before the last)", got)
	}
	// An outage older than the recent marks still gets a mark before it.
	for _, back := range []time.Duration{time.Hour, 30 * time.Minute, 10 * time.Minute} {
		at := last.Add(-back)
		got := r.before(at)
		noted := t0.Add(time.Duration(got/10) * 5 * time.Second)
		if noted.After(at) {
			t.Fatalf("mark for %v before the last: id %d noted at %v, after the outage began (%v)", back, got, noted, at)
		}
	}
	// Before every mark: the oldest (the node started after the outage began).
	if got := r.before(t0.Add(-time.Hour)); got != r.s[0].id {
		t.Fatalf("before all marks: %d; want the oldest, %d", got, r.s[0].id)
	}
}
