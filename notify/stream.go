package notify

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Streamer gets a copy of every event (notify.stream), for sites that prefer
// to consume a stream to taking posts. The sender adds an event before its
// first post; a node that dies between the two leaves the row to be taken
// again, so an event may be added twice, with one event id.
type Streamer interface {
	Add(ctx context.Context, eventID string, payload []byte) error
}

// RedisStream adds the events to a Redis Stream, trimmed to about maxLen
// entries (XADD MAXLEN ~).
type RedisStream struct {
	rdb    redis.UniversalClient
	name   string
	maxLen int64
}

// NewRedisStream adds to the stream name in rdb.
func NewRedisStream(rdb redis.UniversalClient, name string, maxLen int64) *RedisStream {
	return &RedisStream{rdb: rdb, name: name, maxLen: maxLen}
}

// Add implements Streamer: one entry, fields event_id and event (the JSON body).
func (s *RedisStream) Add(ctx context.Context, eventID string, payload []byte) error {
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.name, MaxLen: s.maxLen, Approx: true,
		Values: []any{"event_id", eventID, "event", string(payload)},
	}).Err()
	if err != nil {
		return fmt.Errorf("notify: add event %s to stream %s: %w", eventID, s.name, err)
	}
	return nil
}
