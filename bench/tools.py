#!/usr/bin/python3
"""Small helpers for bench/run.sh (stdlib only).

  tools.py free-port                      print a free TCP port on 127.0.0.1
  tools.py check [--wait S] [--pid P] URL FILE
                                          GET URL (keep-alive, HTTP/1.1) and
                                          compare the body with FILE's bytes;
                                          with --wait, retry for S seconds
                                          (giving up early if PID P is gone).
"""
import argparse
import http.client
import os
import socket
import ssl
import sys
import time
import urllib.parse


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, headers=None, timeout=5.0):
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


def check(url, path, wait, pid, headers):
    with open(path, "rb") as f:
        want = f.read()
    deadline = time.monotonic() + wait
    last = "no attempt"
    while True:
        try:
            status, body = fetch(url, headers)
            if status == 200 and body == want:
                return 0
            last = f"status {status}, {len(body)} bytes (want 200, {len(want)} bytes" + (
                ", same length but different bytes)" if len(body) == len(want) else ")")
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline or (pid and not alive(pid)):
            print(f"check {url}: {last}" + ("" if not pid or alive(pid) else f" (pid {pid} exited)"),
                  file=sys.stderr)
            return 1
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port")
    c = sub.add_parser("check")
    c.add_argument("--wait", type=float, default=0)
    c.add_argument("--pid", type=int, default=0)
    c.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    c.add_argument("url")
    c.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "free-port":
        print(free_port())
        return 0
    headers = dict(h.split(":", 1) for h in a.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    return check(a.url, a.file, a.wait, a.pid, headers)


if __name__ == "__main__":
    sys.exit(main())
