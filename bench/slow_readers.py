#!/usr/bin/python3
"""bench/slow_readers.py - what slow readers cost a proxy in memory.

    slow_readers.py --url http://127.0.0.1:PORT/1m.bin --pid PID
                    [--clients 2000] [--settle 3] [--after 12]

Opens CLIENTS connections to URL, each sending one GET and then reading
nothing (a 4 KiB receive buffer), so the proxy has a large response it
cannot deliver on every one of them. Samples the VmRSS of process PID (the
proxy's serving process) before, once every connection is open and the
RSS has settled (two samples SETTLE seconds apart within 1 %), and again
AFTER seconds after every connection was closed (a proxy may give memory
back on a timer: portcullis checks every 10 s). Prints one line of
JSON: {"clients", "open", "rss_before_kib", "rss_held_kib",
"rss_after_kib", "per_client_kib"}. stdlib only.
"""
import argparse
import json
import socket
import sys
import time
import urllib.parse


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for pid %d" % pid)


def settle(pid, secs):
    """The RSS once two samples `secs` apart agree within 1 %."""
    last = rss_kib(pid)
    for _ in range(20):
        time.sleep(secs)
        now = rss_kib(pid)
        if abs(now - last) <= last / 100:
            return now
        last = now
    return last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--after", type=float, default=12.0)
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % u.path).encode()
    before = settle(a.pid, 1.0)
    socks = []
    for _ in range(a.clients):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # set before connect, so the window stays small
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            s.connect((u.hostname, u.port))
            s.sendall(req)
        except OSError as e:
            print("connection %d: %s" % (len(socks), e), file=sys.stderr)
            s.close()
            break
        socks.append(s)
    held = settle(a.pid, a.settle)
    for s in socks:
        s.close()
    time.sleep(a.after)
    after = settle(a.pid, a.settle)
    print(json.dumps({
        "clients": a.clients, "open": len(socks),
        "rss_before_kib": before, "rss_held_kib": held,
        "rss_after_kib": after,
        "per_client_kib": round((held - before) / max(len(socks), 1), 1)}))
    return 0 if len(socks) == a.clients else 1


if __name__ == "__main__":
    sys.exit(main())
