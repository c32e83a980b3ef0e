package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// version is the release this binary is, stamped when it is linked:
// go build -ldflags "-X main.version=1.4.0" (deploy/build-release.sh does).
// A package variable because that is all the linker can set.
var version = "dev"

// writeVersion prints the version and what the binary was built from: the
// module's version, the commit (its time, and whether the tree had changes),
// the Go release and the platform.
func writeVersion(w io.Writer, stamped string, info *debug.BuildInfo) error {
	var b strings.Builder
	fmt.Fprintf(&b, "chatserver %s\n", stamped)
	if info == nil {
		b.WriteString("build information: none (built without module support)\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "module %s %s\n", info.Main.Path, info.Main.Version)
	fmt.Fprintf(&b, "go %s\n", info.GoVersion)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != "" {
		fmt.Fprintf(&b, "platform %s/%s\n", settings["GOOS"], settings["GOARCH"])
	}
	if settings["vcs.revision"] == "" {
		b.WriteString("vcs.revision unknown (built outside a checkout, or with -buildvcs=false)\n")
	}
	for _, k := range []string{"vcs.revision", "vcs.time", "vcs.modified"} {
		if v := settings[k]; v != "" {
			fmt.Fprintf(&b, "%s %s\n", k, v)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
