package groups

import (
	"container/list"
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

// Cache keeps member sets for ttl, at most a fixed number of groups (the least
// recently used one is dropped first), so that asking for ever new names cannot
// grow it. Concurrent misses for one group share one query. Changes made
// through it (the side API) invalidate at once.
type Cache struct {
	src     source
	ttl     time.Duration
	max     int // members per group
	entries int // groups kept at most
	now     func() time.Time
	// none is the answer for every group nobody is in: cached like any other
	// (asking again for an unknown group costs no query within the TTL), and
	// shared, so it costs no set per name.
	none *Set

	mu  sync.Mutex
	m   map[string]*entry
	lru list.List // of *entry with a set, most recently used first
}

type entry struct {
	group   string
	set     *Set
	expires time.Time
	elem    *list.Element // in lru once loaded
	loading chan struct{} // closed when a load finishes
	stale   bool          // invalidated while loading: do not keep the result
}

// staleRetry is how soon an expired member list that could not be read again
// is retried; meanwhile the last one known is used.
const staleRetry = 5 * time.Second

// DefaultCacheEntries is NewCache's entries when none is given (config.Default
// uses it too).
const DefaultCacheEntries = 100_000

// NewCache caches src's member lists for ttl, for at most entries groups
// (entries <= 0: DefaultCacheEntries); max bounds a group's size.
func NewCache(src source, ttl time.Duration, max, entries int) *Cache {
	if entries <= 0 {
		entries = DefaultCacheEntries
	}
	return &Cache{src: src, ttl: ttl, max: max, entries: entries, now: time.Now, none: &Set{}, m: make(map[string]*entry)}
}

// Len is the number of groups whose member sets are kept.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Get returns group's members (an empty set for a group nobody is in).
func (c *Cache) Get(ctx context.Context, group string) (*Set, error) {
	for {
		var old *Set // an expired set, answered again if its reload fails
		c.mu.Lock()
		e := c.m[group]
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
			c.lru.MoveToFront(e.elem)
			c.mu.Unlock()
			return e.set, nil
		case e != nil:
			old = e.set
			c.dropLocked(e) // expired
		}
		e = &entry{group: group, loading: make(chan struct{})}
		c.m[group] = e
		c.mu.Unlock()

		members, err := c.src.Members(ctx, group)
		c.mu.Lock()
		close(e.loading)
		e.loading = nil
		if err != nil {
			delete(c.m, group)
			if old != nil && !e.stale {
				// The database does not answer: group chat goes on with the
				// members known last, and the list is read again soon.
				e.set, e.expires = old, c.now().Add(min(c.ttl, staleRetry))
				e.elem = c.lru.PushFront(e)
				c.m[group] = e
				c.mu.Unlock()
				return old, nil
			}
			c.mu.Unlock()
			return nil, err
		}
		set := c.none
		if len(members) > 0 {
			set = &Set{members: members}
		}
		if e.stale {
			delete(c.m, group)
		} else {
			e.set, e.expires = set, c.now().Add(c.ttl)
			e.elem = c.lru.PushFront(e)
			for c.lru.Len() > c.entries {
				c.dropLocked(c.lru.Back().Value.(*entry))
			}
		}
		c.mu.Unlock()
		return set, nil
	}
}

// dropLocked forgets a loaded entry. Caller holds c.mu.
func (c *Cache) dropLocked(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.m, e.group)
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
	if e := c.m[group]; e != nil {
		if e.loading != nil {
			e.stale = true
		} else {
			c.dropLocked(e)
		}
	}
	c.mu.Unlock()
}
