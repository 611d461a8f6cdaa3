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

Basic auth (rows tlsauth-*): runs.tsv has, for portcullis, the realm's
auth counters over each run (auth_ok, auth_cached, auth_denied,
auth_throttled, auth_unavailable; auth_hashes = hash computations). The
report prints the headline explicitly: portcullis tlsauth-bcrypt10 against
portcullis's own tls-small (no auth) as a requests/s ratio and a p99
difference in ms, and portcullis against nginx and HAProxy in the auth rows.

Storm (row pairs NAME-alone / NAME): requests/s on /open/ alone and while the
storm client hammers /locked/ with wrong passwords; the report gives the
second as a % of the first per target (ratio of the medians, and the range of
the per-round ratios: run k alone and run k under the storm were measured in
the same round). The storm client's own wrk output (storm_file) has its
request count and "storm status CODE COUNT" lines; storm_cpu_ticks is its CPU
over the measured run (on the load CPU).

A cell shown n/a may carry a reason in runs.tsv's note (e.g. HAProxy cannot
check $apr1$ hashes with crypt(3)).
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
    if out["requests"] == 0:  # wrk prints 0.00us percentiles then
        out["p50"] = out["p99"] = math.nan
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
AUTH_KEYS = ("auth_ok", "auth_cached", "auth_denied", "auth_throttled", "auth_unavailable",
             "auth_hashes")


def parse_storm(text):
    """requests, duration (s) and {status: count} of the storm client's wrk output."""
    out = {"requests": None, "seconds": None, "statuses": {}}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["seconds"] = float(m.group(2)) * UNIT_MS[m.group(3)] / 1000
    for code, count in re.findall(r"^storm status (\d+) (\d+)\s*$", text, re.M):
        out["statuses"][code] = out["statuses"].get(code, 0) + int(count)
    return out


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
            if r.get("note") and r["note"] not in c["notes"]:
                c["notes"].append(r["note"])  # why n/a
            continue
        add_tls(c["tls"], r)
        if r.get("note"):
            c["notes"].append(f"run {r['run']}: {r['note']}")
        res = None
        if r["status"] == "ok" and r["file"]:
            with open(os.path.join(raw, r["file"])) as f:
                res = parse_wrk(f.read())
        # A run under a storm may complete no request at all: that is its result
        # (0 requests/s), not a failure of the harness.
        if res is None or (res["requests"] == 0 and not r.get("storm_file")):
            c["status"] = "fail"
            continue
        res["cpu_us"], res["cpu_util"] = run_cpu(r, res, clk_tck)
        res["run"] = r["run"]
        res["auth"] = {k: int(r[k]) for k in AUTH_KEYS if (r.get(k) or "").isdigit()}
        if r.get("storm_file"):
            try:
                with open(os.path.join(raw, r["storm_file"])) as f:
                    res["storm"] = parse_storm(f.read())
            except OSError:
                res["storm"] = {"requests": None, "seconds": None, "statuses": {}}
            ticks, wall = r.get("storm_cpu_ticks") or "", r.get("wall_s") or ""
            res["storm"]["cpu_util"] = (int(ticks) / clk_tck / float(wall)
                                        if ticks and wall and clk_tck and float(wall) > 0 else None)
        c["runs"].append(res)
        c["errors"] += res["errors"]

    for c in cells.values():
        c["rss_kb"] = rss_kb.get((c["profile"], c["target"]))
        if c["status"] != "ok" or not c["runs"]:
            c.update(rps=None, p50=None, p99=None, rps_min=None, rps_max=None,
                     cpu_us=None, cpu_util=None, auth={})
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
        c["auth"] = {}
        for k in AUTH_KEYS:
            vals = [x["auth"][k] for x in c["runs"] if k in x["auth"]]
            c["auth"][k] = sum(vals) if len(vals) == len(c["runs"]) else None
        storms = [x["storm"] for x in c["runs"] if "storm" in x]
        if storms:
            st = {"requests": 0, "seconds": 0.0, "statuses": {}}
            for x in storms:
                if x["requests"] is None:
                    st["requests"] = None
                elif st["requests"] is not None:
                    st["requests"] += x["requests"]
                    st["seconds"] += x["seconds"]
                for code, n in x["statuses"].items():
                    st["statuses"][code] = st["statuses"].get(code, 0) + n
            utils = [x["cpu_util"] for x in storms if x.get("cpu_util") is not None]
            st["cpu_util"] = statistics.median(utils) if utils else None
            c["storm"] = st

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
            "tls_other_cipher", "proxy_conns_accepted", "proxy_tls_handshakes", "note",
            *AUTH_KEYS, "storm_requests", "storm_statuses", "storm_client_cpu_pct"]

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
                       + ["; ".join(c["notes"])]
                       + [num(c["auth"].get(k)) for k in AUTH_KEYS]
                       + storm_csv(c.get("storm")))


def storm_csv(st):
    if not st:
        return ["", "", ""]
    return ["" if st["requests"] is None else st["requests"],
            " ".join(f"{k}:{v}" for k, v in sorted(st["statuses"].items())),
            "" if st["cpu_util"] is None else round(st["cpu_util"] * 100, 1)]


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
    L.extend(auth_section(meta, cells))
    L.extend(storm_section(meta, cells))
    L.extend(policy_section(meta, cells))
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


def ok(c):
    return c is not None and c["status"] == "ok" and c["rps"] is not None


def fmt_delta_ms(v):
    return "–" if v is None or math.isnan(v) else f"{v:+.2f} ms"


def auth_section(meta, cells):
    """The basic-auth rows: headline ratios and a table with the auth counters."""
    by = {(c["row"], c["target"]): c for c in cells}
    allrows = [r for r in meta["rows"].split() if r.startswith("tlsauth-")]
    rows = [r for r in allrows if r != OPEN_ROW]   # rows with auth
    if not rows:
        return []
    L = ["## Basic auth over TLS (keep-alive, ECDSA)\n"]
    if meta.get("auth_settings"):
        L.append(f"Setup: {meta['auth_settings']}. portcullis verifies a credential once and "
                 "then serves the same Authorization value from its cache, so its rows price "
                 "the cached path; nginx and HAProxy have no cache and hash every request on "
                 "their one event loop.\n")
    base = by.get(("tls-small", "portcullis"))
    for row in rows:
        c = by.get((row, "portcullis"))
        if not ok(c):
            L.append(f"- portcullis {row}: no result"
                     + (f" ({c['status']})" if c else "") + ".")
            continue
        if ok(base) and base["rps"] > 0:
            d99 = c["p99"] - base["p99"]
            L.append(f"- **portcullis {row} vs portcullis tls-small (same TLS setup, no auth): "
                     f"{c['rps']:,.0f} / {base['rps']:,.0f} req/s = {c['rps'] / base['rps'] * 100:.1f} %; "
                     f"p99 {fmt_ms(c['p99'])} vs {fmt_ms(base['p99'])} = {fmt_delta_ms(d99)}** "
                     "(issue 5's target, for reference: ≥ 80 % and p99 within 2 ms; "
                     "tls-small ran in another profile block, minutes apart)")
        else:
            L.append(f"- portcullis {row}: the tls-small row of portcullis is not in this run "
                     "(add it to BENCH_ROWS for the comparison without auth)")
        o = by.get((OPEN_ROW, "portcullis"))
        if ok(o) and o["rps"] > 0 and o["profile"] == c["profile"]:
            per = {x["run"]: x["rps"] for x in o["runs"]}
            rr = [x["rps"] / per[x["run"]] for x in c["runs"] if per.get(x["run"])]
            rng = f", per round {min(rr) * 100:.0f}–{max(rr) * 100:.0f} %" if rr else ""
            L.append(f"  - **same rounds, vs {OPEN_ROW} (this server's route without auth, the "
                     f"same request bytes): {c['rps']:,.0f} / {o['rps']:,.0f} req/s = "
                     f"{c['rps'] / o['rps'] * 100:.1f} %{rng}; p99 {fmt_ms(c['p99'])} vs "
                     f"{fmt_ms(o['p99'])} = {fmt_delta_ms(c['p99'] - o['p99'])}**")
        for other in ("nginx", "haproxy"):
            o = by.get((row, other))
            name = TARGET_LABEL[other]
            if ok(o) and o["rps"] > 0:
                L.append(f"  - vs {name} in {row}: {c['rps'] / o['rps']:,.1f}× the requests/s "
                         f"({c['rps']:,.0f} vs {o['rps']:,.0f}); p99 {fmt_ms(c['p99'])} vs {fmt_ms(o['p99'])}")
            elif o is not None and o["status"] == "na":
                L.append(f"  - vs {name} in {row}: n/a" + (f" — {'; '.join(o['notes'])}" if o["notes"] else ""))
            elif o is not None:
                L.append(f"  - vs {name} in {row}: {name} FAILED")
    if base is not None and ok(base):
        L.append("- tls-small and the auth rows ran in different profile blocks of this run "
                 "(interleaving is per profile), minutes apart.")
    L.append("")
    L.append("| row | target | requests/s | range | p50 | p99 | errors | proxy CPU µs/req "
             "| proxy CPU util | portcullis auth: ok / cached / denied / throttled / unavailable "
             "| hashes computed |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    show = (["tls-small"] if ok(base) else []) + allrows
    for row in show:
        for t in meta["targets"].split():
            c = by.get((row, t))
            if c is None:
                continue
            name = TARGET_LABEL.get(t, t)
            if not ok(c):
                word = "n/a" if c["status"] == "na" else "**FAIL**"
                if c["notes"]:
                    word += " (" + "; ".join(c["notes"]).replace("|", "/") + ")"
                L.append(f"| {row} | {name} | {word} | | | | | | | | |")
                continue
            a = c.get("auth") or {}
            res = " / ".join(fmt_count(a.get(k)) for k in AUTH_KEYS[:5]) if a.get("auth_hashes") is not None else "–"
            hashes = fmt_count(a.get("auth_hashes")) if a.get("auth_hashes") is not None else (
                "every request" if row in rows and t in ("nginx", "haproxy") else "–")
            L.append(f"| {row} | {name} | {c['rps']:,.0f} | {c['rps_min']:,.0f}–{c['rps_max']:,.0f} "
                     f"| {fmt_ms(c['p50'])} | {fmt_ms(c['p99'])} | {c['errors']} | {fmt_us(c['cpu_us'])} "
                     f"| {fmt_pct(c['cpu_util'])} | {res} | {hashes} |")
    L.append("")
    L.append("Auth counters and hashes: sums over the measured runs (portcullis "
             "`portcullis_auth_requests_total` by result, `portcullis_auth_verifications_total`). "
             "nginx and HAProxy keep no such counters; they hash every request.\n")
    return L


OPEN_ROW = "tlsauth-open"   # no-auth reference inside profile tlsauth_bcrypt10
GUARD = {("storm", "portcullis"): "default (10 failures / 5 m, then 429)",
         ("storm_noguard", "portcullis"): "off (max_failures 0)"}


def policy_section(meta, cells):
    """Rows policy-plain and policy (one server): requests/s of the route
    with an allow list, a rate limit and three headers as % of the plain
    route, per target; the range is of the per-round ratios."""
    by = {(c["row"], c["target"]): c for c in cells}
    if "policy" not in meta["rows"].split() or "policy-plain" not in meta["rows"].split():
        return []
    L = ["## Route policies: allow list + rate limit + three response headers\n",
         "Both routes on one server, measured in the same rounds: /open/ bare, /policy/ with "
         "an allow list (127.0.0.0/8), a per-address rate limit far above the run's rate "
         "(checked on every request, never refusing) and three response headers set "
         "(X-Content-Type-Options, X-Frame-Options, Referrer-Policy; checked present before "
         "the runs). nginx: allow/deny, limit_req, add_header; HAProxy: src ACL, stick table "
         "with http_req_rate, http-response set-header.\n",
         "| target | plain req/s | policy req/s | policy / plain | range | CPU µs/req plain | policy |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in meta["targets"].split():
        a, b = by.get(("policy-plain", t)), by.get(("policy", t))
        if a is None or b is None or not ok(a) or not ok(b):
            continue
        per = {x["run"]: x["rps"] for x in a["runs"]}
        rr = [x["rps"] / per[x["run"]] for x in b["runs"] if per.get(x["run"])]
        rng = f"{min(rr) * 100:.0f}–{max(rr) * 100:.0f} %" if rr else "–"
        L.append(f"| {TARGET_LABEL.get(t, t)} | {a['rps']:,.0f} | {b['rps']:,.0f} "
                 f"| **{b['rps'] / a['rps'] * 100:.1f} %** | {rng} | {fmt_us(a['cpu_us'])} "
                 f"| {fmt_us(b['cpu_us'])} |")
    L.append("")
    return L


def storm_section(meta, cells):
    """Row pairs NAME-alone / NAME: /open/ requests/s under the storm as % of alone."""
    by = {(c["row"], c["target"]): c for c in cells}
    rows = meta["rows"].split()
    pairs = [(r, r[: -len("-alone")]) for r in rows
             if r.endswith("-alone") and r[: -len("-alone")] in rows]
    if not pairs:
        return []
    L = ["## Wrong-password storm: /open/ while /locked/ (bcrypt 10) is hammered\n"]
    if meta.get("storm_settings"):
        L.append(f"Setup: {meta['storm_settings']}. The proxy (all its threads) on its own CPU "
                 "as in every row. \"under storm / alone\": ratio of the median requests/s "
                 "(range: the per-round ratios, run k alone and run k under the storm being "
                 "measured in the same round). Storm answers: counted by the storm client over "
                 "its whole life (ramp, warm-up and the measured run); hashes: portcullis's "
                 "verifications over the measured runs only.\n")
    L.append("| target | guard | /open/ alone req/s | under storm req/s | under storm / alone "
             "| range | p99 alone | p99 under storm | storm answers (status × count) | storm req/s "
             "| hashes computed (measured runs) | proxy CPU util alone / storm | storm client CPU |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for alone_row, storm_row in pairs:
        for t in meta["targets"].split():
            a, s = by.get((alone_row, t)), by.get((storm_row, t))
            if a is None or s is None or (a["status"] == "na" and s["status"] == "na"):
                continue
            name = TARGET_LABEL.get(t, t)
            guard = GUARD.get((s["profile"], t), "none (no such feature)")
            if not ok(a) or not ok(s):
                def word(c):
                    return f"{c['rps']:,.0f}" if ok(c) else "n/a" if c["status"] == "na" else "**FAIL**"
                L.append(f"| {name} ({storm_row}) | {guard} | {word(a)} | {word(s)} "
                         "| | | | | | | | | |")
                continue
            ratio = s["rps"] / a["rps"] if a["rps"] else math.nan
            per = {x["run"]: x["rps"] for x in a["runs"]}
            rr = [x["rps"] / per[x["run"]] for x in s["runs"] if per.get(x["run"])]
            rng = f"{min(rr) * 100:.0f}–{max(rr) * 100:.0f} %" if rr else "–"
            st = s.get("storm") or {}
            answers = ", ".join(f"{k} × {v:,}" for k, v in sorted(st.get("statuses", {}).items())) or "–"
            srate = (f"{st['requests'] / st['seconds']:,.0f}"
                     if st.get("requests") is not None and st.get("seconds") else "–")
            hashes = fmt_count((s.get("auth") or {}).get("auth_hashes"))
            L.append(f"| {name} ({storm_row}) | {guard} | {a['rps']:,.0f} | {s['rps']:,.0f} "
                     f"| **{ratio * 100:.1f} %** | {rng} | {fmt_ms(a['p99'])} | {fmt_ms(s['p99'])} "
                     f"| {answers} | {srate} | {hashes} "
                     f"| {fmt_pct(a['cpu_util'])} / {fmt_pct(s['cpu_util'])} | {fmt_pct(st.get('cpu_util'))} |")
    L.append("")
    L.append("The storm's cost to /open/ is 100 % minus \"under storm / alone\" (issue 5's "
             "target, for reference: under 10 % for portcullis). Proxy CPU util under the "
             "storm includes the storm's share (TLS, 401/429 answers, hashing).\n")
    return L


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
                    # log scale: 0 (a storm run that completed nothing) has no bar
                    vals.append("NaN" if v is None or math.isnan(v) or v <= 0 else f"{v:.6g}")
                f.write(f'"{r}" ' + " ".join(vals) + "\n")
    with open(os.path.join(raw, "chart.vars"), "w") as f:
        f.write(f"ntargets = {len(targets)}\nnrows = {len(rows)}\n")
        # y ranges (log scale): bars start at the bottom, so it must be below every value
        for key in ("rps", "p99"):
            vals = [c[key] for c in cells
                    if c.get(key) is not None and not math.isnan(c[key]) and c[key] > 0] or [1]
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
