"""Requests that end badly are accounted (issue 24, item 1): an upstream
that dies mid-response (a short Content-Length body then FIN or RST, a
chunked body with no last chunk, silence past read_timeout), a client that
leaves (before the head, in the middle of the body) and a client that
stops reading: each ends in exactly one access-log line and one count,
with a reason; a response the upstream broke counts as a 502, so the
availability SLI (portcullis_http_responses_total{class="5xx"}) sees it."""

import socket
import struct
import time

import pytest

from conftest import upstream

import gwtest

BIG = 1000000


def truncated_head(n):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % BIG) + b"x" * n


def counts(gw, route):
    """The route's responses by class and incomplete requests by reason
    (those above zero)."""
    m = gw.metrics()
    out = {k: gwtest.metric(m, "portcullis_http_responses_total",
                            route=route, **{"class": k})
           for k in ("2xx", "4xx", "5xx")}
    out["incomplete"] = {
        labels["reason"]: value for labels, value in gwtest.samples_named(
            m, "portcullis_http_requests_incomplete_total", route=route)
        if value}
    return out


def one_line(gw, tag):
    lines = gwtest.wait_until(
        lambda: [e for e in gw.access_log() if tag in e["path"]], 10,
        what="the access log line of %s" % tag)
    time.sleep(0.2)  # a second line would come right after the first
    lines = [e for e in gw.access_log() if tag in e["path"]]
    assert len(lines) == 1, lines
    return lines[0]


def read_all(sock):
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


@pytest.mark.parametrize("case,reason", [
    ("fin", "upstream_truncated"),
    ("rst", "upstream_reset"),
    ("chunked", "upstream_truncated"),
])
def test_the_upstream_breaks_the_response(gateway, stub_factory, case,
                                          reason):
    if case == "chunked":
        stub = stub_factory("raw", response=(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"186a0\r\n" + b"y" * 100000 + b"\r\n"))
    else:
        stub = stub_factory("raw", response=truncated_head(100000),
                            rst=case == "rst")
    gw = gateway({"app": upstream(stub.port)},
                 [{"name": "app", "path": "/", "upstream": "app"}])
    before = counts(gw, "app")
    with socket.create_connection(("127.0.0.1", gw.port), 10) as s:
        s.settimeout(10)
        s.sendall(b"GET /big?t=%s HTTP/1.1\r\nHost: gw\r\n\r\n"
                  % case.encode())
        data = read_all(s)
    # the client saw a 200 head and a body cut short
    assert data.startswith(b"HTTP/1.1 200 ")
    assert 100000 <= len(data) < BIG
    e = one_line(gw, "t=" + case)
    assert e["status"] == 502 and e["reason"] == reason, e
    assert e["bytes_out"] >= 100000 and e["upstream"] is not None
    after = gwtest.wait_until(
        lambda: (lambda c: c if c["5xx"] == before["5xx"] + 1 else None)(
            counts(gw, "app")), 10, what="the 5xx count")
    assert after["2xx"] == before["2xx"]
    assert after["incomplete"] == {reason: 1}, after


def test_upstream_silent_mid_body(gateway, stub_factory):
    stub = stub_factory("raw", response=truncated_head(5000), hold=True)
    gw = gateway({"app": upstream(stub.port, read_timeout="1s")},
                 [{"name": "app", "path": "/", "upstream": "app"}])
    with socket.create_connection(("127.0.0.1", gw.port), 10) as s:
        s.settimeout(15)
        s.sendall(b"GET /big?t=silent HTTP/1.1\r\nHost: gw\r\n\r\n")
        data = read_all(s)
    assert data.startswith(b"HTTP/1.1 200 ") and len(data) < BIG
    e = one_line(gw, "t=silent")
    assert e["status"] == 502 and e["reason"] == "upstream_timeout", e
    assert counts(gw, "app")["incomplete"] == {"upstream_timeout": 1}


@pytest.fixture
def big(gateway, stub_factory):
    stub = stub_factory("slow", delay=0, body_size=64 * 1024 * 1024)
    late = stub_factory("slow", delay=3, body_size=16)
    return gateway({"app": upstream(stub.port), "late": upstream(late.port)},
                   [{"name": "app", "path": "/", "upstream": "app"},
                    {"name": "late", "path": "/late/", "upstream": "late"}],
                   listener={"timeouts": {"header": "5s", "body": "1s",
                                          "keepalive": "10s"}})


def test_the_client_leaves_mid_body(big):
    with socket.create_connection(("127.0.0.1", big.port), 10) as s:
        s.sendall(b"GET /x?t=leave HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200 ")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    e = one_line(big, "t=leave")
    assert e["status"] == 200 and e["reason"] == "client_aborted", e
    assert e["bytes_out"] < 64 * 1024 * 1024
    c = counts(big, "app")
    assert c["incomplete"] == {"client_aborted": 1} and c["5xx"] == 0


def test_the_client_leaves_before_the_head(big):
    with socket.create_connection(("127.0.0.1", big.port), 10) as s:
        s.sendall(b"GET /late/x?t=early HTTP/1.1\r\nHost: gw\r\n\r\n")
        time.sleep(0.5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    e = one_line(big, "t=early")
    assert e["status"] == 499 and e["reason"] == "client_aborted", e
    c = counts(big, "late")
    assert c["incomplete"] == {"client_aborted": 1}
    assert c["4xx"] == 1 and c["5xx"] == 0


def test_the_client_stops_reading(big):
    with socket.create_connection(("127.0.0.1", big.port), 10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /x?t=stall HTTP/1.1\r\nHost: gw\r\n\r\n")
        e = one_line(big, "t=stall")
    assert e["status"] == 200 and e["reason"] == "send_timeout", e
    assert counts(big, "app")["incomplete"] == {"send_timeout": 1}


def test_a_whole_response_has_no_reason(big):
    with socket.create_connection(("127.0.0.1", big.port), 10) as s:
        s.settimeout(15)
        s.sendall(b"GET /late/x?t=whole HTTP/1.1\r\nHost: gw\r\n"
                  b"Connection: close\r\n\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 200 ")
    e = one_line(big, "t=whole")
    assert e["status"] == 200 and e["reason"] is None
    assert counts(big, "late")["incomplete"] == {}
