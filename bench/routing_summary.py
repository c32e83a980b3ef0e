#!/usr/bin/env python3
"""Summarizes bench/routing.sh output: median (min-max) of each figure per
setup and cell, the ratio of one node with the cluster on to one node with it
off, and every run's loss/duplicate/order counts."""
import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/chat-routing"
SETUPS = [("off", "1 node, cluster off"), ("on", "1 node, cluster on"), ("three", "3 nodes, cluster on")]
CELLS = [("w1", "flat out, window 1"), ("w32", "flat out, window 32"), ("fixed", "fixed rate")]


def runs(setup, cell):
    """The runs of one cell, newest attempt of each run number: (json, meta)."""
    res = {}
    for f in sorted(glob.glob(os.path.join(out, f"{setup}-{cell}-*.json"))):
        m = re.search(r"-(\d+)\.json$", f)
        if not m:
            continue
        meta = {}
        try:
            with open(f[:-5] + ".meta") as fh:
                meta = dict(kv.split("=", 1) for kv in fh.read().split())
        except OSError:
            pass
        try:
            with open(f) as fh:
                res[int(m.group(1))] = (json.load(fh), meta)
        except (OSError, ValueError):
            res[int(m.group(1))] = (None, meta)
    return [res[k] for k in sorted(res)]


def get(d, path):
    for p in path.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def fnv32a(s):
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def cross_share(d):
    """Share of the pairs whose sender and receiver picked different nodes."""
    addrs = d.get("target", "").rsplit("/", 1)[0].split(",")
    n, prefix = get(d, "pairs.pairs"), d.get("prefix", "")
    if len(addrs) < 2 or not n:
        return 0.0
    k = len(addrs)
    cross = sum(fnv32a(f"{prefix}s{i}") % k != fnv32a(f"{prefix}r{i}") % k for i in range(n))
    return cross / n


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


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


def per1000_redis(d, meta):
    try:
        return float(meta["redis_cpu_s"]) / get(d, "pairs.delivered") * 1000
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


rows = [
    ("delivered msg/s", lambda d, m: get(d, "pairs.delivered_per_sec"), "{:,.0f}"),
    ("latency p50, ms", lambda d, m: get(d, "pairs.latency_p50_ms"), "{:,.2f}"),
    ("latency p99, ms", lambda d, m: get(d, "pairs.latency_p99_ms"), "{:,.1f}"),
    ("server CPU-s per 1,000 delivered", lambda d, m: get(d, "cpu.seconds_per_1000_delivered"), "{:.4f}"),
    ("Redis CPU-s per 1,000 (whole run)", per1000_redis, "{:.4f}"),
    ("client CPU-s", lambda d, m: get(d, "cpu.client_seconds"), "{:.2f}"),
    ("late sends", lambda d, m: get(d, "pairs.late_sends"), "{:,.0f}"),
    ("load average at start", lambda d, m: fmeta(m, "load_start"), "{:.2f}"),
    ("other work over the run, CPU-s", lambda d, m: fmeta(m, "other_cpu_s"), "{:.2f}"),
    ("stolen by the hypervisor, CPU-s", lambda d, m: fmeta(m, "steal_s"), "{:.2f}"),
]

present = [(s, sl) for s, sl in SETUPS if glob.glob(os.path.join(out, f"{s}-*.json"))]
data = {(s, c): runs(s, c) for s, _ in present for c, _ in CELLS}
problems = []
for (s, c), rs in data.items():
    for i, (d, m) in enumerate(rs, 1):
        if d is None:
            problems.append(f"{s} {c} run {i}: no result (chatload exit {m.get('chatload_rc', '?')})")
            continue
        bad = {k: get(d, "pairs." + k) for k in ("lost", "duplicated", "out_of_order", "wrong_from")}
        bad["connect failed"] = get(d, "connect.failed")
        bad["server errors"] = sum((get(d, "client.errors") or {}).values())
        bad["closed by server"] = get(d, "client.closed")
        bad["unexpected"] = get(d, "client.unexpected")
        bad = {k: v for k, v in bad.items() if v}
        if bad or m.get("chatload_rc", "0") != "0":
            problems.append(f"{s} {c} run {i}: exit {m.get('chatload_rc', '?')} {bad}")

for c, cl in CELLS:
    cols = [(s, sl) for s, sl in present if data[(s, c)]]
    if not cols:
        continue
    d0 = next(d for d, _ in data[(cols[0][0], c)] if d)
    what = f"{get(d0, 'pairs.pairs')} pairs"
    if c == "fixed":
        what += f", {get(d0, 'pairs.rate'):,.0f} msg/s offered"
    print(f"\n### {cl} ({what}, {get(d0, 'pairs.duration_s'):g} s): median (min–max) of {len(data[(cols[0][0], c)])}\n")
    print("| figure | " + " | ".join(sl for _, sl in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, f, fmt in rows:
        print(f"| {label} | " + " | ".join(cell([f(d, m) for d, m in data[(s, c)] if d], fmt) for s, _ in cols) + " |")
    three = [cross_share(d) for d, _ in data.get(("three", c), []) if d]
    if three:
        print(f"\n3 nodes: {min(three):.1%}–{max(three):.1%} of the pairs cross nodes.")

print()
for c, cl in CELLS[:2]:  # flat out: the fixed rate is delivered by all three
    off, on = data.get(("off", c), []), data.get(("on", c), [])
    a = med([get(d, "pairs.delivered_per_sec") for d, _ in off if d])
    b = med([get(d, "pairs.delivered_per_sec") for d, _ in on if d])
    if a and b:
        pairwise = [get(y, "pairs.delivered_per_sec") / get(x, "pairs.delivered_per_sec")
                    for (x, _), (y, _) in zip(off, on) if x and y]
        print(f"{cl}: cluster on / off = {b / a:.0%} (median over median; run by run "
              + ", ".join(f"{r:.0%}" for r in pairwise) + "); target ≥ 80%: "
              + ("met" if b / a >= 0.8 else "NOT met"))

# Three nodes at a fixed rate: each pair sends the same number of messages, so
# the share of messages that cross nodes is the share of pairs; the one-node
# cluster-on figure at the same rate stands for a local message.
loc = med([get(d, "cpu.seconds_per_1000_delivered") for d, _ in data.get(("on", "fixed"), []) if d])
mix = [(get(d, "cpu.seconds_per_1000_delivered"), cross_share(d)) for d, _ in data.get(("three", "fixed"), []) if d]
if loc and mix:
    est = [(c - (1 - f) * loc) / f for c, f in mix if c is not None and f]
    print(f"fixed rate: server CPU-s per 1,000 on 3 nodes {med([c for c, _ in mix]):.4f} (all nodes, "
          f"{med([f for _, f in mix]):.0%} crossing), one node cluster on {loc:.4f}; "
          f"so a crossing message ≈ {med(est):.4f} s per 1,000 (estimate)")

busy = [f"{s} {c} run {i} ({m['other_cpu_s']})" for (s, c), rs in data.items()
        for i, (d, m) in enumerate(rs, 1) if (fmeta(m, "other_cpu_s") or 0) > 1]
print("\nRuns where other work used more than 1 CPU-s: " + (", ".join(busy) or "none"))
print("Anomalies: " + ("none (every run: 0 lost, duplicated, out of order, wrong sender; "
                         "no failed connect, server error or close)" if not problems else ""))
for p in problems:
    print("  " + p)
