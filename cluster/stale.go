package cluster

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Entries of dead nodes. Locate skips an account's entries on a node whose
// liveness key is gone, and removes them so that the map does not keep what a
// node that never comes back left. The removal must not take an entry the node
// wrote again meanwhile: a node cut off from Redis for longer than its
// liveness lasts comes back, sets its liveness key and rewrites its entries
// (presence: resync); a stale "dead" answer (cached, or read just before) must
// not erase what it rewrote, or its accounts stay unreachable until they
// reconnect. So each entry is read (its value, the time it was written), the
// node's liveness is asked again, uncached, after that read, and the entry is
// deleted only if it still holds the value read: a node that came back before
// the second check is alive, and one that comes back after it rewrites the
// entry with a new time, which the delete leaves alone.

type staleEntry struct{ key, field, node string }

// deleteIfUnchanged removes a hash field only if it still holds the value read.
var deleteIfUnchanged = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`)

// dropStale removes the entries of nodes that are still dead, off the
// caller's path (it is only housekeeping).
func (b *Bus) dropStale(stale []staleEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	vals := make([]string, len(stale))
	for i, s := range stale {
		v, err := b.rdb.HGet(ctx, s.key, s.field).Result()
		if err != nil {
			continue // gone already, or Redis failing: left for a later lookup
		}
		vals[i] = v
	}
	dead := map[string]bool{}
	for _, s := range stale {
		if _, asked := dead[s.node]; asked {
			continue
		}
		n, err := b.rdb.Exists(ctx, b.prefix+"alive:"+s.node).Result()
		dead[s.node] = err == nil && n == 0
	}
	removed := 0
	for i, s := range stale {
		if vals[i] == "" || !dead[s.node] {
			continue
		}
		n, err := deleteIfUnchanged.Run(ctx, b.rdb, []string{s.key}, s.field, vals[i]).Int()
		if err != nil {
			b.log.Warn().Err(err).Str("key", s.key).Msg("could not remove an entry of a dead node")
			continue
		}
		removed += n
	}
	if removed > 0 {
		b.log.Debug().Int("entries", removed).Msg("entries of dead nodes removed")
	}
}
