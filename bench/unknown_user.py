#!/usr/bin/python3
"""bench/unknown_user.py - how long a wrong password takes to be refused,
for known users of each hash format and for a user the realm does not
have, in one realm that mixes formats. Reports numbers; asserts nothing.

  bench/unknown_user.py [--portcullis PATH] [--requests N] [--bcrypt-cost C]

One portcullis (1 worker, 1 verifier thread) with realm "mixed": users
"apr1" (htpasswd -m), "sha512" (openssl passwd -6, 5000 rounds) and
"bcrypt" (htpasswd -B -C C, default 10), cache off (cache_ttl 0s) and the
brute-force guard off (max_failures 0), so every request is one hash
check. Each round sends one request per case on a new connection, the
cases in turn, so a noisy neighbour hurts them alike; a 401 never reaches
the upstream. Printed per case: median, p10 and p90 of the time from
connect to the whole 401 answer, in ms.

Before the costliest-hash rule an unknown user was checked against the
first user in sorted order ("apr1" here) and answered as fast as that one;
now it costs what the costliest ("bcrypt") does. The gateway logs the
scheme it chose ("unknown users are checked against its costliest hash").

Needs htpasswd (apache2-utils) and openssl. Stdlib only; every process is
stopped by its PID.
"""
import argparse
import base64
import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "right password"  # test strings, made up here
WRONG = "wrong password"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(argv, data=None):
    p = subprocess.run(argv, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=True)
    return p.stdout.decode().strip()


def htpasswd_text(bcrypt_cost):
    apr1 = tool(["htpasswd", "-nbm", "apr1", PASSWORD])
    bcrypt = tool(["htpasswd", "-nbB", "-C", str(bcrypt_cost), "bcrypt",
                   PASSWORD])
    sha512 = "sha512:" + tool(["openssl", "passwd", "-6", "-stdin"],
                              (PASSWORD + "\n").encode())
    return "\n".join([apr1, bcrypt, sha512]) + "\n"


def get(port, user, timeout=30.0):
    """Status and seconds of one GET /p/ with user:WRONG, new connection."""
    auth = base64.b64encode(("%s:%s" % (user, WRONG)).encode()).decode()
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/p/", headers={"Authorization": "Basic " + auth})
        r = c.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0
    finally:
        c.close()


def wait_healthy(proc, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("portcullis exited with %d" % proc.returncode)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("portcullis not healthy after %.0fs" % timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--portcullis", default=str(REPO / "build" / "bin" /
                                                "portcullis"))
    ap.add_argument("--requests", type=int, default=30,
                    help="requests per case (default 30)")
    ap.add_argument("--bcrypt-cost", type=int, default=10)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-unknown-") as tmp:
        tmp = Path(tmp)
        (tmp / "users.htpasswd").write_text(htpasswd_text(args.bcrypt_cost))
        port, admin = free_port(), free_port()
        cfg = {
            "workers": 1,
            "access_log": False,
            "admin": {"listen": "127.0.0.1:%d" % admin},
            "auth": {"verifier_threads": 1},
            "upstreams": {"u": {"servers": ["127.0.0.1:%d" % free_port()]}},
            "realms": {"mixed": {"htpasswd": str(tmp / "users.htpasswd"),
                                 "cache_ttl": "0s", "max_failures": 0}},
            "listeners": [{"listen": "127.0.0.1:%d" % port,
                           "routes": [{"name": "p", "path": "/p/",
                                       "upstream": "u", "realm": "mixed"}]}],
        }
        (tmp / "portcullis.json").write_text(json.dumps(cfg))
        err = open(tmp / "portcullis.stderr", "wb")
        proc = subprocess.Popen([args.portcullis, "-c",
                                 str(tmp / "portcullis.json")],
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_healthy(proc, admin)
            cases = ["apr1", "sha512", "bcrypt", "nobody"]
            times = {c: [] for c in cases}
            for c in cases:  # one unmeasured request each
                get(port, c)
            for _ in range(args.requests):
                for c in cases:
                    status, dt = get(port, c)
                    if status != 401:
                        raise SystemExit("%s: status %d, not 401" % (c,
                                                                     status))
                    times[c].append(dt * 1000)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()
        chosen = [l for l in (tmp / "portcullis.stderr").read_text(
            errors="replace").splitlines() if "costliest hash" in l]

    print("portcullis: %s" % args.portcullis)
    print("realm: apr1, sha512-crypt 5000, bcrypt %d; %d requests per case"
          % (args.bcrypt_cost, args.requests))
    if chosen:
        print("gateway: " + chosen[0].split(": ", 2)[-1])
    print("%-22s %10s %10s %10s" % ("user (wrong password)", "median ms",
                                     "p10 ms", "p90 ms"))
    for c in cases:
        q = statistics.quantiles(times[c], n=10)
        label = c if c != "nobody" else "unknown (nobody)"
        print("%-22s %10.2f %10.2f %10.2f" % (label,
                                              statistics.median(times[c]),
                                              q[0], q[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
