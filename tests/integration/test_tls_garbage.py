"""Garbage on a TLS port: random bytes, a truncated ClientHello and a
plain-text HTTP request each get their connection closed, counted as a
failed handshake, and logged once per client per minute; the gateway stays
up and a client in the middle of a slow keep-alive conversation does not
notice."""

import random
import socket
import threading
import time

import pytest

import gwtest
from conftest import SMALL_TXT

ROUNDS = 4  # of each kind: with 2 workers, both are all but sure to see one


def garbage_kinds():
    hello = gwtest.client_hello()
    rnd = random.Random(20261125)

    def random_bytes():
        # not a TLS record type (0x14-0x17), not an SSLv2 hello (high bit)
        return b"\x42" + rnd.randbytes(299), False

    def truncated_hello():
        # the first 50 bytes of a real ClientHello, then our FIN: the
        # record can never complete
        return hello[:50], True

    def plain_http():
        return (b"GET /static/small.txt HTTP/1.1\r\nHost: gw.test\r\n\r\n",
                False)
    return [("random", random_bytes), ("truncated-hello", truncated_hello),
            ("plain-http", plain_http)]


def send_garbage(port, data, half_close):
    """Sends data; returns (seconds until the gateway closed, bytes it
    sent back). Fails if it has not closed within 3 s."""
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    t0 = time.monotonic()
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            try:
                b = s.recv(4096)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError("connection still open 3 s after %r"
                                     % data[:20])
            if not b:
                break
            got += b
        return time.monotonic() - t0, got
    finally:
        s.close()


def slow_client(port, stop, results):
    """One keep-alive TLS connection, a request every 0.15 s."""
    try:
        s = gwtest.tls_connect(port)
    except OSError as e:
        results.append((False, "connect: %r" % e))
        return
    with gwtest.RawConn.wrap(s) as c:
        i = 0
        while not stop.is_set():
            try:
                c.send(("GET /static/small.txt?slow=%d HTTP/1.1\r\n"
                        "Host: gw.test\r\n\r\n" % i).encode())
                r = c.read_response()
                results.append((r.status == 200 and r.body == SMALL_TXT,
                                "%d %r" % (r.status, r.body[:60])))
            except (OSError, EOFError, AssertionError) as e:
                results.append((False, repr(e)))
                return
            i += 1
            stop.wait(0.15)


def test_garbage_does_not_disturb(tls_gateway, tls_certs):
    # a header timeout far from the 3 s we allow: a close we see is the
    # failure's, not the timeout's
    gw = tls_gateway([tls_certs.pair("gw.test")],
                     listener={"timeouts": {"header": "10s", "body": "5s",
                                            "keepalive": "30s"}})
    stop = threading.Event()
    results = []
    t = threading.Thread(target=slow_client, args=(gw.tls_port, stop,
                                                   results))
    t.start()
    problems = []
    try:
        gwtest.wait_until(lambda: len(results) >= 2, 5,
                          what="the slow client's first requests")
        before = len(results)
        for _ in range(ROUNDS):
            for kind, make in garbage_kinds():
                data, half_close = make()
                took, got = send_garbage(gw.tls_port, data, half_close)
                if took > 2.0:
                    problems.append("%s: closed after %.1fs" % (kind, took))
                if b"HTTP/" in got or b"portcullis small" in got:
                    problems.append("%s: answered %r" % (kind, got[:80]))
                time.sleep(0.05)  # interleaved with the slow client's
        during = len(results) - before
        after = len(results)
        gwtest.wait_until(lambda: len(results) >= after + 3
                          or not t.is_alive(), 5,
                          what="the slow client's requests after the garbage")
    finally:
        stop.set()
        t.join(10)
    assert not problems, problems
    assert gw.proc.alive(), gw.diagnostics()
    failed = [what for ok, what in results if not ok]
    assert not failed, "the slow client saw %r" % failed[:3]
    assert during >= 2, "only %d slow requests during the garbage" % during

    m = gw.metrics()
    listener = "127.0.0.1:%d" % gw.tls_port
    counts = {r: gwtest.metric(m, "portcullis_tls_handshakes_total",
                               listener=listener, result=r)
              for r in ("ok", "failed", "timeout")}
    assert counts == {"ok": 1, "failed": 3 * ROUNDS, "timeout": 0}, counts

    # a new client is served as ever
    r = gwtest.tls_request(gw.tls_port, "GET", "/static/small.txt")
    assert r.status == 200 and r.body == SMALL_TXT

    # one line for 127.0.0.1, not one per attempt (the error log is
    # written by a thread of its own: wait for the first, then a little)
    def failure_lines():
        return [l for l in gw.error_log().splitlines()
                if "TLS handshake failed" in l]
    gwtest.wait_until(failure_lines, 3,
                      what="'TLS handshake failed' in the error log")
    time.sleep(0.3)
    lines = failure_lines()
    assert len(lines) == 1, \
        "%d 'TLS handshake failed' lines for %d failures from 127.0.0.1 " \
        "within a minute:\n%s" % (len(lines), 3 * ROUNDS, "\n".join(lines))
    assert "127.0.0.1" in lines[0], lines[0]
