"""A TLS handshake must finish within the listener's timeouts.header: a
client that sends nothing, or dribbles its ClientHello a byte at a time,
is closed after it and counted as result="timeout"."""

import socket
import time

import pytest

import gwtest
from conftest import SMALL_TXT

HEADER = 1.0


def closed_after(s, t0, dribble=b""):
    """Sends `dribble` a byte every 0.2 s (then nothing) until the gateway
    closes; returns the seconds from t0 to the close."""
    s.settimeout(0.2)
    i = 0
    while time.monotonic() - t0 < 5:
        if i < len(dribble):
            try:
                s.sendall(dribble[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0
            i += 1
        try:
            b = s.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0
        if not b:
            return time.monotonic() - t0
        # a TLS alert is fine; nothing else should come
        assert b[:1] == b"\x15", "unexpected bytes %r" % b[:40]
    raise AssertionError("still open after 5 s")


@pytest.fixture
def gw(tls_gateway, tls_certs):
    return tls_gateway([tls_certs.pair("gw.test")],
                       listener={"timeouts": {"header": "%ds" % HEADER,
                                              "body": "5s",
                                              "keepalive": "10s"}})


def counts(gw):
    m = gw.metrics()
    listener = "127.0.0.1:%d" % gw.tls_port
    return {r: gwtest.metric(m, "portcullis_tls_handshakes_total",
                             listener=listener, result=r)
            for r in ("ok", "failed", "timeout")}


def test_silent_client(gw):
    s = socket.create_connection(("127.0.0.1", gw.tls_port))
    t0 = time.monotonic()
    try:
        took = closed_after(s, t0)
    finally:
        s.close()
    assert HEADER - 0.1 <= took <= HEADER + 0.7, \
        "closed after %.2fs, timeouts.header is %.0fs" % (took, HEADER)
    assert counts(gw) == {"ok": 0, "failed": 0, "timeout": 1}
    # the error log is written by a thread of its own: wait for the line
    lines = gwtest.wait_until(
        lambda: [l for l in gw.error_log().splitlines()
                 if "TLS handshake timed out" in l], 3,
        what="'TLS handshake timed out' in the error log")
    assert len(lines) == 1 and "127.0.0.1" in lines[0], lines
    # the gateway still serves
    r = gwtest.tls_request(gw.tls_port, "GET", "/static/small.txt")
    assert r.status == 200 and r.body == SMALL_TXT
    assert counts(gw) == {"ok": 1, "failed": 0, "timeout": 1}


def test_dribbling_client(gw):
    """Bytes that trickle in do not extend the handshake's deadline."""
    hello = gwtest.client_hello()
    s = socket.create_connection(("127.0.0.1", gw.tls_port))
    t0 = time.monotonic()
    try:
        took = closed_after(s, t0, dribble=hello)
    finally:
        s.close()
    assert HEADER - 0.1 <= took <= HEADER + 0.7, \
        "closed after %.2fs, timeouts.header is %.0fs" % (took, HEADER)
    assert counts(gw) == {"ok": 0, "failed": 0, "timeout": 1}
