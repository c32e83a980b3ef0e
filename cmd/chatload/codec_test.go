package main

import (
	"bytes"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 70000} {
		p := bytes.Repeat([]byte("a"), n)
		b := appendFrame(nil, opText, p)
		b = append(b, 0x81) // start of a next, incomplete frame
		fin, op, got, used, err := parseFrame(b)
		if err != nil || !fin || op != opText || !bytes.Equal(got, p) || used != len(b)-1 {
			t.Fatalf("n=%d: fin %v op %d len %d used %d err %v", n, fin, op, len(got), used, err)
		}
		if _, _, _, used, _ := parseFrame(b[:len(b)-2]); used != 0 {
			t.Fatalf("n=%d: truncated frame parsed", n)
		}
	}
}

func TestScanFields(t *testing.T) {
	var f fields
	in := `{ "id": 7, "extra": {"flag":"x","a":[1,"}"]}, "from":"bo\"b", "content" : "p.1.2", "flag":"msg"}`
	if err := scanFields([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	if string(f.flag) != "msg" || string(f.from) != `bo"b` || string(f.content) != "p.1.2" {
		t.Fatalf("got flag %q from %q content %q", f.flag, f.from, f.content)
	}
	for _, bad := range []string{``, `[]`, `{"a"}`, `{"a":1`, `{"a":"x`} {
		if err := scanFields([]byte(bad), &fields{}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestContent(t *testing.T) {
	b := appendContent(nil, kindPair, 42, 1234567, 40)
	if len(b) != 40 {
		t.Fatalf("len %d", len(b))
	}
	k, seq, ns, ok := parseContent(b)
	if !ok || k != kindPair || seq != 42 || ns != 1234567 {
		t.Fatalf("parse %q: %c %d %d %v", b, k, seq, ns, ok)
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.02 {
			t.Errorf("q%.2f = %v, want ≈%v", c.q, got, c.want)
		}
	}
	var m hist
	m.merge(h.entries(), h.max)
	if m.total != h.total || m.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merge changed the histogram")
	}
}
