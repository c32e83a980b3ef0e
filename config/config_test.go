package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestShippedFileIsTheDefault(t *testing.T) {
	cfg, err := Load("../config.yaml", false, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("config.yaml differs from Default():\n file %+v\n code %+v", cfg, Default())
	}
}

func TestMissingOptionalFileGivesDefaults(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "none.yaml"), true, noEnv)
	if err != nil || !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("Load(missing, optional) = %+v, %v; want defaults", cfg, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml"), false, noEnv); err == nil {
		t.Fatal("a missing file named with -config must be an error")
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("server:\n  addr: \":1\"\n  idle_timeout: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, false, envOf(map[string]string{
		"CHAT_SERVER_ADDR":           "127.0.0.1:2",
		"CHAT_MYSQL_DSN":             "u:p@tcp(db:3306)/x",
		"CHAT_REDIS_DB":              "3",
		"CHAT_OFFLINE_DRAIN_TIMEOUT": "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:2" || cfg.Server.IdleTimeout != 30*time.Second ||
		cfg.MySQL.DSN != "u:p@tcp(db:3306)/x" || cfg.Redis.DB != 3 || cfg.Offline.DrainTimeout != 5*time.Second {
		t.Fatalf("env not applied over the file: %+v", cfg)
	}
}

func TestInvalidValuesNamed(t *testing.T) {
	cases := map[string]string{
		"CHAT_SERVER_IDLE_TIMEOUT":            "10ms",
		"CHAT_SERVER_MAX_WRITE_BUFFER_BYTES":  "10",
		"CHAT_OFFLINE_BATCH_SIZE":             "0",
		"CHAT_LOG_FORMAT":                     "xml",
		"CHAT_GROUPS_CACHE_ENTRIES":           "0",
		"CHAT_LIMITS_ACK_MEMORY":              "0",
		"CHAT_OFFLINE_SENDER_QUEUE_SHARE":     "100001",
		"CHAT_LIMITS_CONNECTIONS_PER_ACCOUNT": "-1",
		"CHAT_AUTH_JWT_LEEWAY":                "-1s",
	}
	for k, v := range cases {
		_, err := Load("../config.yaml", false, envOf(map[string]string{k: v}))
		if err == nil {
			t.Errorf("%s=%s accepted; want an error", k, v)
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(k, EnvPrefix))
		section, field, _ := strings.Cut(key, "_")
		if !strings.Contains(err.Error(), section+"."+field) {
			t.Errorf("%s=%s: error %q does not name %s.%s", k, v, err, section, field)
		}
	}
	if _, err := Load("../config.yaml", false, envOf(map[string]string{"CHAT_REDIS_DB": "x"})); err == nil ||
		!strings.Contains(err.Error(), "CHAT_REDIS_DB") {
		t.Errorf("bad integer in env: %v; want an error naming CHAT_REDIS_DB", err)
	}
}

// Every key is documented: config.yaml and README.md name each variable's key.
func TestEveryKeyDocumented(t *testing.T) {
	yml, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range EnvNames() {
		if !strings.Contains(string(readme), name) {
			t.Errorf("README.md does not mention %s", name)
		}
	}
	for _, key := range []string{"node:", "addr:", "idle_timeout:", "max_frame_bytes:", "dsn:", "key_prefix:", "table:", "memory_limit:"} {
		if !strings.Contains(string(yml), key) {
			t.Errorf("config.yaml lacks %s", key)
		}
	}
}

// TestSentinelSettings: the Sentinel keys load from the file and the
// environment, and a Sentinel setup that cannot work is refused, naming the keys.
func TestSentinelSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	yml := "redis:\n  addr: \"10.0.0.1:26379,10.0.0.2:26379\"\n  sentinel_master: chat\n  sentinel_password: s1\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, false, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Redis; r.Addr != "10.0.0.1:26379,10.0.0.2:26379" || r.SentinelMaster != "chat" || r.SentinelPassword != "s1" {
		t.Fatalf("file: redis = %+v", r)
	}
	cfg, err = Load(path, false, envOf(map[string]string{
		"CHAT_REDIS_SENTINEL_MASTER": "other", "CHAT_REDIS_SENTINEL_PASSWORD": "s2",
	}))
	if err != nil || cfg.Redis.SentinelMaster != "other" || cfg.Redis.SentinelPassword != "s2" {
		t.Fatalf("env over the file: redis = %+v, %v", cfg.Redis, err)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // in the error
	}{
		{"master without addr", map[string]string{"CHAT_REDIS_SENTINEL_MASTER": "chat"},
			[]string{"redis.sentinel_master", "redis.addr", "Sentinels"}},
		{"password without master", map[string]string{"CHAT_REDIS_ADDR": "10.0.0.1:6379", "CHAT_REDIS_SENTINEL_PASSWORD": "s"},
			[]string{"redis.sentinel_password", "redis.sentinel_master"}},
	} {
		_, err := Load("../config.yaml", false, envOf(tc.env))
		if err == nil {
			t.Errorf("%s: accepted; want an error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
	if _, err := Load("../config.yaml", false, envOf(map[string]string{
		"CHAT_REDIS_ADDR": "10.0.0.1:26379", "CHAT_REDIS_SENTINEL_MASTER": "chat",
	})); err != nil {
		t.Fatalf("one Sentinel address and a master name: %v", err)
	}
}
