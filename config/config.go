// Package config loads config.yaml: defaults, then the file, then environment
// variables (CHAT_ + the key path in upper case, dots as underscores, e.g.
// server.idle_timeout -> CHAT_SERVER_IDLE_TIMEOUT), then validation.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"chatserver/auth"
	"chatserver/cluster"
	"chatserver/groups"
	"chatserver/handlers"
	"chatserver/offline"
	"chatserver/server"
)

// Config is the whole file. Every key is documented in config.yaml and README.md.
type Config struct {
	// Node is this server's id in the account map; default "<hostname>:<port>".
	Node string `yaml:"node"`
	// Compat is "" (our defaults) or "legacy": every key of LegacyPreset the
	// operator did not set takes the PHP server's behaviour (compat.go).
	Compat  string  `yaml:"compat"`
	Server  Server  `yaml:"server"`
	Redis   Redis   `yaml:"redis"`
	MySQL   MySQL   `yaml:"mysql"`
	Embed   Embed   `yaml:"embedded"`
	Offline Offline `yaml:"offline"`
	Log     Log     `yaml:"log"`
	Runtime Runtime `yaml:"runtime"`
	Debug   Debug   `yaml:"debug"`

	API       API       `yaml:"api"`
	Auth      Auth      `yaml:"auth"`
	Broadcast Broadcast `yaml:"broadcast"`
	Limits    Limits    `yaml:"limits"`
	Groups    Groups    `yaml:"groups"`
	History   History   `yaml:"history"`
	Cluster   Cluster   `yaml:"cluster"`
	TLS       TLS       `yaml:"tls"`
	Notify    Notify    `yaml:"notify"`

	// CompatSet and CompatKept list the keys of the compat preset that Load
	// set, and those it left because the operator set them (for the start log).
	CompatSet, CompatKept []string `yaml:"-"`
}

// TLS serves wss:// natively, on the same event loops as ws://.
type TLS struct {
	Addr       string `yaml:"addr"`        // wss listener, e.g. ":9443"; empty: none
	CertFile   string `yaml:"cert_file"`   // PEM certificate chain
	KeyFile    string `yaml:"key_file"`    // PEM private key
	MinVersion string `yaml:"min_version"` // "1.2" or "1.3"
	API        bool   `yaml:"api"`         // serve the side API over TLS too, with the same certificate
}

// Notify tells the site (an HTTP POST, signed) about messages stored for
// accounts that were not connected, so that it can reach them another way
// (push, e-mail). README "Notifications".
type Notify struct {
	// URL receives the events; empty: none are emitted and none are kept.
	URL string `yaml:"url"`
	// Secret keys the HMAC-SHA256 signature (X-Chat-Signature); required with url.
	Secret string `yaml:"secret"`
	// Grace holds an event back: an account that connects within it of its
	// first stored message gets none.
	Grace time.Duration `yaml:"grace"`
	// BatchWindow: messages for one account this close together go in one event.
	BatchWindow time.Duration `yaml:"batch_window"`
	// PreviewBytes of the newest message's content go in the event; 0: none.
	PreviewBytes int `yaml:"preview_bytes"`
	// Table is the outbox, in the offline pool's database: events wait in it
	// until the site answers 2xx.
	Table string `yaml:"table"`
	// RetryBase is the first wait after a failed post; it doubles each time
	// (with jitter), up to 10 minutes.
	RetryBase time.Duration `yaml:"retry_base"`
	// MaxAttempts posts of one event, then it is given up (chat_notify_dead_total).
	MaxAttempts int `yaml:"max_attempts"`
	// Presence also posts "presence" events to url: an account online or
	// offline across all nodes, for a site's "last seen".
	Presence bool `yaml:"presence"`
	// PresenceDebounce: a change is reported once it held this long, so that
	// a quick reconnect reports nothing.
	PresenceDebounce time.Duration `yaml:"presence_debounce"`
	// Stream, if set, is a Redis Stream that gets every event as well (field
	// "event", the JSON body), for sites that prefer to consume.
	Stream string `yaml:"stream"`
	// StreamMaxLen bounds the stream (XADD MAXLEN ~).
	StreamMaxLen int64 `yaml:"stream_maxlen"`
}

// Cluster runs several nodes behind one address, sharing Redis and MySQL.
type Cluster struct {
	// Enabled routes messages to accounts connected on other nodes through Redis
	// Streams (needs redis.addr). Off: this node alone; an account not connected
	// here gets its messages stored offline.
	Enabled bool `yaml:"enabled"`
	// ConfirmTimeout is how long a node waits for another node to say what
	// became of a message it sent there (pushed or stored) before it stores
	// the message itself.
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
}

// API is the HTTP side API for the PHP application.
type API struct {
	// Addr of the side API listener; keep it private (loopback or an internal network).
	Addr string `yaml:"addr"`
	// Secret every call must present as "Authorization: Bearer <secret>".
	// Empty: the side API does not start.
	Secret string `yaml:"secret"`
	// MetricsAllow lists networks (CIDRs or single addresses) whose clients
	// may read /metrics without the secret; empty: the secret only. /healthz
	// and /readyz never need it.
	MetricsAllow []string `yaml:"metrics_allow"`
}

// Auth decides who may claim an account at init.
type Auth struct {
	// Mode is "none" (legacy: any client may claim any account) or "jwt".
	Mode string `yaml:"mode"`
	// JWTSecret verifies HS256 tokens.
	JWTSecret string `yaml:"jwt_secret"`
	// JWTPublicKeyFile is a PEM RSA public key that verifies RS256 tokens.
	JWTPublicKeyFile string `yaml:"jwt_public_key_file"`
	// JWTIssuer, if set, must equal the token's iss.
	JWTIssuer string `yaml:"jwt_issuer"`
	// JWTLeeway is the clock skew allowed with the site that issues tokens: a
	// token is accepted until its exp plus this, at init and in an auth frame,
	// and a connection is closed (4003) once its token is past that.
	JWTLeeway time.Duration `yaml:"jwt_leeway"`
}

// Broadcast says who may send {"flag":"all"}.
type Broadcast struct {
	// Allowed accounts; ["*"] lets anyone (the legacy behaviour). The side API
	// may always broadcast.
	Allowed []string `yaml:"allowed"`
	// IncludeUnbound sends announcements to connections that have not sent
	// init too (the legacy behaviour); not with auth.mode jwt.
	IncludeUnbound bool `yaml:"include_unbound"`
}

// Limits protect the site from one abusive client.
type Limits struct {
	FramesPerSecond int `yaml:"frames_per_second"` // per connection; 0 = no limit
	FrameBurst      int `yaml:"frame_burst"`       // frames allowed at once above the rate
	// MaxDelayedFrames bounds the frames over the rate that wait for their
	// turn on one connection; past it the connection is closed with 4029.
	// 0: none wait, frames over the rate are refused with rate_limited.
	MaxDelayedFrames int `yaml:"max_delayed_frames"`
	// MaxDelayedBytes bounds the bytes of waiting frames, all connections
	// together; the connection whose frame would pass it is closed with 4029.
	MaxDelayedBytes  int `yaml:"max_delayed_bytes"`
	ConnectionsPerIP int `yaml:"connections_per_ip"` // 0 = no limit
	// ConnectionsPerAccount bounds one account's connections on this node (not
	// site-wide): an init past it is refused (too_many_connections, close
	// 4005). 0 = no limit.
	ConnectionsPerAccount int      `yaml:"connections_per_account"`
	MaxContentBytes       int      `yaml:"max_content_bytes"` // message content; 0 = the table's size only
	MaxGroupSize          int      `yaml:"max_group_size"`    // members per group
	MaxUnacked            int      `yaml:"max_unacked"`       // per acknowledging connection, then closed
	AckMemory             int      `yaml:"ack_memory"`        // cids remembered for retries, all senders together
	AllowedOrigins        []string `yaml:"allowed_origins"`   // browser Origin values; empty = any
}

// Groups is the group membership store.
type Groups struct {
	// Table holding (group_id, account) rows, in the offline pool's database.
	Table string `yaml:"table"`
	// CacheTTL bounds how long a membership read from SQL is trusted; changes
	// made through the side API take effect at once.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheEntries bounds the groups whose member lists are kept (the least
	// recently used go first), so that asking for ever new names cannot grow
	// memory.
	CacheEntries int `yaml:"cache_entries"`
}

// History keeps every accepted message in its own table, for the history
// flag and GET /api/history.
type History struct {
	// Enabled is "auto" (on with the embedded store, off with mysql.dsn, so
	// that a drop-in beside the PHP site creates no table), "true" or "false".
	Enabled string `yaml:"enabled"`
	// Table is the history table, in the offline pool's database.
	Table string `yaml:"table"`
	// BatchSize is the rows per INSERT; QueueLimit the messages waiting for
	// the writer, past which new ones are not kept in history (logged).
	BatchSize  int `yaml:"batch_size"`
	QueueLimit int `yaml:"queue_limit"`
	// MaxAge deletes messages older than this, every RetentionInterval; 0 keeps them.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxPerConversation keeps only the newest this many messages of each
	// conversation (trimmed every RetentionInterval); 0: no limit.
	MaxPerConversation int           `yaml:"max_per_conversation"`
	RetentionInterval  time.Duration `yaml:"retention_interval"`
	// RecallWindow is how long after sending a message its sender may recall
	// or edit it; 0: never.
	RecallWindow time.Duration `yaml:"recall_window"`
}

// HistoryOn reports whether history is kept with this configuration.
func (c Config) HistoryOn() bool {
	switch c.History.Enabled {
	case "true":
		return true
	case "auto":
		return c.MySQL.DSN == ""
	}
	return false
}

// Debug exposes profiling; keep it on loopback.
type Debug struct {
	// PprofAddr serves net/http/pprof (e.g. 127.0.0.1:6060); empty: off.
	PprofAddr string `yaml:"pprof_addr"`
}

// Server is the WebSocket listener and its limits.
type Server struct {
	Addr                string        `yaml:"addr"`
	IdleTimeout         time.Duration `yaml:"idle_timeout"`
	MaxFrameBytes       int           `yaml:"max_frame_bytes"`
	Pollers             int           `yaml:"pollers"`
	ReadBufferBytes     int           `yaml:"read_buffer_bytes"`
	MaxWriteBufferBytes int           `yaml:"max_write_buffer_bytes"`
	HandlerPoolSize     int           `yaml:"handler_pool_size"`
	MaxConnections      int           `yaml:"max_connections"`
	ShutdownTimeout     time.Duration `yaml:"shutdown_timeout"`
	// TrustedProxies lists the networks (CIDRs or single addresses) of the
	// load balancers and reverse proxies in front: from them X-Forwarded-For
	// and X-Real-IP give the client's address (per-IP limit, logs). Empty:
	// every peer is the client and such headers are ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyProtocol: connections from TrustedProxies start with a PROXY
	// protocol header (v1 or v2, before TLS on the wss listener) naming the
	// client; a connection from any other peer that sends one is closed.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// BinaryAsText reads binary frames as JSON text (the legacy behaviour);
	// false: refused with binary_frame.
	BinaryAsText bool `yaml:"binary_as_text"`
	// ReusePort opens the WebSocket, wss and side API listeners with
	// SO_REUSEPORT (Linux), so that a new version of the server can start on
	// the same ports beside this one and take its connections over
	// (SIGUSR2, README "Upgrades").
	ReusePort bool `yaml:"reuse_port"`
	// HandoverRate is how many connections a second a handover closes (with
	// 1012, for the clients to reconnect to the new process).
	HandoverRate int `yaml:"handover_rate"`
}

// Redis holds the account map. Empty addr: the in-process map (embedded default).
type Redis struct {
	// Addr is Redis's host:port; several, comma-separated: a Redis Cluster.
	// With SentinelMaster: the Sentinels' host:port, comma-separated.
	Addr      string `yaml:"addr"`
	Username  string `yaml:"username"` // of the Redis master (and Cluster nodes)
	Password  string `yaml:"password"`
	DB        int    `yaml:"db"`
	KeyPrefix string `yaml:"key_prefix"`
	// SentinelMaster is the name the Sentinels at Addr monitor the master
	// under; the client asks them for the master and follows its failovers.
	// Empty: Addr is Redis itself.
	SentinelMaster string `yaml:"sentinel_master"`
	// SentinelPassword is the Sentinels' own password (their requirepass), if any.
	SentinelPassword string `yaml:"sentinel_password"`
}

// MySQL holds the offline pool. Empty dsn: the embedded SQLite file.
type MySQL struct {
	DSN string `yaml:"dsn"`
}

// Embed is the embedded default's storage.
type Embed struct {
	Path string `yaml:"path"`
}

// Offline tunes the offline pool.
type Offline struct {
	Table        string        `yaml:"table"`
	BatchSize    int           `yaml:"batch_size"`
	QueueLimit   int           `yaml:"queue_limit"`
	DrainPage    int           `yaml:"drain_page"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	DrainQueue   int           `yaml:"drain_queue"`
	// QueryTimeout bounds each database step of an init's drain: a database
	// that hangs costs an init at most this before it answers unavailable.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// SpoolPath is a local SQLite file that holds offline messages while MySQL
	// cannot be written (empty: no spool; MySQL outages then hold messages in
	// memory only, up to queue_limit). Not used by the embedded default.
	SpoolPath string `yaml:"spool_path"`
	// SpoolMaxRows bounds the spool; past it senders get busy.
	SpoolMaxRows int `yaml:"spool_max_rows"`
	// SenderQueueShare bounds one sender's messages waiting in the queue, so
	// that one sender cannot make everybody busy; 0: queue_limit/8.
	SenderQueueShare int `yaml:"sender_queue_share"`
}

// Log sets the log output.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Runtime tunes the Go runtime.
type Runtime struct {
	MemoryLimit string `yaml:"memory_limit"` // GOMEMLIMIT syntax, e.g. "8GiB"; empty: none
	GCPercent   int    `yaml:"gc_percent"`   // GOGC; 0: leave as is
}

// DefaultHandoverRate closes 19,000 connections (a process's file limit on a
// small VM) in about 10 s, a reconnect rate one core takes in its stride.
const DefaultHandoverRate = 2000

// Default is the configuration with nothing set: the embedded default on :9052.
// Where a package has a default of its own for a zero setting, this uses it, so
// that each default is written once.
func Default() Config {
	return Config{
		Server: Server{
			Addr:                server.DefaultAddr,
			IdleTimeout:         server.DefaultIdleTimeout,
			MaxFrameBytes:       server.DefaultMaxFrameBytes,
			ReadBufferBytes:     server.DefaultReadBufferBytes,
			MaxWriteBufferBytes: server.DefaultMaxWriteBufferBytes,
			MaxConnections:      server.DefaultMaxConnections,
			ShutdownTimeout:     10 * time.Second,
			ReusePort:           true,
			HandoverRate:        DefaultHandoverRate,
		},
		Redis: Redis{KeyPrefix: "chat:"},
		Embed: Embed{Path: "data/chat.db"},
		Offline: Offline{
			Table: "app_offline", BatchSize: offline.DefaultBatchSize, QueueLimit: offline.DefaultQueueLimit,
			DrainPage: handlers.DefaultDrainPage, DrainTimeout: handlers.DefaultDrainTimeout, DrainQueue: 10_000,
			QueryTimeout: handlers.DefaultQueryTimeout, SpoolPath: "data/spool.db", SpoolMaxRows: offline.DefaultSpoolLimit,
		},
		Log:  Log{Level: "info", Format: "json"},
		API:  API{Addr: "127.0.0.1:9053"},
		Auth: Auth{Mode: "none", JWTLeeway: auth.DefaultLeeway},
		Limits: Limits{
			FramesPerSecond: 20, FrameBurst: 40, ConnectionsPerIP: 256, ConnectionsPerAccount: 16,
			MaxDelayedFrames: handlers.DefaultMaxDelayedFrames, MaxDelayedBytes: handlers.DefaultMaxDelayedBytes,
			MaxContentBytes: 16 << 10, MaxGroupSize: 10_000, MaxUnacked: handlers.DefaultMaxUnacked,
			AckMemory: handlers.DefaultAckMemory,
		},
		Groups: Groups{Table: "app_group_member", CacheTTL: 60 * time.Second, CacheEntries: groups.DefaultCacheEntries},
		History: History{Enabled: "auto", Table: "app_message", BatchSize: offline.DefaultBatchSize, QueueLimit: offline.DefaultQueueLimit,
			RetentionInterval: time.Hour, RecallWindow: 2 * time.Minute},
		TLS:     TLS{MinVersion: "1.2"},
		Cluster: Cluster{ConfirmTimeout: cluster.DefaultConfirmTimeout},
		Notify: Notify{Grace: 10 * time.Second, BatchWindow: 2 * time.Second, Table: "app_notify_outbox",
			RetryBase: time.Second, MaxAttempts: 12, PresenceDebounce: 5 * time.Second, StreamMaxLen: 100000},
	}
}

// Load reads path over the defaults (a missing file is fine when optional),
// applies the environment and validates.
func Load(path string, optional bool, env func(string) (string, bool)) (Config, error) {
	cfg := Default()
	given := map[string]bool{} // the keys the operator set, in the file or the environment
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config: %s: %w", path, err)
		}
		var raw map[string]any
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return cfg, fmt.Errorf("config: %s: %w", path, err)
		}
		fileKeys("", raw, given)
	case optional && errors.Is(err, fs.ErrNotExist):
	default:
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := applyEnv(&cfg, env, given); err != nil {
		return cfg, err
	}
	if err := applyCompat(&cfg, given); err != nil {
		return cfg, err
	}
	// An empty list in the file and an absent one mean the same.
	for _, l := range []*[]string{&cfg.Broadcast.Allowed, &cfg.Limits.AllowedOrigins, &cfg.API.MetricsAllow, &cfg.Server.TrustedProxies} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return cfg, cfg.Validate()
}

// Validate rejects values that cannot work, naming them.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("config: "+format, args...))
		}
	}
	check(c.Compat == "" || c.Compat == "legacy", "compat %q: want legacy or nothing", c.Compat)
	check(c.Server.Addr != "", "server.addr is empty")
	check(c.Server.IdleTimeout >= time.Second, "server.idle_timeout (%v) must be at least 1s", c.Server.IdleTimeout)
	check(c.Server.MaxFrameBytes >= 256, "server.max_frame_bytes (%d) must be at least 256", c.Server.MaxFrameBytes)
	check(c.Server.MaxWriteBufferBytes >= c.Server.MaxFrameBytes,
		"server.max_write_buffer_bytes (%d) must be at least server.max_frame_bytes (%d)%s", c.Server.MaxWriteBufferBytes, c.Server.MaxFrameBytes, c.compatHint("server.max_frame_bytes"))
	check(c.Server.ShutdownTimeout > 0, "server.shutdown_timeout must be positive")
	check(c.Server.HandoverRate > 0, "server.handover_rate (%d) must be positive (connections closed a second in a handover)", c.Server.HandoverRate)
	check(c.Offline.BatchSize > 0 && c.Offline.BatchSize <= 10_000, "offline.batch_size (%d) must be 1..10000", c.Offline.BatchSize)
	check(c.Offline.QueueLimit >= c.Offline.BatchSize, "offline.queue_limit (%d) must be at least offline.batch_size (%d)", c.Offline.QueueLimit, c.Offline.BatchSize)
	check(c.Offline.SenderQueueShare >= 0 && c.Offline.SenderQueueShare <= c.Offline.QueueLimit,
		"offline.sender_queue_share (%d) must be 0..offline.queue_limit (%d)", c.Offline.SenderQueueShare, c.Offline.QueueLimit)
	check(c.Offline.DrainPage > 0 && c.Offline.DrainPage <= 10_000, "offline.drain_page (%d) must be 1..10000", c.Offline.DrainPage)
	check(c.Offline.DrainTimeout > 0, "offline.drain_timeout must be positive")
	check(c.Offline.QueryTimeout > 0, "offline.query_timeout must be positive")
	check(c.Offline.DrainQueue > 0, "offline.drain_queue must be positive")
	check(c.MySQL.DSN != "" || c.Embed.Path != "", "set mysql.dsn or embedded.path")
	switch c.Auth.Mode {
	case "none":
	case "jwt":
		check(c.Auth.JWTSecret != "" || c.Auth.JWTPublicKeyFile != "",
			"auth.mode is jwt: set auth.jwt_secret (HS256) or auth.jwt_public_key_file (RS256)")
	default:
		check(false, "auth.mode %q: want none or jwt", c.Auth.Mode)
	}
	check(c.Auth.JWTLeeway >= 0, "auth.jwt_leeway (%v) must not be negative", c.Auth.JWTLeeway)
	check(c.Limits.FramesPerSecond >= 0 && c.Limits.FrameBurst >= 0, "limits.frames_per_second and limits.frame_burst must not be negative")
	check(c.Limits.FramesPerSecond == 0 || c.Limits.FrameBurst >= 1, "limits.frame_burst (%d) must be at least 1 when limits.frames_per_second is set", c.Limits.FrameBurst)
	check(c.Limits.MaxDelayedFrames >= 0, "limits.max_delayed_frames must not be negative")
	check(c.Limits.FramesPerSecond == 0 || c.Limits.MaxDelayedFrames == 0 || c.Limits.MaxDelayedBytes >= c.Server.MaxFrameBytes,
		"limits.max_delayed_bytes (%d) must be at least server.max_frame_bytes (%d): a frame over the rate must fit%s", c.Limits.MaxDelayedBytes, c.Server.MaxFrameBytes, c.compatHint("server.max_frame_bytes"))
	check(c.Limits.ConnectionsPerIP >= 0, "limits.connections_per_ip must not be negative")
	check(c.Limits.ConnectionsPerAccount >= 0, "limits.connections_per_account (%d) must not be negative (0 = no limit)", c.Limits.ConnectionsPerAccount)
	check(c.Limits.MaxContentBytes >= 0 && c.Limits.MaxContentBytes <= c.Server.MaxFrameBytes,
		"limits.max_content_bytes (%d) must be 0..server.max_frame_bytes (%d)", c.Limits.MaxContentBytes, c.Server.MaxFrameBytes)
	check(c.Limits.MaxGroupSize > 0, "limits.max_group_size must be positive")
	check(c.Limits.MaxUnacked > 0, "limits.max_unacked must be positive")
	check(c.Limits.AckMemory > 0, "limits.ack_memory must be positive")
	switch c.History.Enabled {
	case "auto", "true", "false":
	default:
		check(false, "history.enabled %q: want auto, true or false", c.History.Enabled)
	}
	check(c.History.BatchSize > 0 && c.History.BatchSize <= 10_000, "history.batch_size (%d) must be 1..10000", c.History.BatchSize)
	check(c.History.QueueLimit >= c.History.BatchSize, "history.queue_limit (%d) must be at least history.batch_size (%d)", c.History.QueueLimit, c.History.BatchSize)
	check(c.History.MaxAge >= 0, "history.max_age (%v) must not be negative (0 keeps everything)", c.History.MaxAge)
	check(c.History.MaxPerConversation >= 0, "history.max_per_conversation (%d) must not be negative (0: no limit)", c.History.MaxPerConversation)
	check(c.History.RecallWindow >= 0, "history.recall_window (%v) must not be negative (0: no recall or edit)", c.History.RecallWindow)
	check(c.History.RetentionInterval >= time.Second, "history.retention_interval (%v) must be at least 1s", c.History.RetentionInterval)
	check(c.History.Table != c.Offline.Table && c.History.Table != c.Groups.Table, "history.table %q must differ from offline.table and groups.table", c.History.Table)
	check(c.Groups.CacheTTL > 0, "groups.cache_ttl must be positive")
	check(c.Groups.CacheEntries > 0, "groups.cache_entries must be positive")
	check(!c.Cluster.Enabled || c.Redis.Addr != "", "cluster.enabled needs redis.addr: the nodes meet in Redis")
	check(c.Cluster.ConfirmTimeout > 0, "cluster.confirm_timeout must be positive")
	check(c.Redis.SentinelMaster == "" || c.Redis.Addr != "",
		"redis.sentinel_master %q is set: redis.addr must list the Sentinels (host:port, comma-separated)", c.Redis.SentinelMaster)
	check(c.Redis.SentinelPassword == "" || c.Redis.SentinelMaster != "",
		"redis.sentinel_password is set without redis.sentinel_master: it is the Sentinels' password")
	check(!c.Cluster.Enabled || c.MySQL.DSN != "", "cluster.enabled needs mysql.dsn: the nodes share the offline pool")
	check(c.TLS.MinVersion == "1.2" || c.TLS.MinVersion == "1.3", "tls.min_version %q: want 1.2 or 1.3", c.TLS.MinVersion)
	check((c.TLS.Addr == "" && !c.TLS.API) || (c.TLS.CertFile != "" && c.TLS.KeyFile != ""),
		"tls.addr or tls.api is set: tls.cert_file and tls.key_file are needed")
	if c.Notify.URL != "" {
		u, err := url.Parse(c.Notify.URL)
		check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "",
			"notify.url %q: want an http:// or https:// address", c.Notify.URL)
		check(c.Notify.Secret != "", "notify.url is set: notify.secret is required (the key of the events' signature)")
	}
	check(c.Notify.Grace >= 0, "notify.grace (%v) must not be negative", c.Notify.Grace)
	check(c.Notify.BatchWindow > 0, "notify.batch_window (%v) must be positive", c.Notify.BatchWindow)
	check(c.Notify.PreviewBytes >= 0, "notify.preview_bytes (%d) must not be negative (0: no preview)", c.Notify.PreviewBytes)
	check(c.Notify.RetryBase > 0, "notify.retry_base (%v) must be positive", c.Notify.RetryBase)
	check(c.Notify.MaxAttempts > 0, "notify.max_attempts (%d) must be positive", c.Notify.MaxAttempts)
	check(!c.Notify.Presence || c.Notify.URL != "", "notify.presence needs notify.url: the presence events go there")
	check(c.Notify.PresenceDebounce > 0, "notify.presence_debounce (%v) must be positive", c.Notify.PresenceDebounce)
	check(c.Notify.Stream == "" || (c.Notify.URL != "" && c.Redis.Addr != ""),
		"notify.stream %q needs notify.url and redis.addr: it copies the events into a Redis Stream", c.Notify.Stream)
	check(c.Notify.StreamMaxLen > 0, "notify.stream_maxlen (%d) must be positive", c.Notify.StreamMaxLen)
	check(c.Notify.Table != c.Offline.Table && c.Notify.Table != c.Groups.Table && c.Notify.Table != c.History.Table,
		"notify.table %q must differ from offline.table, groups.table and history.table", c.Notify.Table)
	switch c.Log.Format {
	case "json", "console":
	default:
		check(false, "log.format %q: want json or console", c.Log.Format)
	}
	check(!c.Server.ProxyProtocol || len(c.Server.TrustedProxies) > 0,
		"server.proxy_protocol is on but server.trusted_proxies is empty: list the balancers whose PROXY headers are taken")
	for _, l := range []struct {
		name string
		list []string
	}{{"api.metrics_allow", c.API.MetricsAllow}, {"server.trusted_proxies", c.Server.TrustedProxies}} {
		if _, err := Networks(l.name, l.list); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
