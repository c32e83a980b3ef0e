package boxcheck

import (
	"fmt"
	"io"
	"strings"
)

// Write prints the findings, one a line, each fix under its finding, then a
// summary that says whether the box holds the target.
func Write(w io.Writer, t Target, findings []Finding) error {
	width := 0
	for _, f := range findings {
		width = max(width, len(f.Name))
	}
	var b strings.Builder
	counts := map[Status]int{}
	sysctlFix := false
	for _, f := range findings {
		counts[f.Status]++
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", f.Status, width, f.Name, f.Detail)
		for _, line := range strings.Split(f.Fix, "\n") {
			if line == "" {
				continue
			}
			sysctlFix = sysctlFix || strings.HasPrefix(line, "sysctl -w ")
			fmt.Fprintf(&b, "%-4s  %-*s  fix: %s\n", "", width, "", line)
		}
	}
	if sysctlFix {
		b.WriteString("\nsysctl -w lasts until the next boot: put the values in /etc/sysctl.d/99-chatserver.conf (deploy/99-chatserver.conf holds them for a million connections) and run sysctl --system.\n")
	}
	verdict := "ready for"
	if counts[Fail] > 0 {
		verdict = "not ready for"
	}
	fmt.Fprintf(&b, "\n%d fail, %d warn, %d ok: %s %s connections\n", counts[Fail], counts[Warn], counts[OK], verdict, num(int64(t.Connections)))
	_, err := io.WriteString(w, b.String())
	return err
}
