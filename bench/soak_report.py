#!/usr/bin/env python3
"""Prints bench/soak.sh's figures and verdict, and writes them to RUN/soak.json.

Usage: soak_report.py RUN_DIR

RUN_DIR holds meta.json, rss.txt ("<ms since the load began> <VmRSS kB>" per line) and
wrk-<slice>-<scenario>.txt (wrk's output with bench/wrk.lua's BENCH line).

Verdict (exit 1 if either fails):
- errors: no non-2xx answer, socket error or timeout in any slice;
- memory flat: of the RSS samples after the warm-up slices, the mean of the last third
  is at most max(5%, 4 MiB) above the mean of the first third.
p99 stability is printed (each slice's p99 against the median of the slices after the
warm-up) but not judged: on a shared machine it moves with the other work.
"""

import json
import os
import re
import statistics
import sys

SCENARIOS = ["kv-read", "kv-write", "transit-encrypt"]
GROWTH_FRACTION = 0.05
GROWTH_FLOOR_KB = 4 * 1024


def bench_line(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("BENCH "):
                    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    except FileNotFoundError:
        pass
    return None


def main(run):
    with open(os.path.join(run, "meta.json")) as f:
        meta = json.load(f)
    slice_s = meta["slice_seconds"]
    warm = meta["warmup_slices"]
    slices = []
    errors = 0
    for n in range(1, meta["slices"] + 1):
        row = {"slice": n}
        for s in SCENARIOS:
            b = bench_line(os.path.join(run, f"wrk-{n}-{s}.txt"))
            if b is None:
                row[s] = None
                errors += 1
                continue
            bad = b["non2xx"] + b["connect_errors"] + b["read_errors"] + b["write_errors"] + b["timeouts"]
            errors += int(bad)
            secs = b["duration_us"] / 1e6
            row[s] = {
                "rps": round(b["requests"] / secs, 1) if secs else 0.0,
                "errors": int(bad),
                "p50_ms": round(b["p50_us"] / 1000, 2),
                "p99_ms": round(b["p99_us"] / 1000, 2),
            }
        slices.append(row)

    samples = []
    with open(os.path.join(run, "rss.txt")) as f:
        for line in f:
            m = re.match(r"^(\d+) (\d+)$", line.strip())
            if m:
                samples.append((int(m.group(1)) / 1000, int(m.group(2))))
    for row in slices:
        inside = [kb for t, kb in samples if t <= row["slice"] * slice_s]
        row["rss_kb"] = inside[-1] if inside else None

    after = [kb for t, kb in samples if t >= warm * slice_s]
    third = len(after) // 3
    memory = {"samples": len(samples), "judged_samples": len(after)}
    if third >= 2:
        first = statistics.mean(after[:third])
        last = statistics.mean(after[-third:])
        allowed = max(first * GROWTH_FRACTION, GROWTH_FLOOR_KB)
        memory.update(
            {
                "first_third_mean_kb": round(first),
                "last_third_mean_kb": round(last),
                "growth_kb": round(last - first),
                "allowed_kb": round(allowed),
                "flat": last - first <= allowed,
            }
        )
    else:
        memory["flat"] = None

    print(
        f"soak {meta['date']}: {meta['binary']} ({meta['version']}), {meta['slices']} x {slice_s} s,"
        f" {meta['cores']} cores ({meta['cpu']}),"
        f" load before {meta.get('load_average_before', '?')}, after {meta['load_average_after']}"
    )
    head = f"{'slice':>5} " + " ".join(f"{s + ' rps/err/p50/p99 ms':>36}" for s in SCENARIOS) + f" {'RSS MiB':>8}"
    print(head)
    for row in slices:
        cells = []
        for s in SCENARIOS:
            c = row[s]
            cells.append(
                f"{'no result':>36}" if c is None
                else f"{c['rps']:>12,.0f} {c['errors']:>5} {c['p50_ms']:>7.2f} {c['p99_ms']:>8.2f}"
            )
        rss = f"{row['rss_kb'] / 1024:>8.1f}" if row["rss_kb"] else f"{'?':>8}"
        mark = " (warm-up)" if row["slice"] <= warm else ""
        print(f"{row['slice']:>5} " + " ".join(f"{c:>36}" for c in cells) + f" {rss}{mark}")

    p99 = {}
    for s in SCENARIOS:
        values = [row[s]["p99_ms"] for row in slices[warm:] if row[s]]
        if values:
            median = statistics.median(values)
            p99[s] = {"median_ms": median, "max_ms": max(values),
                      "max_over_median": round(max(values) / median, 2) if median else None}
    for s, v in p99.items():
        print(f"p99 {s}: median {v['median_ms']} ms, worst slice {v['max_ms']} ms ({v['max_over_median']}x)")
    if memory["flat"] is None:
        print("memory: too few samples after the warm-up to judge (lengthen DURATION)")
    else:
        print(
            f"memory: mean RSS {memory['first_third_mean_kb'] / 1024:.1f} MiB -> "
            f"{memory['last_third_mean_kb'] / 1024:.1f} MiB after the warm-up "
            f"(growth {memory['growth_kb']} kB, allowed {memory['allowed_kb']} kB): "
            + ("flat" if memory["flat"] else "GROWING")
        )
    print(f"errors: {errors}")
    with open(os.path.join(run, "soak.json"), "w") as f:
        json.dump({"meta": meta, "slices": slices, "memory": memory, "p99": p99, "errors": errors}, f, indent=1)
    return 0 if errors == 0 and memory["flat"] is not False else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
