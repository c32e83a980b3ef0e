package boxcheck

import (
	"bytes"
	"strings"
	"testing"
	"testing/fstest"
)

func TestWriteSaysWhatToChange(t *testing.T) {
	var out bytes.Buffer
	fs := roomy().with("fs.nr_open", "1048576").box().Check(Target{Connections: 2_000_000})
	if err := Write(&out, Target{Connections: 2_000_000}, fs); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"fail  fs.nr_open ", "fix: sysctl -w fs.nr_open=4194304",
		"fix: LimitNOFILE=2097152 in the unit's [Service] section",
		"put the values in /etc/sysctl.d/99-chatserver.conf",
		"not ready for 2,000,000 connections",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	out.Reset()
	if err := Write(&out, million, roomy().box().Check(million)); err != nil {
		t.Fatal(err)
	}
	text = out.String()
	if !strings.Contains(text, "0 fail, 0 warn, 11 ok: ready for 1,000,000 connections") || strings.Contains(text, "fix:") || strings.Contains(text, "sysctl.d") {
		t.Errorf("a machine with nothing to change:\n%s", text)
	}
}

func TestUnreadableProcIsAWarning(t *testing.T) {
	box := roomy().box()
	box.Proc.(fstest.MapFS)["meminfo"] = &fstest.MapFile{Data: []byte("MemFree: 1 kB\n")}
	box.Proc.(fstest.MapFS)[sysctlPath("net.core.somaxconn")] = &fstest.MapFile{Data: []byte("many\n")}
	fs := box.Check(million)
	for _, name := range []string{"memory", "net.core.somaxconn"} {
		if f := find(t, fs, name); f.Status != Warn || !strings.Contains(f.Detail, "check it by hand") {
			t.Errorf("%s: %s %q; want a warning to check by hand", name, f.Status, f.Detail)
		}
	}
}

func TestNum(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1048576: "1,048,576", -12345: "-12,345"} {
		if got := num(n); got != want {
			t.Errorf("num(%d) = %q; want %q", n, got, want)
		}
	}
}
