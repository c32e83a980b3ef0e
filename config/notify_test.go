package config

import (
	"strings"
	"testing"
)

// A notify.url without a secret, or one that is not an http(s) address, stops
// the start with an error naming the setting; both together are accepted.
func TestNotifySettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"url without secret", map[string]string{"CHAT_NOTIFY_URL": "https://site.example/hook"},
			[]string{"notify.secret", "notify.url"}},
		{"not http", map[string]string{"CHAT_NOTIFY_URL": "ftp://site.example/", "CHAT_NOTIFY_SECRET": "s"},
			[]string{"notify.url", "ftp://site.example/"}},
		{"negative preview", map[string]string{"CHAT_NOTIFY_PREVIEW_BYTES": "-1"},
			[]string{"notify.preview_bytes"}},
		{"zero batch window", map[string]string{"CHAT_NOTIFY_BATCH_WINDOW": "0s"},
			[]string{"notify.batch_window"}},
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
	cfg, err := Load("../config.yaml", false, envOf(map[string]string{
		"CHAT_NOTIFY_URL": "https://site.example/hook", "CHAT_NOTIFY_SECRET": "s", "CHAT_NOTIFY_GRACE": "3s",
	}))
	if err != nil {
		t.Fatalf("url and secret: %v", err)
	}
	if n := cfg.Notify; n.URL != "https://site.example/hook" || n.Secret != "s" || n.Grace.String() != "3s" || n.BatchWindow.String() != "2s" {
		t.Fatalf("notify = %+v; want the env's url, secret and grace over the file's defaults", n)
	}
}
