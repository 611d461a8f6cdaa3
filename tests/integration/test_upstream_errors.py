"""Upstream failures the gateway answers itself: nothing listening -> 502
and recovery once it listens; accepts but never answers -> 504 after
read_timeout; resets -> 502. The gateway keeps serving other routes."""

import socket
import time

import pytest

import gwtest
from conftest import SMALL_TXT, free_port, upstream


def test_down_upstream_502_then_recovery(gateway, nginx_factory):
    port = free_port()  # nothing listens here yet
    gw = gateway({"static": upstream(port, connect_timeout="2s",
                                     read_timeout="3s")},
                 [{"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}])
    for i in range(3):
        t0 = time.monotonic()
        st, _, body = gwtest.get(gw.port, "/static/small.txt")
        assert st == 502, (st, body)
        assert time.monotonic() - t0 < 1.5, "a refused connect must fail fast"

    nginx = nginx_factory(port)
    st, _, body = gwtest.get(gw.port, "/static/small.txt?back=1")
    assert st == 200
    assert body == SMALL_TXT
    nginx.wait_for_uri("/small.txt?back=1")

    # and down again: the pooled keep-alive connection dies with nginx
    nginx.stop()
    st, _, _ = gwtest.get(gw.port, "/static/small.txt")
    assert st == 502


def test_silent_upstream_504_after_read_timeout(gateway, stub_factory,
                                                nginx):
    silent = stub_factory("silent")
    gw = gateway({"silent": upstream(silent.port, connect_timeout="1s",
                                     read_timeout="1s"),
                  "static": upstream(nginx.port)},
                 [{"name": "silent", "path": "/silent/", "upstream": "silent"},
                  {"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}])
    t0 = time.monotonic()
    st, _, _ = gwtest.get(gw.port, "/silent/x", timeout=10)
    took = time.monotonic() - t0
    assert st == 504
    assert 0.9 <= took < 2.0, "504 after %.2fs, read_timeout is 1s" % took
    heads = silent.log()
    assert [h["request_line"] for h in heads] == ["GET /silent/x HTTP/1.1"], \
        "a request that got no answer is not retried: %r" % heads
    # the access log names the server that timed out
    entry = gwtest.wait_until(
        lambda: [e for e in gw.access_log() if e["path"] == "/silent/x"],
        5, what="the access log entry of the 504")[0]
    assert (entry["status"], entry["route"], entry["upstream"]) == \
        (504, "silent", "127.0.0.1:%d" % silent.port), entry

    # other routes are unaffected, also while a silent request is pending
    with gwtest.RawConn(gw.port) as pending:
        pending.send(b"GET /silent/y HTTP/1.1\r\nHost: t\r\n\r\n")
        st, _, body = gwtest.get(gw.port, "/static/small.txt")
        assert st == 200 and body == SMALL_TXT
        r = pending.read_response()
        assert r.status == 504


def test_resetting_upstream_502(gateway, stub_factory):
    reset = stub_factory("reset")
    gw = gateway({"reset": upstream(reset.port)},
                 [{"name": "reset", "path": "/reset/", "upstream": "reset"}])
    st, _, _ = gwtest.get(gw.port, "/reset/x")
    assert st == 502
    entry = gwtest.wait_until(
        lambda: [e for e in gw.access_log() if e["path"] == "/reset/x"],
        5, what="the access log entry of the 502")[0]
    assert entry["upstream"] == "127.0.0.1:%d" % reset.port, entry
    # POST is not idempotent: it may not be sent twice
    before = len(reset.log())
    st, _, _ = gwtest.request(gw.port, "POST", "/reset/p", body=b"once")
    assert st == 502
    time.sleep(0.2)
    assert [h["request_line"] for h in reset.log()[before:]] == \
        ["POST /reset/p HTTP/1.1"]


def test_slow_upstream_within_read_timeout_is_200(gateway, stub_factory):
    slow = stub_factory("slow", delay=0.6, body_size=5000)
    gw = gateway({"slow": upstream(slow.port, read_timeout="2s")},
                 [{"name": "slow", "path": "/slow/", "upstream": "slow"}])
    st, _, body = gwtest.get(gw.port, "/slow/x")
    assert st == 200
    assert body == bytes(range(256)) * 19 + bytes(range(136))


def read_head(c):
    head = c._read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return head


def test_truncated_response_closes_client(gateway, stub_factory):
    """The upstream promises 1000 bytes, sends its head and 500 bytes and
    closes. Either the client gets a 502 (the upstream was gone before the
    request reached it; the client connection may then stay open), or the
    head and those 500 bytes and then a close; never nothing, never a
    hang."""
    raw = stub_factory("raw", response=b"HTTP/1.1 200 OK\r\n"
                       b"Content-Length: 1000\r\n\r\n" + b"t" * 500)
    gw = gateway({"raw": upstream(raw.port, read_timeout="5s")},
                 [{"name": "raw", "path": "/raw/", "upstream": "raw"}])
    with gwtest.RawConn(gw.port, timeout=3) as c:
        c.send(b"GET /raw/t HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            got = c._read_until(b"\r\n\r\n")
            if got.startswith(b"HTTP/1.1 502 "):
                return
            got += c.read_to_eof()
        except EOFError:
            raise AssertionError(
                "the gateway closed the client connection without sending a "
                "complete response head (got %r); expected 502, or the 200 "
                "head and 500 body bytes" % c.buf[:200])
        except OSError as e:
            raise AssertionError("client not closed 3s after the upstream "
                                 "cut the body short: %r" % e)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), got[:200]
    assert b"\r\ncontent-length: 1000" in head.lower()
    assert body == b"t" * 500


def test_stalled_response_closes_client_after_read_timeout(gateway,
                                                           stub_factory):
    raw = stub_factory("raw", hold=True,
                       response=b"HTTP/1.1 200 OK\r\nContent-Length: 1000"
                       b"\r\n\r\n" + b"s" * 500)
    gw = gateway({"raw": upstream(raw.port, read_timeout="1s")},
                 [{"name": "raw", "path": "/raw/", "upstream": "raw"}])
    with gwtest.RawConn(gw.port, timeout=4) as c:
        c.send(b"GET /raw/s HTTP/1.1\r\nHost: t\r\n\r\n")
        read_head(c)
        t0 = time.monotonic()
        try:
            body = c.read_to_eof()
        except OSError as e:
            raise AssertionError("client still open 4s into a stalled body "
                                 "with read_timeout 1s: %r" % e)
        took = time.monotonic() - t0
        assert body == b"s" * 500
        assert 0.8 <= took < 2.5, "closed %.1fs after the stall" % took


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 2OO OK\r\nContent-Length: 5\r\n\r\nhello",
    b"SSH-2.0-OpenSSH_9.2\r\n",
], ids=["bad_cl", "conflicting_cl", "bad_status", "not_http"])
def test_invalid_response_502(gateway, stub_factory, response):
    raw = stub_factory("raw", response=response)
    gw = gateway({"raw": upstream(raw.port, read_timeout="2s")},
                 [{"name": "raw", "path": "/raw/", "upstream": "raw"}])
    r = gwtest.raw_exchange(gw.port, b"GET /raw/x HTTP/1.1\r\nHost: t\r\n\r\n",
                            timeout=5)
    assert r.status == 502, r
    # counted as what it was, for the route and for the server
    m = gw.metrics()
    assert gwtest.metric(m, "portcullis_upstream_errors_total", route="raw",
                         reason="invalid_response") == 1
    assert gwtest.metric(m, "portcullis_upstream_server_errors_total",
                         upstream="raw", reason="invalid_response") == 1


def test_stale_keepalive_connection_is_retried_once(gateway, stub_factory):
    """The upstream drops a pooled connection just as the next request goes
    out on it. An idempotent request without a body is sent again on a new
    connection and the client never sees the race; a POST is not resent
    (it may have had effects) and gets 502."""
    once = stub_factory("once")
    gw = gateway({"once": upstream(once.port, keepalive=4)},
                 [{"name": "once", "path": "/once/", "upstream": "once"}],
                 workers=1)
    with gwtest.RawConn(gw.port) as c:
        for i in range(3):
            c.send(b"GET /once/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            r = c.read_response()
            assert (r.status, r.body) == (200, b"once\n"), (i, r)
    lines = [h["request_line"] for h in once.log()]
    # each request after the first reached the stub twice: on the stale
    # connection (dropped unanswered), then on a fresh one
    assert lines == ["GET /once/0 HTTP/1.1",
                     "GET /once/1 HTTP/1.1", "GET /once/1 HTTP/1.1",
                     "GET /once/2 HTTP/1.1", "GET /once/2 HTTP/1.1"], lines

    r = gwtest.raw_exchange(gw.port, b"POST /once/p HTTP/1.1\r\nHost: t\r\n"
                            b"Content-Length: 2\r\n\r\nhi")
    assert r.status == 502, r
    posts = [l for l in (h["request_line"] for h in once.log())
             if l.startswith("POST")]
    assert posts == ["POST /once/p HTTP/1.1"], posts
    m = gw.metrics()
    assert gwtest.metric(m, "portcullis_upstream_errors_total",
                         route="once", reason="reset") == 1


def test_connect_timeout_504(gateway):
    """An upstream whose accept queue is full: Linux drops the SYNs, so the
    connect hangs (on loopback, without any black hole). The gateway gives
    up after connect_timeout with 504 and says why."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)  # a queue of one, filled below, never accepted
    port = lsock.getsockname()[1]
    filler = socket.socket()
    filler.connect(("127.0.0.1", port))
    try:
        gw = gateway({"full": upstream(port, connect_timeout="1s",
                                       read_timeout="10s")},
                     [{"name": "full", "path": "/full/", "upstream": "full"}])
        t0 = time.monotonic()
        st, _, _ = gwtest.get(gw.port, "/full/x", timeout=10)
        took = time.monotonic() - t0
        assert st == 504
        assert 0.9 <= took < 3.0, "504 after %.2fs, connect_timeout 1s" % took
        gwtest.wait_until(lambda: "connect timeout before answering GET "
                          "/full/x" in gw.error_log(), 2, 0.05,
                          "the connect timeout in the error log")
        assert gwtest.metric(gw.metrics(), "portcullis_upstream_errors_total",
                             route="full", reason="timeout") == 1
    finally:
        filler.close()
        lsock.close()
