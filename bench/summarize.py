#!/usr/bin/env python3
"""Summarizes bench/compare.sh output: median (min-max) of each figure per
target, as the Markdown tables of docs/benchmarks.md; with a Centrifugo
target, the ratio of ours to it (embedded : centrifugo, ours :
centrifugo-redis), and the load each run started at and the CPU other work
took over it (the .meta files)."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/chat-bench"
# The targets that have results, in this order.
SCENARIOS = ["idle", "broadcast", "pairs-flat", "pairs-50k", "pairs-20k", "pairs-5k", "offline"]
targets = [t for t in ["baseline", "ours", "embedded", "ours-tls", "centrifugo", "centrifugo-redis"]
           if any(glob.glob(os.path.join(out, f"{t}-{s}-*.json")) for s in SCENARIOS)]


def load(target, scenario):
    res = []
    for f in sorted(glob.glob(os.path.join(out, f"{target}-{scenario}-*.json"))):
        try:
            with open(f) as fh:
                res.append(json.load(fh))
        except (OSError, ValueError):
            pass
    return res


def get(d, path):
    for p in path.split("."):
        if isinstance(d, list):
            d = d[int(p)]
        elif isinstance(d, dict):
            d = d.get(p)
        else:
            return None
        if d is None:
            return None
    return d


def cell(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


rows = [
    ("idle", "connect+init, conns/s", "connect.per_sec", "{:,.0f}"),
    ("idle", "RSS slope, B/conn (first→last step)", None, "{:,.0f}"),
    ("broadcast", "fan-out p50, ms", "broadcast.p50_ms", "{:,.0f}"),
    ("broadcast", "fan-out p99, ms", "broadcast.p99_ms", "{:,.0f}"),
    ("broadcast", "deliveries/s", "broadcast.deliveries_per_sec", "{:,.0f}"),
    ("broadcast", "server CPU-s per 1,000", "cpu.seconds_per_1000_delivered", "{:.4f}"),
    ("pairs-flat", "flat out: delivered msg/s", "pairs.delivered_per_sec", "{:,.0f}"),
    ("pairs-flat", "flat out: p99 ms", "pairs.latency_p99_ms", "{:,.1f}"),
    ("pairs-flat", "flat out: server CPU-s per 1,000", "cpu.seconds_per_1000_delivered", "{:.4f}"),
    ("pairs-50k", "50k/s offered: delivered msg/s", "pairs.delivered_per_sec", "{:,.0f}"),
    ("pairs-50k", "50k/s offered: p50 ms", "pairs.latency_p50_ms", "{:,.1f}"),
    ("pairs-50k", "50k/s offered: p99 ms", "pairs.latency_p99_ms", "{:,.1f}"),
    ("pairs-20k", "20k/s offered: p50 ms", "pairs.latency_p50_ms", "{:,.1f}"),
    ("pairs-20k", "20k/s offered: p99 ms", "pairs.latency_p99_ms", "{:,.1f}"),
    ("pairs-20k", "20k/s offered: delivered msg/s", "pairs.delivered_per_sec", "{:,.0f}"),
    ("pairs-20k", "20k/s offered: server CPU-s per 1,000", "cpu.seconds_per_1000_delivered", "{:.4f}"),
    ("pairs-5k", "5k/s offered: delivered msg/s", "pairs.delivered_per_sec", "{:,.0f}"),
    ("pairs-5k", "5k/s offered: p50 ms", "pairs.latency_p50_ms", "{:,.1f}"),
    ("pairs-5k", "5k/s offered: p99 ms", "pairs.latency_p99_ms", "{:,.1f}"),
    ("pairs-5k", "5k/s offered: server CPU-s per 1,000", "cpu.seconds_per_1000_delivered", "{:.4f}"),
    ("offline", "offline rows written/s", "offline.rows_written_per_sec", "{:,.0f}"),
    ("offline", "offline rows drained/s", "offline.drained_per_sec", "{:,.0f}"),
    ("offline", "offline server CPU-s per 1,000", "cpu.seconds_per_1000_delivered", "{:.4f}"),
]


def slope(d):
    steps = get(d, "idle.steps") or []
    if len(steps) < 2:
        return None
    a, b = steps[0], steps[-1]
    return (b["rss_bytes"] - a["rss_bytes"]) / (b["conns"] - a["conns"])


def values(target, scenario, path):
    ds = load(target, scenario)
    return [v for v in ([slope(d) for d in ds] if path is None else [get(d, path) for d in ds]) if v is not None]


print("| figure | " + " | ".join(targets) + " |")
print("|---|" + "---|" * len(targets))
for scenario, label, path, fmt in rows:
    cells = [cell(values(t, scenario, path), fmt) for t in targets]
    if any(c != "–" for c in cells):  # skip scenarios that were not run
        print(f"| {label} | " + " | ".join(cells) + " |")

# Ours against Centrifugo on the same engine: the ratio of the medians.
pairs = [(a, b) for a, b in [("embedded", "centrifugo"), ("ours", "centrifugo-redis")]
         if a in targets and b in targets]
if pairs:
    print()
    print("| figure | " + " | ".join(f"{a} / {b}" for a, b in pairs) + " |")
    print("|---|" + "---|" * len(pairs))
    for scenario, label, path, fmt in rows:
        cells = []
        for a, b in pairs:
            va, vb = values(a, scenario, path), values(b, scenario, path)
            if va and vb and statistics.median(vb):
                cells.append(f"{statistics.median(va) / statistics.median(vb):.2f}")
            else:
                cells.append("–")
        if any(c != "–" for c in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")

# Under what load each cell ran: the 1-minute load average at each run's start
# and the CPU-seconds other work took over it.
metas = sorted(glob.glob(os.path.join(out, "*.meta")))
if metas:
    print()
    print("| run | load at start | other CPU-s | server CPU-s | Redis+MariaDB CPU-s | chatload CPU-s |")
    print("|---|---|---|---|---|---|")
    for f in metas:
        try:
            with open(f) as fh:
                m = dict(kv.split("=", 1) for kv in fh.read().split() if "=" in kv)
        except OSError:
            continue
        print(f"| {os.path.basename(f)[:-5]} | {m.get('load_start', '–')} | {m.get('other_cpu_s', '–')} | "
              f"{m.get('server_cpu_s', '–')} | {m.get('db_cpu_s', '–')} | {m.get('chatload_cpu_s', '–')} |")

bad = []
for f in glob.glob(os.path.join(out, "*.json")):
    try:
        d = json.load(open(f))
    except ValueError:
        bad.append(f"{os.path.basename(f)}: no result")
        continue
    for k in ("lost", "duplicated", "out_of_order"):
        for sec in ("pairs", "offline"):
            v = get(d, f"{sec}.{k}")
            if v:
                bad.append(f"{os.path.basename(f)}: {sec}.{k} = {v}")
    for k in ("missing", "duplicates"):
        v = get(d, f"broadcast.{k}")
        if v:
            bad.append(f"{os.path.basename(f)}: broadcast.{k} = {v}")
    if get(d, "connect.failed"):
        bad.append(f"{os.path.basename(f)}: {get(d, 'connect.failed')} connects failed")
print()
print("Anomalies: " + ("none" if not bad else "; ".join(sorted(bad))))
