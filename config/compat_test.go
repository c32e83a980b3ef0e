package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestCompatLegacySetsThePreset: compat: legacy, from the environment over
// the shipped file, sets every key of the preset; without it nothing changes
// (TestShippedFileIsTheDefault).
func TestCompatLegacySetsThePreset(t *testing.T) {
	cfg, err := Load("../config.yaml", false, envOf(map[string]string{"CHAT_COMPAT": "legacy"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Compat = "legacy"
	want.Broadcast.Allowed = []string{"*"}
	want.Broadcast.IncludeUnbound = true
	want.Limits.ConnectionsPerIP = 0
	want.Limits.ConnectionsPerAccount = 0
	want.Limits.MaxContentBytes = 0
	want.Server.MaxFrameBytes = 2 << 20
	want.Server.MaxWriteBufferBytes = 2 << 20
	want.Server.BinaryAsText = true
	for _, p := range LegacyPreset() {
		want.CompatSet = append(want.CompatSet, p.Key)
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("compat: legacy gave\n %+v\nwant\n %+v", cfg, want)
	}
}

// TestCompatExplicitSettingsWin: a key the operator set, in the file or the
// environment, keeps the operator's value under compat: legacy, even when it
// is the default's; the others take the preset.
func TestCompatExplicitSettingsWin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	yml := "compat: legacy\nbroadcast:\n  allowed: [admin]\nlimits:\n  connections_per_ip: 256\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, false, envOf(map[string]string{"CHAT_SERVER_BINARY_AS_TEXT": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Broadcast.Allowed, []string{"admin"}) || cfg.Limits.ConnectionsPerIP != 256 || cfg.Server.BinaryAsText {
		t.Fatalf("explicit settings lost: allowed %v, connections_per_ip %d, binary_as_text %v",
			cfg.Broadcast.Allowed, cfg.Limits.ConnectionsPerIP, cfg.Server.BinaryAsText)
	}
	if !cfg.Broadcast.IncludeUnbound || cfg.Limits.MaxContentBytes != 0 || cfg.Server.MaxFrameBytes != 2<<20 {
		t.Fatalf("the keys not set did not take the preset: %+v", cfg)
	}
	kept := slices.Sorted(slices.Values(cfg.CompatKept))
	if want := []string{"broadcast.allowed", "limits.connections_per_ip", "server.binary_as_text"}; !slices.Equal(kept, want) {
		t.Fatalf("kept %v; want %v", kept, want)
	}
	if len(cfg.CompatSet)+len(cfg.CompatKept) != len(LegacyPreset()) {
		t.Fatalf("set %v and kept %v do not cover the preset", cfg.CompatSet, cfg.CompatKept)
	}
}

// TestCompatErrors: an unknown compat value is refused naming the key, and a
// setting that contradicts a preset value says the preset set it.
func TestCompatErrors(t *testing.T) {
	_, err := Load("../config.yaml", false, envOf(map[string]string{"CHAT_COMPAT": "php"}))
	if err == nil || !strings.Contains(err.Error(), "compat") {
		t.Fatalf("CHAT_COMPAT=php: %v; want an error naming compat", err)
	}
	_, err = Load("../config.yaml", false, envOf(map[string]string{
		"CHAT_COMPAT": "legacy", "CHAT_SERVER_MAX_WRITE_BUFFER_BYTES": "1048576",
	}))
	if err == nil || !strings.Contains(err.Error(), "server.max_write_buffer_bytes") ||
		!strings.Contains(err.Error(), "compat: legacy set server.max_frame_bytes") {
		t.Fatalf("a write buffer under the preset's frame size: %v; want an error naming both and the preset", err)
	}
	if _, err := Load("../config.yaml", false, envOf(map[string]string{
		"CHAT_COMPAT": "legacy", "CHAT_SERVER_MAX_WRITE_BUFFER_BYTES": "1048576", "CHAT_SERVER_MAX_FRAME_BYTES": "65536",
	})); err != nil {
		t.Fatalf("both set by the operator: %v", err)
	}
}

// TestEveryPresetKeyExists: each preset key names a setting whose value
// parses (a typo would only fail at a legacy start otherwise).
func TestEveryPresetKeyExists(t *testing.T) {
	for _, p := range LegacyPreset() {
		cfg := Default()
		f, ok := fieldByKey(reflect.ValueOf(&cfg).Elem(), p.Key)
		if !ok {
			t.Errorf("preset key %s is no setting", p.Key)
			continue
		}
		if err := set(f, p.Value); err != nil {
			t.Errorf("preset %s=%q: %v", p.Key, p.Value, err)
		}
	}
}
