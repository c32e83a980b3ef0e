package history

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// retentionBatch is the rows one DELETE takes: small, so that each statement
// holds its locks briefly on a busy table.
const retentionBatch = 1000

// Prune deletes every row written before cutoff, retentionBatch rows per
// statement, and returns how many went.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		n, err := s.DeleteOlder(ctx, cutoff.Unix(), retentionBatch)
		total += n
		if err != nil || n < retentionBatch {
			return total, err
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		default:
		}
	}
}

// RunRetention prunes rows older than maxAge every interval until ctx ends.
// now is the clock (time.Now in production).
func (s *Store) RunRetention(ctx context.Context, maxAge, interval time.Duration, now func() time.Time, log zerolog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Prune(ctx, now().Add(-maxAge))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn().Err(err).Int("deleted", n).Msg("history retention pass failed; trying again later")
		case n > 0:
			log.Info().Int("deleted", n).Dur("max_age", maxAge).Msg("history retention deleted old messages")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
