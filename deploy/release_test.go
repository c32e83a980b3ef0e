package deploy

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBuildRelease runs build-release.sh into a temporary directory: both
// binaries are there, ELF for their architecture, static (no interpreter),
// listed in SHA256SUMS with their digests, and the one for this machine
// prints the stamped version.
func TestBuildRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two release binaries")
	}
	const version = "9.8.7-test+deploy"
	out := t.TempDir()
	cmd := exec.Command("./build-release.sh", version, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-release.sh: %v\n%s", err, msg)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		name := "chatserver-" + version + "-linux-" + arch
		path := filepath.Join(out, name)
		f, err := elf.Open(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f.Machine != machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
			t.Errorf("%s: %v %v %v; want a 64-bit %v executable", name, f.Class, f.Machine, f.Type, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (%v): want static, CGO_ENABLED=0", name, p.Type)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s has a symbol table: want it stripped (-s -w)", name)
		}
		f.Close()

		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if !strings.Contains(string(sums), hex.EncodeToString(sum[:])+"  "+name+"\n") {
			t.Errorf("SHA256SUMS lacks %s with its digest:\n%s", name, sums)
		}

		if arch != runtime.GOARCH || runtime.GOOS != "linux" {
			continue
		}
		got, err := exec.Command(path, "-version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s -version: %v\n%s", name, err, got)
		}
		if !strings.HasPrefix(string(got), "chatserver "+version+"\n") || !strings.Contains(string(got), "platform linux/"+arch) {
			t.Errorf("%s -version:\n%s\nwant chatserver %s first, platform linux/%s", name, got, version, arch)
		}
	}
}

// TestBuildReleaseRefusesBadVersion: a version the linker flag cannot carry
// intact is refused before anything is built.
func TestBuildReleaseRefusesBadVersion(t *testing.T) {
	out := t.TempDir()
	for _, v := range []string{"1.0 beta", "1.0;rm", ""} {
		msg, err := exec.Command("./build-release.sh", v, out).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("version %q: %v; want exit 2\n%s", v, err, msg)
		}
		if !strings.Contains(string(msg), "letters, digits") {
			t.Errorf("version %q: %s", v, msg)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("files written for a bad version: %v", entries)
	}
}
