package handover

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/cluster"
)

// TestLinkKeepsOrderAndStoresWhenTheOtherEnds: envelopes reach the other
// process in the order sent, each sender hears its outcomes, only the
// accounts seen there are routed there when connected here too; once nothing
// listens there any more every envelope is NotTaken (the caller stores) and
// nobody is located there.
func TestLinkKeepsOrderAndStoresWhenTheOtherEnds(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case PathEnvelopes:
			var req EnvelopesRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			ans := EnvelopesAnswer{}
			mu.Lock()
			for _, e := range req.Envelopes {
				got = append(got, e.ID)
				ans.Outcomes = append(ans.Outcomes, strings.Repeat("p", len(e.To)))
			}
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(ans)
		case PathLocate:
			var req LocateRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			ans := LocateAnswer{Here: make([]bool, len(req.Accounts))}
			_ = json.NewEncoder(w).Encode(ans)
		default:
			http.NotFound(w, r)
		}
	}))
	local := func(a string) bool { return a == "here" }
	l, err := New(strings.TrimPrefix(srv.URL, "http://"), "s", nil, local, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); l.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	if m, _ := l.Locate(ctx, []string{"here", "away"}); len(m["here"]) != 0 || len(m["away"]) != 1 {
		t.Fatalf("Locate = %v; want the account not here routed there, the one here not", m)
	}
	const n = 600
	outcomes := make(chan cluster.Outcome, n)
	for i := range n {
		env := cluster.Envelope{Kind: "msg", ID: strconv.Itoa(i), To: []string{"here"}, Store: true}
		if err := l.Send(ctx, Node, env, func(out []cluster.Outcome) { outcomes <- out[0] }); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case o := <-outcomes:
			if o != cluster.Pushed {
				t.Fatalf("outcome %q; want pushed", o)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("outcomes did not come")
		}
	}
	mu.Lock()
	for i, id := range got {
		if id != strconv.Itoa(i) {
			t.Fatalf("envelope %d arrived as %s: order broken", i, id)
		}
	}
	mu.Unlock()
	// "here" was pushed there: it has a connection there too.
	if m, _ := l.Locate(ctx, []string{"here"}); len(m["here"]) != 1 {
		t.Fatalf("an account pushed there is not routed there: %v", m)
	}

	srv.Close()
	done := make(chan cluster.Outcome, 2)
	for range 2 {
		_ = l.Send(ctx, Node, cluster.Envelope{Kind: "msg", To: []string{"away"}, Store: true},
			func(out []cluster.Outcome) { done <- out[0] })
	}
	for range 2 {
		select {
		case o := <-done:
			if o != cluster.NotTaken {
				t.Fatalf("outcome after the other process ended: %q; want NotTaken", o)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no outcome after the other process ended")
		}
	}
	if m, err := l.Locate(ctx, []string{"away"}); err != nil || len(m) != 0 {
		t.Fatalf("Locate after the other process ended: %v, %v; want nobody", m, err)
	}
}
