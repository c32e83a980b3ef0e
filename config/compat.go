package config

import (
	"fmt"
	"reflect"
	"strings"
)

// PresetValue is one key the compat preset sets, its value (as the
// environment would give it) and why the default differs.
type PresetValue struct {
	Key, Value, Why string
}

// LegacyPreset is what compat: legacy (CHAT_COMPAT=legacy) sets: the PHP
// Swoole server's behaviour wherever our default refuses something it
// allowed. Load applies each value to a key only when the operator did not
// set that key, in the file or the environment: explicit settings win.
// README's "Migrating from the PHP server" lists these with the differences
// no setting restores.
func LegacyPreset() []PresetValue {
	return []PresetValue{
		{"broadcast.allowed", "*", "anyone may address the whole site"},
		{"broadcast.include_unbound", "true", "connections that never proved an account get announcements"},
		{"limits.connections_per_ip", "0", "one address may hold any number of connections"},
		{"limits.connections_per_account", "0", "one account may hold any number of connections"},
		{"limits.max_content_bytes", "0", "content is bounded by the table's column only"},
		{"server.max_frame_bytes", "2097152", "a client may make the server buffer 2 MiB per connection"},
		{"server.max_write_buffer_bytes", "2097152", "at least the frame size; Swoole's output buffer"},
		{"server.binary_as_text", "true", "binary frames are read as text"},
	}
}

// applyCompat applies the preset cfg.Compat names to every key of it not in
// given, and records which keys it set and which it left.
func applyCompat(cfg *Config, given map[string]bool) error {
	if cfg.Compat != "legacy" {
		return nil
	}
	for _, p := range LegacyPreset() {
		if given[p.Key] {
			cfg.CompatKept = append(cfg.CompatKept, p.Key)
			continue
		}
		f, ok := fieldByKey(reflect.ValueOf(cfg).Elem(), p.Key)
		if !ok {
			return fmt.Errorf("config: compat preset: no key %s", p.Key) // a bug in LegacyPreset
		}
		if err := set(f, p.Value); err != nil {
			return fmt.Errorf("config: compat preset %s=%q: %w", p.Key, p.Value, err)
		}
		cfg.CompatSet = append(cfg.CompatSet, p.Key)
	}
	return nil
}

// fieldByKey finds the field of a key path such as "server.addr".
func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	name, rest, nested := strings.Cut(key, ".")
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] != name {
			continue
		}
		f := v.Field(i)
		if !nested {
			return f, true
		}
		if f.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		return fieldByKey(f, rest)
	}
	return reflect.Value{}, false
}

// fileKeys records in given the key path of every value the file sets
// ("server.addr"); a section left empty sets none of its keys.
func fileKeys(prefix string, m map[string]any, given map[string]bool) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			fileKeys(prefix+k+".", sub, given)
			continue
		}
		if v == nil && prefix == "" {
			continue // "broadcast:" with every key commented out
		}
		given[prefix+k] = true
	}
}

// compatHint says, in an error about key, that the compat preset set it.
func (c Config) compatHint(key string) string {
	for _, k := range c.CompatSet {
		if k == key {
			for _, p := range LegacyPreset() {
				if p.Key == key {
					return fmt.Sprintf(" (compat: %s set %s to %s; set it yourself to keep another value)", c.Compat, key, p.Value)
				}
			}
		}
	}
	return ""
}
