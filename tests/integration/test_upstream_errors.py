"""Upstream failures the gateway answers itself: nothing listening -> 502
and recovery once it listens; accepts but never answers -> 504 after
read_timeout; resets -> 502. The gateway keeps serving other routes."""

import time

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
