package deploy

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// unit is a unit file's settings, "Section.Key" -> its values in order.
type unit map[string][]string

// readUnit parses a systemd unit file: [Section] headers, Key=value lines,
// comments.
func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, section := unit{}, ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not Key=value in a section", path, n, line)
			}
			key := section + "." + strings.TrimSpace(k)
			u[key] = append(u[key], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the single value of a key, failing the test if it is not set
// exactly once.
func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("%s is set %d times; want once", key, len(u[key]))
	}
	return u[key][0]
}

// dropIn is a sysctl.d file: name -> value, and the names marked optional
// ("-name = value": its failure to apply is ignored).
type dropIn struct {
	values   map[string]string
	optional map[string]bool
}

func readDropIn(t *testing.T, path string) dropIn {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := dropIn{values: map[string]string{}, optional: map[string]bool{}}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: %q is not name = value", path, n+1, line)
		}
		k = strings.TrimSpace(k)
		if name, opt := strings.CutPrefix(k, "-"); opt {
			k = name
			d.optional[k] = true
		}
		if _, dup := d.values[k]; dup {
			t.Fatalf("%s:%d: %s set twice", path, n+1, k)
		}
		d.values[k] = strings.Join(strings.Fields(v), " ")
	}
	return d
}
