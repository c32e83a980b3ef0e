package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime/stime in /proc/PID/stat (100 on Linux).
const clkTck = 100

// readRSS returns VmRSS of pid in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS for pid %d", pid)
}

// readCPU returns utime+stime of pid in seconds.
func readCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu: %w", err)
	}
	// Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu: bad utime/stime in /proc/%d/stat", pid)
	}
	return float64(ut+st) / clkTck, nil
}

// totalCPU is utime+stime of every pid, summed, in seconds (the server's
// nodes); it fails if any of them cannot be read.
func totalCPU(pids []int) (float64, error) {
	var sum float64
	for _, p := range pids {
		s, err := readCPU(p)
		if err != nil {
			return 0, err
		}
		sum += s
	}
	return sum, nil
}

// totalRSS is VmRSS of every pid, summed, in bytes.
func totalRSS(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		b, err := readRSS(p)
		if err != nil {
			return 0, err
		}
		sum += b
	}
	return sum, nil
}

// settleRSS samples the RSS of pids (summed) every 500 ms until it moved
// less than 1% over the last 2 s, or maxWait passes; it returns the last
// sample and whether it settled.
func settleRSS(ctx context.Context, pids []int, maxWait time.Duration, gcSignal bool) (int64, bool, error) {
	if gcSignal {
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
				return 0, false, fmt.Errorf("gc signal to %d: %w", pid, err)
			}
		}
	}
	const every, window = 500 * time.Millisecond, 4 // 4 intervals = 2 s
	deadline := time.Now().Add(maxWait)
	var hist []int64
	for {
		rss, err := totalRSS(pids)
		if err != nil {
			return 0, false, err
		}
		hist = append(hist, rss)
		if n := len(hist); n > window {
			lo, hi := rss, rss
			for _, v := range hist[n-window-1:] {
				lo, hi = min(lo, v), max(hi, v)
			}
			if float64(hi-lo) < 0.01*float64(hi) {
				return rss, true, nil
			}
		}
		if time.Now().After(deadline) {
			return rss, false, nil
		}
		sleepCtx(ctx, every)
		if ctx.Err() != nil {
			return rss, false, ctx.Err()
		}
	}
}

// scrapeMetric fetches a Prometheus text endpoint and returns the first
// sample of name; ok is false when the endpoint or the metric is absent.
func scrapeMetric(ctx context.Context, url, name string) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(res.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			return v, true
		}
	}
	return 0, false
}
