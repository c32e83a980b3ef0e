#!/usr/bin/env python3
"""Summarizes bench/history.sh output: median (min-max) of each figure per
setup and cell, history on over history off, and whether the history writer
kept up (rows written against messages taken in)."""
import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/chat-history"
SETUPS = [("off", "Redis+MariaDB, history off"), ("on", "Redis+MariaDB, history on"),
          ("eoff", "embedded, history off"), ("eon", "embedded, history on")]
CELLS = [("flat", "flat out, window 32"), ("sustained", "sustained rate")]


def kv(text):
    return dict(x.split("=", 1) for x in text.split() if "=" in x)


def queue(path):
    """The writer's trace: samples [(t, in, rows)], end (in, rows), and the
    catch-up line's fields."""
    samples, end, tail = [], None, {}
    try:
        with open(path) as fh:
            for line in fh:
                f = kv(line)
                if line.startswith("t="):
                    samples.append((int(f["t"]), int(f["in"]), int(f["rows"])))
                elif line.startswith("end "):
                    end = (int(f["in"]), int(f["rows"]))
                elif "caught_up_after_s" in f:
                    tail = f
    except (OSError, ValueError, KeyError):
        pass
    return samples, end, tail


def runs(setup, cell):
    res = {}
    for f in sorted(glob.glob(os.path.join(out, f"{setup}-{cell}-*.json"))):
        m = re.search(r"-(\d+)\.json$", f)
        if not m:
            continue
        meta = {}
        try:
            with open(f[:-5] + ".meta") as fh:
                meta = kv(fh.read())
        except OSError:
            pass
        try:
            with open(f) as fh:
                d = json.load(fh)
        except (OSError, ValueError):
            d = None
        res[int(m.group(1))] = (d, meta, queue(f[:-5] + ".queue"))
    return [res[k] for k in sorted(res)]


def get(d, path):
    for p in path.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def cell(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


def fmeta(m, k):
    try:
        return float(m[k])
    except (KeyError, ValueError):
        return None


def written_share(d, m, q):
    _, end, tail = q
    if not end or "count" not in tail or not end[0]:
        return None
    return int(tail["count"]) / end[0] * 100


def max_waiting(d, m, q):
    samples, end, _ = q
    pts = samples + ([(0, *end)] if end else [])
    return max((i - r for _, i, r in pts if r >= 0), default=None)


def write_rate(d, m, q):
    """Rows written per second over the run, from the first sample to the end."""
    samples, end, _ = q
    if not samples or not end or not get(d, "pairs.duration_s"):
        return None
    t0, _, r0 = samples[0]
    dt = get(d, "pairs.duration_s") + 2 - t0  # chatload connects for about 2 s first
    return (end[1] - r0) / dt if dt > 0 else None


def per_row(key):
    """CPU-s of key over the run per 1,000 rows written by its end."""
    def f(d, m, q):
        try:
            return fmeta(m, key) / q[1][1] * 1000
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
    return f


rows = [
    ("delivered msg/s", lambda d, m, q: get(d, "pairs.delivered_per_sec"), "{:,.0f}"),
    ("latency p50, ms", lambda d, m, q: get(d, "pairs.latency_p50_ms"), "{:,.2f}"),
    ("latency p99, ms", lambda d, m, q: get(d, "pairs.latency_p99_ms"), "{:,.1f}"),
    ("server CPU-s per 1,000 delivered", lambda d, m, q: get(d, "cpu.seconds_per_1000_delivered"), "{:.4f}"),
    ("MariaDB CPU-s over the run", lambda d, m, q: fmeta(m, "mariadb_cpu_s"), "{:.2f}"),
    ("late sends", lambda d, m, q: get(d, "pairs.late_sends"), "{:,.0f}"),
    ("history: rows written by 30 s after the run, % of messages taken in", written_share, "{:.1f}"),
    ("history: rows written per second", write_rate, "{:,.0f}"),
    ("history: most messages taken in but not (yet) written", max_waiting, "{:,.0f}"),
    ("history: caught up after the run, s (30: not)", lambda d, m, q: fmeta(q[2], "caught_up_after_s"), "{:.1f}"),
    ("history: 'queue full' log lines", lambda d, m, q: fmeta(q[2], "dropped_logged"), "{:.0f}"),
    ("history: MariaDB CPU-s per 1,000 rows", per_row("mariadb_cpu_s"), "{:.3f}"),
    ("load average at start", lambda d, m, q: fmeta(m, "load_start"), "{:.2f}"),
    ("other work over the run, CPU-s", lambda d, m, q: fmeta(m, "other_cpu_s"), "{:.2f}"),
    ("machine busy over the run, CPU-s", lambda d, m, q: fmeta(m, "machine_busy_s"), "{:.2f}"),
]

present = [(s, sl) for s, sl in SETUPS if glob.glob(os.path.join(out, f"{s}-*.json"))]
data = {(s, c): runs(s, c) for s, _ in present for c, _ in CELLS}
problems = []
for (s, c), rs in data.items():
    for i, (d, m, _) in enumerate(rs, 1):
        if d is None:
            problems.append(f"{s} {c} run {i}: no result (chatload exit {m.get('chatload_rc', '?')})")
            continue
        bad = {k: get(d, "pairs." + k) for k in ("lost", "duplicated", "out_of_order", "wrong_from")}
        bad["connect failed"] = get(d, "connect.failed")
        bad["server errors"] = sum((get(d, "client.errors") or {}).values())
        bad = {k: v for k, v in bad.items() if v}
        if bad or m.get("chatload_rc", "0") != "0":
            problems.append(f"{s} {c} run {i}: exit {m.get('chatload_rc', '?')} {bad}")

for c, cl in CELLS:
    cols = [(s, sl) for s, sl in present if data[(s, c)]]
    if not cols:
        continue
    d0 = next((d for d, _, _ in data[(cols[0][0], c)] if d), None)
    if d0 is None:
        continue
    what = f"{get(d0, 'pairs.pairs')} pairs"
    if get(d0, "pairs.rate"):
        what += f", {get(d0, 'pairs.rate'):,.0f} msg/s offered"
    print(f"\n### {cl} ({what}, {get(d0, 'pairs.duration_s'):g} s): median (min–max) of {len(data[(cols[0][0], c)])}\n")
    print("| figure | " + " | ".join(sl for _, sl in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, f, fmt in rows:
        vals = [[f(d, m, q) for d, m, q in data[(s, c)] if d] for s, _ in cols]
        if all(v is None for vs in vals for v in vs):
            continue
        print(f"| {label} | " + " | ".join(cell(vs, fmt) for vs in vals) + " |")

print()
for a_s, b_s, what in (("off", "on", "Redis+MariaDB"), ("eoff", "eon", "embedded")):
    for c, cl in CELLS:
        a = [get(d, "pairs.delivered_per_sec") for d, _, _ in data.get((a_s, c), []) if d]
        b = [get(d, "pairs.delivered_per_sec") for d, _, _ in data.get((b_s, c), []) if d]
        if a and b:
            r = statistics.median(b) / statistics.median(a)
            print(f"{what}, {cl}: history on / off = {r:.0%} (median over median; run by run "
                  + ", ".join(f"{y / x:.0%}" for x, y in zip(a, b)) + ")")

busy = [f"{s} {c} run {i} ({m['other_cpu_s']})" for (s, c), rs in data.items()
        for i, (d, m, _) in enumerate(rs, 1) if (fmeta(m, "other_cpu_s") or 0) > 1]
print("\nRuns where other work used more than 1 CPU-s: " + (", ".join(busy) or "none"))
print("Anomalies: " + ("none (every run: 0 lost, duplicated, out of order, wrong sender; "
                         "no failed connect or server error)" if not problems else ""))
for p in problems:
    print("  " + p)
