#!/usr/bin/python3
"""Turn the raw output of bench/run.sh into bench.md, bench.csv and chart data.

usage: report.py RAW_DIR RESULTS_DIR

RAW_DIR holds meta.tsv (key<TAB>value), runs.tsv (one line per wrk run),
rss.tsv (VmHWM per profile and target) and the wrk outputs. Per cell
(row x target) the reported requests/s is the median over the runs, and p50/p99
come from the median run itself (statistics.median_low, so it is a real run).
Ratios are against the nginx proxy in the same row.

Proxy CPU: runs.tsv has, per measured run of a proxy, cpu_ticks (utime+stime
of the serving process over the run, in clock ticks; meta.tsv has clk_tck),
wall_s (wall time between the two readings) and requests (wrk's count). Per
run, CPU us/req = cpu_ticks / clk_tck / requests * 1e6 and CPU util =
cpu_ticks / clk_tck / wall_s; a cell shows the median of each over its runs
(statistics.median). Older raw directories without these columns still work
(the columns are then empty). Stdlib only.

TLS rows: runs.tsv also has, per https run, the handshakes wrk completed
(hs_full, hs_resumed, hs_other_cipher, counted by bench/wrk_tls_shim.c), what
the first one negotiated (tls), the connections the proxy accepted and the TLS
handshakes it counted over the run (srv_conns, srv_tls; empty where the proxy
has no such counter) and, for a failed new-connection check, why (note).
bench.md gets a second table with their sums per cell; for the profiles in
meta.tsv's newconn_profiles (one request per connection) requests/s is new
TLS connections/s.
"""
import csv
import math
import os
import re
import statistics
import sys

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
TARGET_LABEL = {"direct": "upstream direct", "nginx": "nginx", "haproxy": "HAProxy",
                "portcullis": "portcullis"}


def parse_wrk(text):
    """requests/s, p50/p99 in ms, request count and error count from `wrk --latency`."""
    out = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not m:
        return None
    out["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        out[f"p{pct}"] = float(m.group(1)) * UNIT_MS[m.group(2)] if m else math.nan
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    out["errors"] = errors
    return out


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fmt_ms(v):
    if v is None or math.isnan(v):
        return "–"
    if v < 1:
        return f"{v:.3f} ms"
    if v < 10:
        return f"{v:.2f} ms"
    return f"{v:.1f} ms"


def fmt_ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def fmt_rss(kb):
    return "–" if kb is None else f"{kb / 1024:.1f} MiB"


def fmt_us(v):
    if v is None:
        return "–"
    return f"{v:.2f} µs" if v < 10 else f"{v:.1f} µs" if v < 1000 else f"{v:,.0f} µs"


def fmt_pct(v):
    return "–" if v is None else f"{v * 100:.0f} %"


def run_cpu(r, res, clk_tck):
    """(CPU us per request, CPU util as a fraction) of one run, or (None, None)."""
    ticks, wall = r.get("cpu_ticks") or "", r.get("wall_s") or ""
    if not ticks or not wall or clk_tck <= 0:
        return None, None
    cpu_s = int(ticks) / clk_tck
    reqs = int(r.get("requests") or 0) or res["requests"]
    wall = float(wall)
    return (cpu_s / reqs * 1e6 if reqs else None), (cpu_s / wall if wall > 0 else None)


TLS_SUMS = ("requests", "hs_full", "hs_resumed", "hs_other_cipher", "srv_conns", "srv_tls")


def add_tls(t, r):
    """Sum one run's handshake and connection counts into t (None = unknown)."""
    if not r.get("tls") and not r.get("hs_full"):
        return
    for k in TLS_SUMS:
        v = r.get(k) or ""
        if k not in t:
            t[k] = 0
        t[k] = None if t[k] is None or not v.isdigit() else t[k] + int(v)
    t.setdefault("negotiated", [])
    if r.get("tls") and r["tls"] not in t["negotiated"]:
        t["negotiated"].append(r["tls"])


def summarize(raw, meta, runs, rss):
    """One dict per (row, target), rows and targets in the order of meta.tsv."""
    clk_tck = int(meta.get("clk_tck") or 0)
    rss_kb = {(r["profile"], r["target"]): int(r["vmhwm_kb"]) for r in rss if r["vmhwm_kb"]}
    cells = {}
    for r in runs:
        key = (r["row"], r["target"])
        if key not in cells:
            cells[key] = {"row": r["row"], "path": r["path"], "profile": r["profile"],
                          "target": r["target"], "runs": [], "status": "ok", "errors": 0,
                          "tls": {}, "notes": []}
        c = cells[key]
        if r["status"] == "na":
            c["status"] = "na"
            continue
        add_tls(c["tls"], r)
        if r.get("note"):
            c["notes"].append(f"run {r['run']}: {r['note']}")
        res = None
        if r["status"] == "ok" and r["file"]:
            with open(os.path.join(raw, r["file"])) as f:
                res = parse_wrk(f.read())
        if res is None or res["requests"] == 0:
            c["status"] = "fail"
            continue
        res["cpu_us"], res["cpu_util"] = run_cpu(r, res, clk_tck)
        c["runs"].append(res)
        c["errors"] += res["errors"]

    for c in cells.values():
        c["rss_kb"] = rss_kb.get((c["profile"], c["target"]))
        if c["status"] != "ok" or not c["runs"]:
            c.update(rps=None, p50=None, p99=None, rps_min=None, rps_max=None,
                     cpu_us=None, cpu_util=None)
            if c["status"] == "ok":
                c["status"] = "fail"
            continue
        rps = [x["rps"] for x in c["runs"]]
        med = statistics.median_low(rps)
        run = next(x for x in c["runs"] if x["rps"] == med)
        c.update(rps=med, p50=run["p50"], p99=run["p99"], rps_min=min(rps), rps_max=max(rps))
        for key in ("cpu_us", "cpu_util"):
            vals = [x[key] for x in c["runs"] if x[key] is not None]
            c[key] = statistics.median(vals) if vals else None

    for c in cells.values():
        ref = cells.get((c["row"], "nginx"))
        ok = ref and ref["rps"] and c["rps"]
        c["rps_vs_nginx"] = c["rps"] / ref["rps"] if ok else None
        c["p99_vs_nginx"] = (c["p99"] / ref["p99"]
                             if ok and ref["p99"] and not math.isnan(c["p99"]) else None)
        c["cpu_vs_nginx"] = (c["cpu_us"] / ref["cpu_us"]
                             if ref and ref.get("cpu_us") and c["cpu_us"] is not None else None)
    rows, targets = meta["rows"].split(), meta["targets"].split()
    return sorted(cells.values(), key=lambda c: (rows.index(c["row"]), targets.index(c["target"])))


def write_csv(path, cells):
    cols = ["row", "profile", "path", "target", "status", "runs_ok", "rps_median",
            "rps_min", "rps_max", "p50_ms", "p99_ms", "peak_rss_kb", "rps_vs_nginx",
            "p99_vs_nginx", "errors", "cpu_us_per_req", "cpu_vs_nginx", "cpu_util_pct",
            "tls_negotiated", "tls_requests", "tls_handshakes_full", "tls_handshakes_resumed",
            "tls_other_cipher", "proxy_conns_accepted", "proxy_tls_handshakes", "note"]

    def num(v, nd=3):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, nd)

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for c in cells:
            w.writerow([c["row"], c["profile"], c["path"], c["target"], c["status"],
                        len(c["runs"]), num(c["rps"], 2), num(c["rps_min"], 2),
                        num(c["rps_max"], 2), num(c["p50"]), num(c["p99"]),
                        c["rss_kb"] if c["rss_kb"] is not None else "",
                        num(c["rps_vs_nginx"]), num(c["p99_vs_nginx"]), c["errors"],
                        num(c["cpu_us"]), num(c["cpu_vs_nginx"]),
                        num(None if c["cpu_util"] is None else c["cpu_util"] * 100, 1),
                        " | ".join(c["tls"].get("negotiated", []))]
                       + [num(c["tls"].get(k)) for k in TLS_SUMS]
                       + ["; ".join(c["notes"])])


def fmt_count(v):
    return "–" if v is None else f"{v:,}"


def write_md(path, meta, cells):
    targets = meta["targets"].split()
    newconn = set(meta.get("newconn_profiles", "").split())
    L = []
    L.append("# portcullis benchmark\n")
    L.append(f"- date: {meta['date']}")
    L.append(f"- machine: {meta['nproc']} CPUs, {meta['cpu']}, {meta['host']}; "
             f"load average {meta['loadavg_start']} (start) / {meta.get('loadavg_end', '?')} (end)")
    L.append(f"- pinning: {meta['pinning']}")
    L.append(f"- load: wrk {meta['wrk_args']}; {meta['warmup']} s warm-up before every run; "
             f"{meta['runs']} run(s) of {meta['duration']} s per cell, interleaved across targets")
    L.append("- versions: " + "; ".join(
        f"{TARGET_LABEL.get(t, t)}: {meta.get('version_' + t, '?')}" for t in targets if t != "direct")
        + f"; wrk: {meta['wrk']}")
    L.append("- every proxy runs ONE worker process/thread; all of them and the direct row "
             "hit the same upstream nginx (1 worker, sendfile, keep-alive)")
    L.append("- requests/s: median of the runs (range: min–max); p50/p99: of the median run; "
             "peak RSS: VmHWM of the serving process; ratios: against the nginx proxy in the same row")
    L.append("- proxy CPU µs/req: utime+stime of the serving process over the measured run "
             "/ requests, median of the runs; it does not depend on who saturates first, so it "
             "compares the proxies even where requests/s cannot (small bodies: wrk + upstream on "
             f"CPU 1 are the bottleneck); CPU/req vs nginx: lower is better; proxy CPU util: CPU "
             f"time / wall time of the run (near 100 % = the proxy was the bottleneck); "
             f"{meta.get('clk_tck', '?')} ticks/s, so ±2 ticks of error per run")
    if meta.get("tls_settings"):
        L.append(f"- TLS rows ({meta.get('openssl', 'OpenSSL ?')}): the proxies terminate TLS "
                 f"and talk plain HTTP to the upstream (direct: n/a); {meta['tls_settings']}")
    if newconn:
        L.append(f"- new-connection rows (profiles {', '.join(sorted(newconn))}): wrk sends "
                 "`Connection: close`, so every request is on a new connection with a full TLS "
                 "handshake (wrk's session resumption disabled by bench/wrk_tls_shim.c): "
                 "**requests/s = new TLS connections/s**, CPU µs/req = CPU per connection; "
                 "checked per run, see the TLS table below")
    L.append("- shared, noisy 2-core machine: compare ratios within this run, not absolute "
             "numbers across runs\n")
    L.append("| row | target | requests/s | range | p50 | p99 | peak RSS | req/s vs nginx | p99 vs nginx | errors "
             "| proxy CPU µs/req | CPU/req vs nginx | proxy CPU util |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cells:
        name = TARGET_LABEL.get(c["target"], c["target"])
        if c["status"] != "ok":
            word = "n/a" if c["status"] == "na" else "**FAIL**"
            if c["notes"]:
                word += " (" + "; ".join(c["notes"]).replace("|", "/") + ")"
            L.append(f"| {c['row']} | {name} | {word} | | | | {fmt_rss(c['rss_kb'])} | | | | | | |")
            continue
        L.append(f"| {c['row']} | {name} | {c['rps']:,.0f} | {c['rps_min']:,.0f}–{c['rps_max']:,.0f} "
                 f"| {fmt_ms(c['p50'])} | {fmt_ms(c['p99'])} | {fmt_rss(c['rss_kb'])} "
                 f"| {fmt_ratio(c['rps_vs_nginx'])} | {fmt_ratio(c['p99_vs_nginx'])} | {c['errors']} "
                 f"| {fmt_us(c['cpu_us'])} | {fmt_ratio(c['cpu_vs_nginx'])} | {fmt_pct(c['cpu_util'])} |")
    L.append("")
    seen = {}
    for c in cells:
        seen.setdefault(c["row"], f"{c['row']} = GET {c['path']} (profile {c['profile']})")
    L.append("Rows: " + "; ".join(seen.values()) + ".")
    L.append("")
    tls_cells = [c for c in cells if c["tls"]]
    if tls_cells:
        L.append("TLS handshakes and connections, summed over the measured runs of each cell. "
                 "Client side (bench/wrk_tls_shim.c in wrk): full and resumed handshakes, and "
                 "what the first one negotiated (\"other\": later handshakes with another "
                 "cipher). Proxy side: connections accepted (portcullis "
                 "`portcullis_connections_accepted_total`, nginx stub_status `accepts`, HAProxy "
                 "`CumConns`) and TLS handshakes (portcullis "
                 "`portcullis_tls_handshakes_total{result=\"ok\"}`, HAProxy `CumSslConns`; nginx "
                 "has no such counter) over the same runs. Keep-alive rows: one handshake per "
                 "wrk connection per run. New-connection rows: a run fails unless resumed = 0 "
                 "and requests ≤ full handshakes and requests ≤ accepted, each at most "
                 "requests + connections + socket errors + 4.\n")
        L.append("| row | target | negotiated | requests | full handshakes | resumed | other "
                 "| proxy: accepted | proxy: TLS handshakes | check |")
        L.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for c in tls_cells:
            t = c["tls"]
            check = "; ".join(c["notes"]).replace("|", "/") if c["notes"] else (
                "ok" if c["profile"] in newconn and c["status"] == "ok" else
                "**FAIL**" if c["status"] == "fail" else "")
            L.append(f"| {c['row']} | {TARGET_LABEL.get(c['target'], c['target'])} "
                     f"| {', '.join(t.get('negotiated', [])) or '–'} | {fmt_count(t.get('requests'))} "
                     f"| {fmt_count(t.get('hs_full'))} | {fmt_count(t.get('hs_resumed'))} "
                     f"| {fmt_count(t.get('hs_other_cipher'))} | {fmt_count(t.get('srv_conns'))} "
                     f"| {fmt_count(t.get('srv_tls'))} | {check} |")
        L.append("")
    L.append("![requests/s and p99 per row and target](bench.png)")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def write_chart_data(raw, meta, cells):
    """rps.dat / p99.dat: one line per row, one column per target (NaN = no bar)."""
    targets = meta["targets"].split()
    rows = []
    for c in cells:
        if c["row"] not in rows:
            rows.append(c["row"])
    by = {(c["row"], c["target"]): c for c in cells}
    for key, fname in (("rps", "rps.dat"), ("p99", "p99.dat")):
        with open(os.path.join(raw, fname), "w") as f:
            f.write("row " + " ".join(f'"{TARGET_LABEL.get(t, t)}"' for t in targets) + "\n")
            for r in rows:
                vals = []
                for t in targets:
                    v = by.get((r, t), {}).get(key)
                    vals.append("NaN" if v is None or math.isnan(v) else f"{v:.6g}")
                f.write(f'"{r}" ' + " ".join(vals) + "\n")
    with open(os.path.join(raw, "chart.vars"), "w") as f:
        f.write(f"ntargets = {len(targets)}\nnrows = {len(rows)}\n")
        # y ranges (log scale): bars start at the bottom, so it must be below every value
        for key in ("rps", "p99"):
            vals = [c[key] for c in cells if c.get(key) is not None and not math.isnan(c[key])] or [1]
            lo = 10 ** math.floor(math.log10(min(vals) / 2))
            hi = 10 ** math.ceil(math.log10(max(vals) * 3))
            f.write(f"{key}_lo = {lo:g}\n{key}_hi = {hi:g}\n")
        f.write(f"subtitle = \"{meta['date']} · {meta['nproc']} CPUs {meta['cpu']} · "
                f"{meta['pinning']} · wrk {meta['wrk_args'].split(' (')[0]} · median of {meta['runs']}\"\n")


def main():
    raw, results = sys.argv[1], sys.argv[2]
    meta = {r[0]: r[1] for r in (line.rstrip("\n").split("\t", 1)
                                 for line in open(os.path.join(raw, "meta.tsv"))) if len(r) == 2}
    cells = summarize(raw, meta, read_tsv(os.path.join(raw, "runs.tsv")),
                      read_tsv(os.path.join(raw, "rss.tsv")))
    write_csv(os.path.join(results, "bench.csv"), cells)
    write_md(os.path.join(results, "bench.md"), meta, cells)
    write_chart_data(raw, meta, cells)


if __name__ == "__main__":
    main()
