package presence_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"chatserver/internal/servicetest"
	"chatserver/presence"
)

// accountMap is the contract both implementations keep.
type accountMap interface {
	Register(account, conn string)
	Unregister(account, conn string, last bool)
	Lookup(ctx context.Context, account string) ([]presence.Entry, error)
	ClearNode(ctx context.Context) error
	Sync(ctx context.Context) error
	Close(ctx context.Context) error
}

type factory func(t *testing.T, node string) accountMap

func TestAccountMapContract(t *testing.T) {
	impls := map[string]func(t *testing.T) factory{
		"local": func(t *testing.T) factory {
			shared := map[string]*presence.Local{}
			return func(t *testing.T, node string) accountMap {
				// One process has one node; a restart of the same node is a new map.
				shared[node] = presence.NewLocal(node)
				return shared[node]
			}
		},
		"redis": func(t *testing.T) factory {
			rdb, prefix := servicetest.Redis(t)
			return func(t *testing.T, node string) accountMap {
				r := presence.NewRedis(rdb, prefix, node, zerolog.New(zerolog.NewTestWriter(t)), nil)
				t.Cleanup(func() { _ = r.Close(context.Background()) })
				return r
			}
		},
	}
	for name, mk := range impls {
		t.Run(name, func(t *testing.T) {
			t.Run("register lookup unregister", func(t *testing.T) { testRegister(t, mk(t)) })
			if name == "redis" {
				t.Run("restart clears the node's old entries only", func(t *testing.T) { testClearNode(t, mk(t)) })
			}
		})
	}
}

func lookup(t *testing.T, m accountMap, account string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := m.Lookup(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Node+"|"+e.Conn)
	}
	sort.Strings(out)
	return out
}

func testRegister(t *testing.T, mk factory) {
	m := mk(t, "n1")
	m.Register("alice", "c1")
	m.Register("alice", "c2")
	m.Register("bob", "c3")
	if got := lookup(t, m, "alice"); len(got) != 2 || got[0] != "n1|c1" || got[1] != "n1|c2" {
		t.Fatalf("alice = %v; want n1|c1, n1|c2", got)
	}
	m.Unregister("alice", "c1", false)
	// Removing an entry that is not there (a late close) must not touch others.
	m.Unregister("alice", "c-old", false)
	if got := lookup(t, m, "alice"); len(got) != 1 || got[0] != "n1|c2" {
		t.Fatalf("alice after unregister c1 = %v; want n1|c2", got)
	}
	m.Unregister("alice", "c2", true)
	if got := lookup(t, m, "alice"); len(got) != 0 {
		t.Fatalf("alice after last unregister = %v; want none", got)
	}
	if got := lookup(t, m, "bob"); len(got) != 1 {
		t.Fatalf("bob = %v; want one entry", got)
	}
}

func testClearNode(t *testing.T, mk factory) {
	old := mk(t, "n1")
	other := mk(t, "n2")
	old.Register("alice", "run1-1")
	other.Register("alice", "run9-1")
	lookup(t, old, "alice")
	lookup(t, other, "alice")
	// n1 restarts: its old entries go, n2's stay.
	restarted := mk(t, "n1")
	if err := restarted.ClearNode(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, restarted, "alice"); len(got) != 1 || got[0] != "n2|run9-1" {
		t.Fatalf("alice after n1 restart = %v; want only n2|run9-1", got)
	}
}
