package groups_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chatserver/groups"
	"chatserver/internal/servicetest"
	"chatserver/offline"
)

func open(t *testing.T, dialect offline.Dialect) *groups.Store {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "chat.db")
	if dialect == offline.MySQL {
		dsn = servicetest.MySQLDSN(t)
	}
	s, err := offline.Open(context.Background(), dialect, dsn, "app_offline")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background(), os.DirFS("../sql"), map[string]string{"group_table": "app_group_member"}); err != nil {
		t.Fatal(err)
	}
	return groups.NewStore(s.DB(), "app_group_member", dialect == offline.SQLite)
}

func TestStoreContract(t *testing.T) {
	for _, d := range []offline.Dialect{offline.SQLite, offline.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			s := open(t, d)
			ctx := context.Background()
			if err := s.Add(ctx, "g", []string{"bob", "alice", "Alice"}, 10); err != nil {
				t.Fatal(err)
			}
			if err := s.Add(ctx, "g", []string{"alice", "carol"}, 10); err != nil { // alice again: kept once
				t.Fatal(err)
			}
			m, err := s.Members(ctx, "g")
			if err != nil || strings.Join(m, ",") != "Alice,alice,bob,carol" {
				t.Fatalf("members = %v, %v; want Alice,alice,bob,carol (byte order, case kept)", m, err)
			}
			err = s.Add(ctx, "g", []string{"d1", "d2", "d3", "d4", "d5", "d6", "d7"}, 10)
			var tl *groups.TooLargeError
			if !errors.As(err, &tl) || tl.Size != 11 {
				t.Fatalf("adding past the limit = %v; want TooLargeError with size 11", err)
			}
			if m, _ := s.Members(ctx, "g"); len(m) != 4 {
				t.Fatalf("a refused add changed the group: %v", m)
			}
			if err := s.Remove(ctx, "g", []string{"bob", "nobody"}); err != nil {
				t.Fatal(err)
			}
			if m, _ := s.Members(ctx, "g"); strings.Join(m, ",") != "Alice,alice,carol" {
				t.Fatalf("after removing bob: %v", m)
			}
			if m, _ := s.Members(ctx, "other"); len(m) != 0 {
				t.Fatalf("unknown group has members %v", m)
			}
		})
	}
}

// countingSource counts reads and can hold them.
type countingSource struct {
	mu      sync.Mutex
	members map[string][]string
	reads   atomic.Int32
	hold    chan struct{}
	down    atomic.Bool // the database does not answer
}

func (c *countingSource) Members(_ context.Context, g string) ([]string, error) {
	c.reads.Add(1)
	if c.down.Load() {
		return nil, errors.New("database unreachable")
	}
	if c.hold != nil {
		<-c.hold
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.members[g]...), nil
}
func (c *countingSource) Add(_ context.Context, g string, as []string, _ int) error {
	c.mu.Lock()
	c.members[g] = append(c.members[g], as...)
	c.mu.Unlock()
	return nil
}
func (c *countingSource) Remove(context.Context, string, []string) error { return nil }

func TestCacheSharesLoadsAndSeesChanges(t *testing.T) {
	src := &countingSource{members: map[string][]string{"g": {"a", "b"}}, hold: make(chan struct{})}
	c := groups.NewCache(src, time.Hour, 100, 0)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, err := c.Get(ctx, "g"); err != nil || !s.Has("a") || s.Has("z") {
				t.Errorf("Get = %v, %v", s, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(src.hold)
	wg.Wait()
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("50 concurrent misses made %d reads; want 1", n)
	}
	if err := c.Add(ctx, "g", []string{"z"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Get(ctx, "g"); !s.Has("z") {
		t.Fatal("a member added through the cache is not seen at once")
	}
}

// A client asking for ever new group names must not grow the cache: it keeps
// at most its cap, drops the least recently used first, and what it still
// holds stays correct.
func TestCacheKeepsAtMostItsCap(t *testing.T) {
	src := &countingSource{members: map[string][]string{"team": {"a", "b"}}}
	c := groups.NewCache(src, time.Hour, 100, 50)
	ctx := context.Background()
	if s, err := c.Get(ctx, "team"); err != nil || !s.Has("a") {
		t.Fatalf("Get(team) = %v, %v", s, err)
	}
	for i := 0; i < 1000; i++ {
		if i%10 == 0 { // team stays in use, so it is not the one dropped
			if _, err := c.Get(ctx, "team"); err != nil {
				t.Fatal(err)
			}
		}
		s, err := c.Get(ctx, "random-"+strconv.Itoa(i))
		if err != nil || s.Len() != 0 {
			t.Fatalf("unknown group = %v, %v; want an empty set", s, err)
		}
		if n := c.Len(); n > 50 {
			t.Fatalf("after %d names the cache holds %d groups; want at most 50", i+1, n)
		}
	}
	if n := c.Len(); n != 50 {
		t.Fatalf("cache holds %d groups; want 50 (full, not emptied)", n)
	}
	before := src.reads.Load()
	if s, _ := c.Get(ctx, "team"); !s.Has("b") {
		t.Fatal("the group in use lost its members")
	}
	if src.reads.Load() != before {
		t.Fatal("the group in use was dropped before unused ones")
	}
	if _, err := c.Get(ctx, "random-0"); err != nil {
		t.Fatal(err)
	}
	if src.reads.Load() != before+1 {
		t.Fatal("the least recently used name was not the one dropped")
	}
	if err := c.Add(ctx, "team", []string{"z"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Get(ctx, "team"); !s.Has("z") {
		t.Fatal("a member added through a full cache is not seen at once")
	}
}

// An unknown group is answered from the cache within the TTL like a known one,
// so a client repeating it at the frame rate costs no query per frame; a
// member added through the cache is seen at once, and one added behind the
// cache's back once the TTL has passed.
func TestCacheRemembersUnknownGroups(t *testing.T) {
	src := &countingSource{members: map[string][]string{}}
	c := groups.NewCache(src, time.Hour, 100, 10)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if s, err := c.Get(ctx, "nobody"); err != nil || s.Len() != 0 {
			t.Fatalf("Get(nobody) = %v, %v", s, err)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("100 asks for an unknown group made %d reads; want 1", n)
	}
	if err := c.Add(ctx, "nobody", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Get(ctx, "nobody"); !s.Has("a") {
		t.Fatal("a member added to an unknown group is not seen at once")
	}

	short := groups.NewCache(src, 20*time.Millisecond, 100, 10)
	if s, _ := short.Get(ctx, "later"); s.Len() != 0 {
		t.Fatal("later has members already")
	}
	src.mu.Lock()
	src.members["later"] = []string{"b"} // written to SQL by someone else
	src.mu.Unlock()
	eventuallyTrue(t, "the member written behind the cache is seen after the TTL", func() bool {
		s, err := short.Get(ctx, "later")
		return err == nil && s.Has("b")
	})
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCacheKeepsGroupsWorkingWhileTheDatabaseIsDown: a member list that
// expires while the database does not answer is answered from the last one
// known, so group chat goes on; once the database answers it is read again.
func TestCacheKeepsGroupsWorkingWhileTheDatabaseIsDown(t *testing.T) {
	src := &countingSource{members: map[string][]string{"team": {"a", "b"}}}
	c := groups.NewCache(src, 20*time.Millisecond, 100, 0)
	ctx := context.Background()
	if s, err := c.Get(ctx, "team"); err != nil || !s.Has("b") {
		t.Fatalf("Get = %v, %v", s, err)
	}
	src.down.Store(true)
	time.Sleep(40 * time.Millisecond) // expired
	s, err := c.Get(ctx, "team")
	if err != nil || !s.Has("a") || !s.Has("b") {
		t.Fatalf("expired list with the database down: %v, %v; want the last one known", s, err)
	}
	if _, err := c.Get(ctx, "other"); err == nil {
		t.Fatal("a group never read was answered with the database down")
	}
	src.down.Store(false)
	src.mu.Lock()
	src.members["team"] = []string{"a", "c"}
	src.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s, err := c.Get(ctx, "team"); err == nil && s.Has("c") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the list was not read again once the database answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
