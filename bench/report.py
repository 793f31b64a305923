#!/usr/bin/env python3
"""Turns bench/run.sh's raw records into the printed table and bench/results/latest.json.

Usage: report.py META_JSON RECORDS_JSONL OUT_JSON

Each record is one line of JSON: {server, scenario, status (ok|skipped|failed), reason,
wrk (the numbers bench/wrk.lua's done() printed, or null), rss_kb, hwm_kb}. The pseudo
scenarios "idle" (after start-up) and "end" (after every scenario) carry only memory.
"""

import json
import sys

SCENARIOS = [
    "kv-read",
    "kv-write",
    "transit-encrypt",
    "transit-decrypt",
    "transit-encrypt-batch100",
    "transit-decrypt-batch100",
]
# Requests/s targets the appliance is held to: (min ratio to OpenBao, min fraction of ceiling).
RPS_TARGETS = {
    "kv-read": (8.0, 0.5),
    "kv-write": (2.0, None),
    "transit-encrypt": (8.0, 0.5),
    "transit-decrypt": (8.0, 0.5),
}


def side(rec):
    """One server's figures for one scenario, from its record."""
    if rec is None:
        return {"status": "not run"}
    out = {"status": rec["status"], "rss_kb": rec.get("rss_kb"), "hwm_kb": rec.get("hwm_kb")}
    if rec.get("reason"):
        out["reason"] = rec["reason"]
    w = rec.get("wrk")
    if rec["status"] != "ok" or not w:
        return out
    secs = w["duration_us"] / 1e6
    errors = w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
    ok = max(w["requests"] - w["non2xx"], 0)
    out.update(
        {
            "requests": w["requests"],
            "seconds": round(secs, 3),
            "rps": round(w["requests"] / secs, 1) if secs else 0.0,
            # What the tables and ratios use: only 2xx answers count.
            "ok_rps": round(ok / secs, 1) if secs else 0.0,
            "non2xx": w["non2xx"],
            "socket_errors": errors,
            "latency_ms": {
                "mean": round(w["mean_us"] / 1000, 3),
                "p50": round(w["p50_us"] / 1000, 3),
                "p90": round(w["p90_us"] / 1000, 3),
                "p99": round(w["p99_us"] / 1000, 3),
                "max": round(w["max_us"] / 1000, 3),
            },
            "bytes_read": w["bytes"],
        }
    )
    return out


def measured(s):
    return s.get("status") == "ok" and "ok_rps" in s


def clean(s):
    return measured(s) and s["non2xx"] == 0 and s["socket_errors"] == 0


def div(a, b):
    return round(a / b, 2) if a is not None and b else None


def fmt_rps(s):
    if not measured(s):
        return s.get("status", "-")
    return f"{s['ok_rps']:,.0f}"


def fmt_p99(s):
    return f"{s['latency_ms']['p99']:.2f}ms" if measured(s) else "-"


def fmt_err(s):
    if not measured(s):
        return "-"
    n = s["non2xx"] + s["socket_errors"]
    return "0" if n == 0 else f"!{n}"


def fmt_mib(kb):
    return f"{kb / 1024:.1f}M" if kb else "-"


def fmt_x(x):
    return f"{x:.2f}x" if x is not None else "-"


def main():
    meta_path, records_path, out_path = sys.argv[1:4]
    with open(meta_path) as f:
        meta = json.load(f)
    recs = {}
    with open(records_path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                # A later record (a skip after a precheck, a measurement) wins.
                key = (r["server"], r["scenario"])
                if key not in recs or recs[key]["status"] != "ok" or r["status"] == "ok":
                    recs[key] = r

    ceiling = side(recs.get(("bare", "bare")))
    ceiling_rps = ceiling.get("ok_rps") if measured(ceiling) else None
    rows = []
    for sc in SCENARIOS:
        i = side(recs.get(("ironseal", sc)))
        o = side(recs.get(("openbao", sc)))
        if i["status"] == "not run" and o["status"] == "not run":
            continue
        row = {"scenario": sc, "ironseal": i, "openbao": o}
        if measured(i) and measured(o):
            row["ratio"] = div(i["ok_rps"], o["ok_rps"])
            row["p99_ratio"] = div(i["latency_ms"]["p99"], o["latency_ms"]["p99"])
        if measured(i) and ceiling_rps:
            row["fraction_of_ceiling"] = div(i["ok_rps"], ceiling_rps)
        if measured(i) and measured(o) and i.get("rss_kb") and o.get("rss_kb"):
            row["rss_ratio"] = div(i["rss_kb"], o["rss_kb"])
        rows.append(row)

    memory = {}
    for server in ("ironseal", "openbao"):
        idle = recs.get((server, "idle"), {})
        end = recs.get((server, "end"), {})
        memory[server] = {
            "idle_rss_kb": idle.get("rss_kb"),
            "end_rss_kb": end.get("rss_kb"),
            "peak_rss_kb": end.get("hwm_kb"),
        }
    memory["bare"] = {"end_rss_kb": ceiling.get("rss_kb"), "peak_rss_kb": ceiling.get("hwm_kb")}

    # ---- targets ------------------------------------------------------------------
    targets = []

    def target(name, want, value, met, note=""):
        targets.append({"target": name, "want": want, "value": value, "met": met, "note": note})

    for row in rows:
        sc, i, o = row["scenario"], row["ironseal"], row["openbao"]
        dirty = [n for n, s in (("ironseal", i), ("openbao", o)) if measured(s) and not clean(s)]
        note = ("errors during the run on " + ", ".join(dirty)) if dirty else ""
        if sc in RPS_TARGETS:
            min_ratio, min_frac = RPS_TARGETS[sc]
            r = row.get("ratio")
            target(f"{sc} req/s vs OpenBao", f">= {min_ratio:g}x", r,
                   None if r is None else (r >= min_ratio and not dirty), note)
            if min_frac is not None:
                fr = row.get("fraction_of_ceiling")
                target(f"{sc} req/s vs bare ceiling", f">= {min_frac:g}", fr,
                       None if fr is None else (fr >= min_frac and not dirty), note)
        pr = row.get("p99_ratio")
        target(f"{sc} p99 vs OpenBao", "<= 1.00x", pr, None if pr is None else pr <= 1.0, note)
        rr = row.get("rss_ratio")
        target(f"{sc} RSS vs OpenBao (after the run)", "<= 0.33", rr,
               None if rr is None else rr <= 1 / 3)
    pi, po = memory["ironseal"]["peak_rss_kb"], memory["openbao"]["peak_rss_kb"]
    pk = div(pi, po)
    target("peak RSS (VmHWM) vs OpenBao", "<= 0.33", pk, None if pk is None else pk <= 1 / 3)

    result = {"meta": meta, "ceiling": ceiling, "scenarios": rows, "memory": memory,
              "targets": targets}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    # ---- the table ----------------------------------------------------------------
    print()
    print(f"Ironseal {meta.get('ironseal_version', '')} ({meta.get('commit')}) vs "
          f"{meta.get('openbao_version', 'OpenBao')}")
    print(f"wrk: {meta['connections']} connections, {meta['threads']} threads, "
          f"{meta['duration']} per run after a {meta['warmup']} warm-up; {meta['cores']} cores; "
          f"load average {meta['load_average_before']} before, {meta['load_average_after']} after; "
          f"ironseal data on {meta.get('ironseal_data_fs')}")
    print("req/s counts 2xx answers only; err = non-2xx + socket errors + timeouts "
          "(! = the run had some); RSS = VmRSS after the scenario's run")
    print()
    head = ["scenario", "ironseal req/s", "p99", "err", "openbao req/s", "p99", "err",
            "ratio", "of ceiling", "RSS ironseal", "RSS openbao"]
    table = [head]
    if measured(ceiling):
        table.append([f"bare ceiling ({meta['kv_read_response_bytes']} B body)",
                      fmt_rps(ceiling), fmt_p99(ceiling), fmt_err(ceiling), "", "", "",
                      "", "1.00", fmt_mib(ceiling.get("rss_kb")), ""])
    else:
        table.append(["bare ceiling", ceiling.get("status", "-"), "", "", "", "", "", "",
                      "", "", ""])
    for row in rows:
        i, o = row["ironseal"], row["openbao"]
        fr = row.get("fraction_of_ceiling")
        table.append([row["scenario"], fmt_rps(i), fmt_p99(i), fmt_err(i),
                      fmt_rps(o), fmt_p99(o), fmt_err(o), fmt_x(row.get("ratio")),
                      f"{fr:.2f}" if fr is not None else "-",
                      fmt_mib(i.get("rss_kb")), fmt_mib(o.get("rss_kb"))])
    widths = [max(len(r[c]) for r in table) for c in range(len(head))]
    for n, r in enumerate(table):
        cells = [r[0].ljust(widths[0])] + [r[c].rjust(widths[c]) for c in range(1, len(r))]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    mi, mo = memory["ironseal"], memory["openbao"]
    print(f"memory: ironseal idle {fmt_mib(mi['idle_rss_kb'])}, end {fmt_mib(mi['end_rss_kb'])}, "
          f"peak {fmt_mib(mi['peak_rss_kb'])}; openbao idle {fmt_mib(mo['idle_rss_kb'])}, "
          f"end {fmt_mib(mo['end_rss_kb'])}, peak {fmt_mib(mo['peak_rss_kb'])}; "
          f"peak ratio {fmt_x(pk)}")
    for row in rows:
        for server in ("ironseal", "openbao"):
            s = row[server]
            if s["status"] in ("skipped", "failed"):
                print(f"{row['scenario']}: {s['status']} on {server}: {s.get('reason', '')}")
            elif measured(s) and not clean(s):
                print(f"{row['scenario']}: {server} had {s['non2xx']} non-2xx responses and "
                      f"{s['socket_errors']} socket errors/timeouts out of {s['requests']} requests")
    if measured(ceiling) and not clean(ceiling):
        print(f"bare ceiling: {ceiling['non2xx']} non-2xx, {ceiling['socket_errors']} socket errors")
    print()
    print("targets:")
    for t in targets:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        extra = f"  ({t['note']})" if t["note"] else ""
        print(f"  {mark} {t['target']}: {value} (want {t['want']}){extra}")


if __name__ == "__main__":
    main()
