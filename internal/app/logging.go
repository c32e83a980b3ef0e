package app

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/lesismal/nbio/logging"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"chatserver/config"
)

// NewLogger is the server's logger as log.level and log.format say.
func NewLogger(c config.Log, out io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("config: log.level %q: %w", c.Level, err)
	}
	if c.Format == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger(), nil
}

// nbioLogger routes nbio's package-level logger into ours. nbio's Info lines
// (engine start and stop) are kept at debug: ours say the same in one line.
type nbioLogger struct{ log zerolog.Logger }

func (l nbioLogger) Debug(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l nbioLogger) Info(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l nbioLogger) Warn(format string, v ...any)  { l.log.Warn().Msgf(format, v...) }
func (l nbioLogger) Error(format string, v ...any) { l.log.Error().Msgf(format, v...) }

// RouteLibraryLogs sends the package-level loggers of nbio and go-redis into
// log, tagged with their component. They are process globals: main sets them
// once, before Start.
func RouteLibraryLogs(log zerolog.Logger) {
	logging.SetLogger(nbioLogger{log.With().Str("component", "nbio").Logger()})
	redis.SetLogger(redisLogger{log.With().Str("component", "presence").Logger()})
}

// redisLogger routes go-redis's package-level logger (pool dial errors) into
// ours, at warn: our own presence logs already say what an outage means.
type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn().Msgf(format, v...)
}

// ApplyRuntime sets GOMEMLIMIT and GOGC from the configuration.
func ApplyRuntime(c config.Runtime, log zerolog.Logger) error {
	if c.MemoryLimit != "" {
		n, err := parseBytes(c.MemoryLimit)
		if err != nil {
			return fmt.Errorf("config: runtime.memory_limit %q: %w", c.MemoryLimit, err)
		}
		debug.SetMemoryLimit(n)
		log.Info().Int64("bytes", n).Msg("memory limit set")
	}
	if c.GCPercent != 0 {
		debug.SetGCPercent(c.GCPercent)
	}
	return nil
}

// parseBytes reads sizes like 512MiB, 8GiB, 1000000.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}
	for _, u := range units {
		if len(s) > len(u.suffix) && s[len(s)-len(u.suffix):] == u.suffix {
			var n int64
			if _, err := fmt.Sscanf(s[:len(s)-len(u.suffix)], "%d", &n); err != nil {
				return 0, err
			}
			return n * u.mult, nil
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0, fmt.Errorf("want a number with KiB, MiB, GiB or TiB")
	}
	return n, nil
}
