package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestWriteVersion(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "chatserver", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	var out bytes.Buffer
	if err := writeVersion(&out, "1.4.0", info); err != nil {
		t.Fatal(err)
	}
	want := "chatserver 1.4.0\nmodule chatserver v1.4.0\ngo go1.26.8\nplatform linux/arm64\n" +
		"vcs.revision 0123456789abcdef\nvcs.time 2026-12-01T10:00:00Z\nvcs.modified true\n"
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	info.Settings = nil
	if err := writeVersion(&out, "dev", info); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "vcs.revision unknown") {
		t.Fatalf("without vcs settings:\n%s", out.String())
	}
}

// TestRunVersion runs the command with -version: it prints and returns
// without reading any configuration (a broken one included).
func TestRunVersion(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"CHAT_SERVER_IDLE_TIMEOUT": "1ms"} // would fail validation
	err := run(context.Background(), []string{"chatserver", "-version"}, &out, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("run -version: %v", err)
	}
	for _, want := range []string{"chatserver " + version + "\n", "module chatserver", "go " + runtime.Version() + "\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRejectsArguments(t *testing.T) {
	err := run(context.Background(), []string{"chatserver", "check"}, &bytes.Buffer{}, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "check"`) {
		t.Fatalf("run check = %v; want an error naming the argument", err)
	}
}
