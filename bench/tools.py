#!/usr/bin/python3
"""Small helpers for bench/run.sh (stdlib only).

  tools.py free-port                      print a free TCP port on 127.0.0.1
  tools.py check [--wait S] [--pid P] URL FILE
                                          GET URL (keep-alive, HTTP/1.1) and
                                          compare the body with FILE's bytes;
                                          with --wait, retry for S seconds
                                          (giving up early if PID P is gone).
                                          An https URL is fetched without
                                          certificate verification (the
                                          bench certificates are self-signed).
  tools.py status [-H H]... URL           print the HTTP status of GET URL
  tools.py crypt-check HASH PASSWORD      exit 0 if libcrypt's crypt(3) (what
                                          HAProxy's userlist uses) accepts
                                          HASH's format and PASSWORD matches
                                          it; else print why and exit 1
  tools.py counters KIND ARGS...          print "ACCEPTED TLS": client
                                          connections accepted and TLS
                                          handshakes completed so far by a
                                          proxy ("-" where it has no such
                                          counter):
      portcullis METRICS_URL LISTEN [REALM]
                                          portcullis_connections_accepted_total
                                          and portcullis_tls_handshakes_total
                                          {result="ok"} of listener LISTEN;
                                          with REALM six more fields: that
                                          realm's portcullis_auth_requests_total
                                          by result (ok cached denied throttled
                                          unavailable) and
                                          portcullis_auth_verifications_total
      nginx STUB_STATUS_URL               "accepts" of stub_status (counts
                                          every connection, the status
                                          request included); TLS: -
      haproxy STATS_SOCKET                "show info": CumConns (the CLI
                                          connection included), CumSslConns
"""
import argparse
import ctypes
import ctypes.util
import http.client
import os
import re
import socket
import ssl
import sys
import time
import urllib.parse


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, headers=None, timeout=5.0, fields=None):
    """(status, body) of a GET; fields, a list, gets the response's
    (name, value) pairs."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # bench certificates are self-signed
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path or "/", headers=headers or {})
        resp = conn.getresponse()
        if fields is not None:
            fields.extend(resp.getheaders())
        return resp.status, resp.read()
    finally:
        conn.close()


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def check(url, path, wait, pid, headers, expect=()):
    """0 when url answers 200 with the bytes of file `path` and every
    "Name: value" of `expect` among its response fields."""
    with open(path, "rb") as f:
        want = f.read()
    expect = [tuple(x.strip() for x in e.split(":", 1)) for e in expect]
    deadline = time.monotonic() + wait
    last = "no attempt"
    while True:
        try:
            got = []
            status, body = fetch(url, headers, fields=got)
            have = {(n.lower(), v) for n, v in got}
            missing = [f"{n}: {v}" for n, v in expect if (n.lower(), v) not in have]
            if status == 200 and body == want and not missing:
                return 0
            if status == 200 and body == want:
                last = "missing response field(s) " + ", ".join(missing)
                if time.monotonic() >= deadline:
                    print(f"check {url}: {last}", file=sys.stderr)
                    return 1
                time.sleep(0.1)
                continue
            last = f"status {status}, {len(body)} bytes (want 200, {len(want)} bytes" + (
                ", same length but different bytes)" if len(body) == len(want) else ")")
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline or (pid and not alive(pid)):
            print(f"check {url}: {last}" + ("" if not pid or alive(pid) else f" (pid {pid} exited)"),
                  file=sys.stderr)
            return 1
        time.sleep(0.1)


AUTH_RESULTS = ("ok", "cached", "denied", "throttled", "unavailable")


def labelled(text, name, want):
    """Value of the sample of metric NAME whose labels include WANT (any
    label order), or "-"."""
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}}\s+([0-9.eE+]+)\s*$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(labels.get(k) == v for k, v in want.items()):
            return str(int(float(m.group(2))))
    return "-"


def crypt_check(stored, password):
    """Does libcrypt's crypt(3), which HAProxy calls for userlist passwords,
    verify PASSWORD against STORED? (0, "") or (1, why)."""
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    out = lib.crypt(password.encode(), stored.encode())
    if out is None or out.startswith(b"*"):
        scheme = "$" + stored.split("$")[1] + "$" if stored.startswith("$") else "DES"
        return 1, f"{name}: crypt(3) cannot check {scheme} hashes"
    if out != stored.encode():
        return 1, f"{name}: crypt(3) computed a different hash"
    return 0, ""


def counters(kind, args):
    if kind == "portcullis":
        url, listen, *realm = args
        status, body = fetch(url)
        if status != 200:
            raise OSError(f"{url}: status {status}")
        text = body.decode()
        lab = re.escape(f'listener="{listen}"')

        def metric(pat):
            m = re.search(rf"^{pat}\s+(\d+)\s*$", text, re.M)
            return m.group(1) if m else "-"
        acc = metric(rf"portcullis_connections_accepted_total\{{{lab}\}}")
        tls = metric(rf'portcullis_tls_handshakes_total\{{{lab},result="ok"\}}')
        if not realm:
            return acc, tls
        return (acc, tls, *(labelled(text, "portcullis_auth_requests_total",
                                     {"realm": realm[0], "result": r})
                             for r in AUTH_RESULTS),
                labelled(text, "portcullis_auth_verifications_total", {"realm": realm[0]}))
    if kind == "nginx":
        status, body = fetch(args[0])
        m = re.search(r"server accepts handled requests\s+(\d+)", body.decode())
        if status != 200 or not m:
            raise OSError(f"{args[0]}: no stub_status")
        return m.group(1), "-"
    if kind == "haproxy":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(args[0])
            s.sendall(b"show info\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        info = dict(line.split(": ", 1) for line in data.decode().splitlines() if ": " in line)
        return info.get("CumConns", "-").strip(), info.get("CumSslConns", "-").strip()
    raise SystemExit(f"unknown counters kind {kind}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port")
    st = sub.add_parser("status")
    st.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    st.add_argument("url")
    cc = sub.add_parser("crypt-check")
    cc.add_argument("hash")
    cc.add_argument("password")
    k = sub.add_parser("counters")
    k.add_argument("kind", choices=["portcullis", "nginx", "haproxy"])
    k.add_argument("args", nargs="+")
    c = sub.add_parser("check")
    c.add_argument("--wait", type=float, default=0)
    c.add_argument("--pid", type=int, default=0)
    c.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    c.add_argument("--expect", action="append", default=[],
                   help="'Name: value' the response must carry")
    c.add_argument("url")
    c.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "free-port":
        print(free_port())
        return 0
    if a.cmd == "counters":
        print(*counters(a.kind, a.args))
        return 0
    if a.cmd == "crypt-check":
        rc, why = crypt_check(a.hash, a.password)
        if why:
            print(why)
        return rc
    headers = dict(h.split(":", 1) for h in a.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    if a.cmd == "status":
        print(fetch(a.url, headers)[0])
        return 0
    return check(a.url, a.file, a.wait, a.pid, headers, a.expect)


if __name__ == "__main__":
    sys.exit(main())
