#!/usr/bin/python3
"""Helpers for bench/instructions.sh (stdlib only).

  instructions.py load --count N --connections C URL FILE
      Send exactly N keep-alive GET requests for URL over C concurrent
      HTTP/1.1 connections (one thread each, one request in flight per
      connection), check that every response is 200 with exactly FILE's bytes
      (length and content). Prints "requests=N reconnects=R seconds=S".
      Exit status 1 on the first wrong response or error.

  instructions.py total CALLGRIND_OUT
      Print the total instruction count (Ir) of a callgrind output file, from
      its "totals:" line (or "summary:" if there is no totals line).

  instructions.py report TSV OUTDIR
      Build OUTDIR/instructions.md and OUTDIR/instructions.csv from the
      per-run table TSV and its meta file (TSV's directory/meta.tsv).
"""
import argparse
import csv
import http.client
import os
import sys
import threading
import time
import urllib.parse


# ---------------------------------------------------------------- load
def load(url, path, count, connections, timeout):
    with open(path, "rb") as f:
        want = f.read()
    u = urllib.parse.urlsplit(url)
    lock = threading.Lock()
    state = {"left": count, "done": 0, "reconnects": 0, "error": None}

    def take():
        with lock:
            if state["error"] is not None or state["left"] <= 0:
                return False
            state["left"] -= 1
            return True

    def fail(msg):
        with lock:
            if state["error"] is None:
                state["error"] = msg

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        opened = False
        try:
            while take():
                try:
                    if conn.sock is None:
                        if opened:
                            with lock:
                                state["reconnects"] += 1
                        conn.connect()
                        opened = True
                    conn.request("GET", u.path or "/")
                    resp = conn.getresponse()
                    body = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    fail(f"{type(e).__name__}: {e}")
                    return
                if resp.status != 200 or len(body) != len(want) or body != want:
                    fail(f"status {resp.status}, {len(body)} bytes "
                         f"(want 200, {len(want)} bytes"
                         + (", same length but different bytes)" if len(body) == len(want) else ")"))
                    return
                with lock:
                    state["done"] += 1
        finally:
            conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, connections))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if state["error"] is not None or state["done"] != count:
        print(f"load {url}: {state['error'] or 'incomplete'} after {state['done']} of {count} requests",
              file=sys.stderr)
        return 1
    print(f"requests={state['done']} reconnects={state['reconnects']} seconds={secs:.1f}")
    return 0


# ---------------------------------------------------------------- total
def total(path):
    totals = summary = None
    with open(path, "r", errors="replace") as f:
        for line in f:
            if line.startswith("totals:"):
                totals = int(line.split()[1])
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
    value = totals if totals is not None else summary
    if value is None:
        print(f"{path}: no totals:/summary: line (callgrind did not finish writing?)", file=sys.stderr)
        return 1
    print(value)
    return 0


# ---------------------------------------------------------------- report
NAMES = {"nginx": "nginx", "haproxy": "HAProxy", "portcullis": "portcullis"}


def fmt_int(v):
    return f"{v:,}" if v is not None else ""


def fmt_k(v):
    return f"{v / 1000:.1f} k" if v is not None else ""


def report(tsv, outdir):
    rawdir = os.path.dirname(os.path.abspath(tsv))
    meta = {}
    with open(os.path.join(rawdir, "meta.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    # runs.tsv: row path target kind requests status ir
    runs = {}
    order_rows, order_targets = [], []
    with open(tsv) as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            key = (rec["row"], rec["target"])
            if rec["row"] not in order_rows:
                order_rows.append(rec["row"])
            if rec["target"] not in order_targets:
                order_targets.append(rec["target"])
            runs.setdefault(key, {"path": rec["path"]})[rec["kind"]] = rec

    cells = {}
    for (row, target), r in runs.items():
        lo, hi = r.get("low"), r.get("high")
        c = {"row": row, "path": r["path"], "target": target, "status": "FAIL",
             "n_low": None, "n_high": None, "ir_low": None, "ir_high": None,
             "per_req": None, "fixed": None}
        if lo and hi:
            c["n_low"], c["n_high"] = int(lo["requests"]), int(hi["requests"])
            if lo["status"] == "ok" and hi["status"] == "ok" and lo["ir"] and hi["ir"]:
                c["ir_low"], c["ir_high"] = int(lo["ir"]), int(hi["ir"])
                dn = c["n_high"] - c["n_low"]
                if dn > 0:
                    c["per_req"] = (c["ir_high"] - c["ir_low"]) / dn
                    c["fixed"] = c["ir_high"] - c["per_req"] * c["n_high"]
                    c["status"] = "ok"
        cells[(row, target)] = c

    def ratio(row, target):
        c, n = cells.get((row, target)), cells.get((row, "nginx"))
        if not c or not n or c["per_req"] is None or not n["per_req"]:
            return None
        return c["per_req"] / n["per_req"]

    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "instructions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "path", "target", "version", "requests_low", "requests_high",
                    "instructions_low", "instructions_high", "instructions_per_request",
                    "fixed_instructions", "ratio_vs_nginx", "status"])
        for row in order_rows:
            for t in order_targets:
                c = cells[(row, t)]
                r = ratio(row, t)
                w.writerow([row, c["path"], t, meta.get(f"version_{t}", ""),
                            c["n_low"] or "", c["n_high"] or "",
                            c["ir_low"] if c["ir_low"] is not None else "",
                            c["ir_high"] if c["ir_high"] is not None else "",
                            f"{c['per_req']:.1f}" if c["per_req"] is not None else "",
                            f"{c['fixed']:.0f}" if c["fixed"] is not None else "",
                            f"{r:.3f}" if r is not None else "", c["status"]])

    L = []
    L.append("# Instructions per request (callgrind)")
    L.append("")
    L.append(f"- date: {meta.get('date', '')}; host: {meta.get('host', '')}; cpu: {meta.get('cpu', '')}")
    L.append(f"- {meta.get('valgrind', 'valgrind')}, `--tool=callgrind` "
             "(user-space instructions, Ir; kernel work in syscalls is not counted)")
    for t in order_targets:
        L.append(f"- {NAMES.get(t, t)}: {meta.get(f'version_{t}', '')}")
    L.append(f"- each proxy is ONE process under callgrind ({meta.get('setup', '')}), "
             "in front of the same upstream nginx (1 worker, not under valgrind)")
    L.append(f"- load: {meta.get('client', '')}")
    L.append(f"- requests per row (N): {meta.get('counts', '')}; low count = N/{meta.get('low_div', '5')}")
    L.append("- method: the proxy is started twice per row, once serving N and once N/"
             f"{meta.get('low_div', '5')} requests; instructions per request = "
             "(I(N) - I(N/" + meta.get("low_div", "5") + ")) / (N - N/" + meta.get("low_div", "5") + "), "
             "the slope between the two runs, so start-up, the readiness probe and shutdown cancel out. "
             "`fixed` = I(N) - slope × N, that constant part.")
    L.append("")
    L.append("| row | proxy | I(N/" + meta.get("low_div", "5") + ") | I(N) | N | instructions / request "
             "| vs nginx | fixed (start + stop) |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in order_rows:
        for t in order_targets:
            c = cells[(row, t)]
            name = NAMES.get(t, t)
            if c["status"] != "ok":
                L.append(f"| {row} | {name} | | | {c['n_high'] or ''} | FAIL | | |")
                continue
            r = ratio(row, t)
            L.append(f"| {row} | {name} | {fmt_int(c['ir_low'])} | {fmt_int(c['ir_high'])} | "
                     f"{c['n_high']} | **{fmt_k(c['per_req'])}** | "
                     f"{f'{r:.2f}×' if r is not None else ''} | {c['fixed'] / 1e6:.1f} M |")
    L.append("")
    # compact pivot
    L.append("| instructions / request | " + " | ".join(NAMES.get(t, t) for t in order_targets) + " |")
    L.append("| --- |" + " ---: |" * len(order_targets))
    for row in order_rows:
        vals = []
        for t in order_targets:
            c = cells[(row, t)]
            if c["status"] != "ok":
                vals.append("FAIL")
            else:
                r = ratio(row, t)
                vals.append(fmt_k(c["per_req"]) + (f" ({r:.2f}×)" if r is not None and t != "nginx" else ""))
        L.append(f"| {row} | " + " | ".join(vals) + " |")
    L.append("")
    with open(os.path.join(outdir, "instructions.md"), "w") as f:
        f.write("\n".join(L))
    return 0 if all(c["status"] == "ok" for c in cells.values()) else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lo = sub.add_parser("load")
    lo.add_argument("--count", type=int, required=True)
    lo.add_argument("--connections", type=int, default=4)
    lo.add_argument("--timeout", type=float, default=120)
    lo.add_argument("url")
    lo.add_argument("file")
    to = sub.add_parser("total")
    to.add_argument("file")
    rp = sub.add_parser("report")
    rp.add_argument("tsv")
    rp.add_argument("outdir")
    a = ap.parse_args()
    if a.cmd == "load":
        return load(a.url, a.file, a.count, a.connections, a.timeout)
    if a.cmd == "total":
        return total(a.file)
    return report(a.tsv, a.outdir)


if __name__ == "__main__":
    sys.exit(main())
