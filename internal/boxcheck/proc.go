package boxcheck

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
)

// sysctlPath is where a sysctl lives under /proc: net.core.somaxconn is
// sys/net/core/somaxconn.
func sysctlPath(name string) string { return "sys/" + strings.ReplaceAll(name, ".", "/") }

// sysctl reads a sysctl of n numbers (most hold one; tcp_mem three).
func (b Box) sysctl(name string, n int) ([]int64, error) {
	path := sysctlPath(name)
	data, err := fs.ReadFile(b.Proc, path)
	if err != nil {
		return nil, fmt.Errorf("read /proc/%s: %w", path, err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != n {
		return nil, fmt.Errorf("/proc/%s holds %q: want %d numbers", path, strings.TrimSpace(string(data)), n)
	}
	out := make([]int64, n)
	for i, f := range fields {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/%s: %w", path, err)
		}
		out[i] = v
	}
	return out, nil
}

// sysctl1 reads a sysctl of one number.
func (b Box) sysctl1(name string) (int64, error) {
	v, err := b.sysctl(name, 1)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// memTotal reads the RAM the kernel manages (MemTotal in /proc/meminfo), in bytes.
func (b Box) memTotal() (int64, error) {
	data, err := fs.ReadFile(b.Proc, "meminfo")
	if err != nil {
		return 0, fmt.Errorf("read /proc/meminfo: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/meminfo: MemTotal %q: want <n> kB", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/meminfo: MemTotal: %w", err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal line")
}

// unreadable is the finding for a setting that could not be read: the check
// cannot say, the operator has to look.
func unreadable(name string, err error) Finding {
	return Finding{Name: name, Status: Warn,
		Detail: err.Error() + "; check it by hand (in a container the host's value applies)"}
}

// num writes n with thousands separators: 1,000,000.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// size writes a byte count in binary units: 9.4 GiB.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + [...]string{"B", "KiB", "MiB", "GiB", "TiB"}[i]
}

// pow2 rounds n up to a power of two: the round numbers the fixes suggest
// (1,048,576 for a million and some).
func pow2(n int64) int64 {
	p := int64(1)
	for p < n {
		p <<= 1
	}
	return p
}

// capped turns a limit read as uint64 (RLIM_INFINITY is all ones) into an int64.
func capped(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// ceilDiv is a/b rounded up, for positive numbers.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
