package groups

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Set is one group's members, sorted, shared read-only by every reader.
type Set struct {
	members []string
}

// NewSet makes a set of the given members (sorted here).
func NewSet(members []string) *Set {
	m := append([]string(nil), members...)
	sort.Strings(m)
	return &Set{members: m}
}

// Has reports whether account is a member.
func (s *Set) Has(account string) bool {
	i := sort.SearchStrings(s.members, account)
	return i < len(s.members) && s.members[i] == account
}

// Members is the sorted member list; callers must not modify it.
func (s *Set) Members() []string { return s.members }

// Len is the number of members.
func (s *Set) Len() int { return len(s.members) }

// source is what the cache reads through.
type source interface {
	Members(ctx context.Context, group string) ([]string, error)
	Add(ctx context.Context, group string, accounts []string, max int) error
	Remove(ctx context.Context, group string, accounts []string) error
}

// Cache keeps member sets for ttl. Concurrent misses for one group share one
// query. Changes made through it (the side API) invalidate at once.
type Cache struct {
	src source
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	set     *Set
	expires time.Time
	loading chan struct{} // closed when a load finishes
	stale   bool          // invalidated while loading: do not keep the result
}

// NewCache caches src's member lists for ttl; max bounds a group's size.
func NewCache(src source, ttl time.Duration, max int) *Cache {
	return &Cache{src: src, ttl: ttl, max: max, now: time.Now, entries: make(map[string]*entry)}
}

// Get returns group's members (an empty set for a group nobody is in).
func (c *Cache) Get(ctx context.Context, group string) (*Set, error) {
	for {
		c.mu.Lock()
		e := c.entries[group]
		switch {
		case e != nil && e.loading != nil:
			ch := e.loading
			c.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		case e != nil && e.set != nil && c.now().Before(e.expires):
			c.mu.Unlock()
			return e.set, nil
		}
		e = &entry{loading: make(chan struct{})}
		c.entries[group] = e
		c.mu.Unlock()

		members, err := c.src.Members(ctx, group)
		c.mu.Lock()
		close(e.loading)
		e.loading = nil
		if err != nil {
			delete(c.entries, group)
			c.mu.Unlock()
			return nil, err
		}
		set := &Set{members: members}
		if e.stale {
			delete(c.entries, group)
		} else {
			e.set, e.expires = set, c.now().Add(c.ttl)
		}
		c.mu.Unlock()
		return set, nil
	}
}

// Add adds members and drops the cached set.
func (c *Cache) Add(ctx context.Context, group string, accounts []string) error {
	defer c.Invalidate(group)
	return c.src.Add(ctx, group, accounts, c.max)
}

// Remove removes members and drops the cached set.
func (c *Cache) Remove(ctx context.Context, group string, accounts []string) error {
	defer c.Invalidate(group)
	return c.src.Remove(ctx, group, accounts)
}

// Invalidate forgets group's cached set. A load under way finishes for those
// waiting on it, but its result is not kept.
func (c *Cache) Invalidate(group string) {
	c.mu.Lock()
	if e := c.entries[group]; e != nil {
		if e.loading != nil {
			e.stale = true
		} else {
			delete(c.entries, group)
		}
	}
	c.mu.Unlock()
}
