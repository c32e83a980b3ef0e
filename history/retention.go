package history

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// retentionBatch is the rows one DELETE takes: small, so that each statement
// holds its locks briefly on a busy table.
const retentionBatch = 1000

// Retention says what the periodic pass deletes.
type Retention struct {
	MaxAge     time.Duration // rows older than this; 0: none by age
	MaxPerConv int           // rows of a conversation past its newest this many; 0: none by count
	Interval   time.Duration // between passes
}

// Prune deletes every row written before cutoff, retentionBatch rows per
// statement, and returns how many went.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	return repeat(ctx, func() (int, error) { return s.DeleteOlder(ctx, cutoff.Unix(), retentionBatch) })
}

// Trim deletes, in each of convs, the rows past its newest keep, and returns
// how many went.
func (s *Store) Trim(ctx context.Context, convs []string, keep int) (int, error) {
	total := 0
	for _, c := range convs {
		n, err := repeat(ctx, func() (int, error) { return s.DeleteBeyond(ctx, c, keep, retentionBatch) })
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// repeat runs step until it deletes less than a full batch.
func repeat(ctx context.Context, step func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := step()
		total += n
		if err != nil || n < retentionBatch {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// RunRetention runs a pass at once and then every r.Interval until ctx ends.
// touched gives the conversations written since the previous pass (the only
// ones that can have grown past r.MaxPerConv); now is the clock.
func (s *Store) RunRetention(ctx context.Context, r Retention, touched func() []string, now func() time.Time, log zerolog.Logger) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if r.MaxAge > 0 {
			n, err := s.Prune(ctx, now().Add(-r.MaxAge))
			report(ctx, log, err, n, "history.max_age")
		}
		if r.MaxPerConv > 0 {
			convs := touched()
			n, err := s.Trim(ctx, convs, r.MaxPerConv)
			report(ctx, log, err, n, "history.max_per_conversation")
		}
		s.pruneChanges(ctx, r, now, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func report(ctx context.Context, log zerolog.Logger, err error, n int, setting string) {
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn().Err(err).Int("deleted", n).Str("by", setting).Msg("history retention pass failed; trying again at the next")
	case n > 0:
		log.Info().Int("deleted", n).Str("by", setting).Msg("history retention deleted old messages")
	}
}
