"""Client errors the gateway answers itself and never forwards: 408 for a
slowloris, 431, 414, 413, 400 for every smuggling-prone or malformed head
and every path the upstream would route differently (percent-encoded
unreserved characters or slashes, dot and empty segments);
and well-formed use of one connection: pipelining in order, keep-alive
reuse, the connection limit (503)."""

import http.client
import socket
import time

import pytest

import gwtest
from conftest import SMALL_TXT, upstream


@pytest.fixture
def gw(gateway, nginx):
    g = gateway({"static": upstream(nginx.port, keepalive=4)},
                [{"name": "static", "path": "/static/", "upstream": "static",
                  "strip_prefix": True, "max_body_size": "1k"}])
    g.nginx = nginx
    return g


def assert_nothing_forwarded(gw, before, marker):
    """nginx logged nothing since `before` lines but the marker request
    this sends now (so a late forward cannot hide)."""
    st, _, body = gwtest.get(gw.port, "/static/small.txt?marker=" + marker)
    assert st == 200 and body == SMALL_TXT
    gw.nginx.wait_for_uri("/small.txt?marker=" + marker)
    forwarded = [e["request"] for e in gw.nginx.access_log()[before:]]
    assert forwarded == ["GET /small.txt?marker=%s HTTP/1.1" % marker], \
        "nginx received: %r" % forwarded


def test_slowloris_408(gw):
    before = gw.nginx.count()
    head = b"GET /static/small.txt HTTP/1.1\r\nHost: slow.test\r\nX-A: b\r\n"
    with gwtest.RawConn(gw.port) as c:
        t0 = time.monotonic()
        got = b""
        for i in range(len(head)):
            try:
                c.send(head[i:i + 1])
            except OSError:
                pass  # closed under us; what it sent is still readable
            c.sock.settimeout(0.5)
            try:
                got = c.sock.recv(65536)
            except socket.timeout:
                continue
            break
        took = time.monotonic() - t0
        assert got, "no answer after %.1fs of one byte per 0.5s" % took
        c.buf = got
        c.sock.settimeout(5)
        r = c.read_response()
        assert r.status == 408, r
        assert 1.8 <= took < 3.5, "408 after %.1fs; header timeout is 2s" % took
        assert c.is_closed(2), "connection left open after 408"
    assert_nothing_forwarded(gw, before, "slowloris")


def test_idle_connection_without_request_is_closed(gw):
    """Connect and send nothing: closed within the header timeout (a 408
    may or may not be written first), not held open."""
    with gwtest.RawConn(gw.port) as c:
        t0 = time.monotonic()
        c.sock.settimeout(4)
        try:
            data = c.read_to_eof()
        except socket.timeout:
            pytest.fail("a connection that sent nothing is still open after "
                        "4s; the header timeout is 2s")
        took = time.monotonic() - t0
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data
        assert took < 3.5, "idle connection held %.1fs" % took


def test_header_too_large_431(gw):
    before = gw.nginx.count()
    r = gwtest.raw_exchange(gw.port, b"GET /static/small.txt HTTP/1.1\r\n"
                            b"Host: big.test\r\nX-Big: " + b"a" * 20000
                            + b"\r\n\r\n")
    assert r.status == 431, r
    # many small fields adding up to more than 16k
    r = gwtest.raw_exchange(gw.port, b"GET /static/small.txt HTTP/1.1\r\n"
                            b"Host: big.test\r\n"
                            + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 100)
                                       for i in range(200)) + b"\r\n")
    assert r.status == 431, r
    assert_nothing_forwarded(gw, before, "431")


def test_header_just_under_limit_passes(gw):
    st, _, body = gwtest.get(gw.port, "/static/small.txt?under=1",
                             headers={"X-Big": "a" * 12000})
    assert st == 200 and body == SMALL_TXT


def test_uri_too_long_414(gw):
    before = gw.nginx.count()
    r = gwtest.raw_exchange(gw.port, b"GET /static/" + b"a" * 9000
                            + b" HTTP/1.1\r\nHost: uri.test\r\n\r\n")
    assert r.status == 414, r
    assert_nothing_forwarded(gw, before, "414")
    # 7k is under the 8k limit: forwarded (nginx answers 404)
    st, _, _ = gwtest.get(gw.port, "/static/" + "b" * 7000)
    assert st == 404
    gw.nginx.wait_for_uri("/" + "b" * 7000)


def test_body_over_route_limit_413(gw):
    before = gw.nginx.count()
    r = gwtest.raw_exchange(gw.port, b"POST /static/small.txt HTTP/1.1\r\n"
                            b"Host: body.test\r\nContent-Length: 2048\r\n\r\n"
                            + b"x" * 2048)
    assert r.status == 413, r
    assert_nothing_forwarded(gw, before, "413")

    # 1000 bytes is under the 1k limit: forwarded (nginx refuses POST on a
    # static file with 405, after it got the body)
    before = gw.nginx.count()
    st, _, _ = gwtest.request(gw.port, "POST", "/static/small.txt?b=1000",
                              body=b"y" * 1000)
    assert st == 405
    e = gw.nginx.wait_for_uri("/small.txt?b=1000")
    assert e["content_length"] == "1000"


MALFORMED = {
    "cl_and_te": b"POST /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
                 b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "bad_cl": b"POST /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
              b"Content-Length: 5x\r\n\r\nhello",
    "negative_cl": b"POST /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
                   b"Content-Length: -1\r\n\r\n",
    "conflicting_cl": b"POST /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
                      b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "obs_fold": b"GET /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
                b"X-Folded: a\r\n  b\r\n\r\n",
    "space_before_colon": b"GET /static/small.txt HTTP/1.1\r\n"
                          b"Host: m.test\r\nX-A : b\r\n\r\n",
    "bare_lf": b"GET /static/small.txt HTTP/1.1\r\nHost: m.test\nX-A: b\r\n\r\n",
    "bare_cr": b"GET /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
               b"X-A: b\rc\r\n\r\n",
    "nul_in_value": b"GET /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
                    b"X-A: b\x00c\r\n\r\n",
    "bad_header_name": b"GET /static/small.txt HTTP/1.1\r\nHost: m.test\r\n"
                       b"X@A: b\r\n\r\n",
    "bad_method": b"G(T /static/small.txt HTTP/1.1\r\nHost: m.test\r\n\r\n",
    "no_host_http11": b"GET /static/small.txt HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET /static/small.txt HTTP/1.1\r\nHost: a.test\r\n"
                 b"Host: b.test\r\n\r\n",
    "space_in_target": b"GET /static/small .txt HTTP/1.1\r\nHost: m.test\r\n\r\n",
    # paths the upstream would read differently from the router (nginx
    # decodes and cleans them: /static/%73mall.txt is small.txt to it)
    "encoded_unreserved": b"GET /static/%73mall.txt HTTP/1.1\r\n"
                          b"Host: m.test\r\n\r\n",
    "encoded_slash": b"GET /static%2Fsmall.txt HTTP/1.1\r\nHost: m.test\r\n\r\n",
    "bad_percent": b"GET /static/small.txt%G1 HTTP/1.1\r\nHost: m.test\r\n\r\n",
    "dot_segment": b"GET /static/../static/small.txt HTTP/1.1\r\n"
                   b"Host: m.test\r\n\r\n",
    "empty_segment": b"GET /static//small.txt HTTP/1.1\r\nHost: m.test\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_400_not_forwarded(gw, name):
    before = gw.nginx.count()
    with gwtest.RawConn(gw.port) as c:
        c.send(MALFORMED[name])
        r = c.read_response()
        assert r.status == 400, r
        assert c.is_closed(3), "connection left open after a 400"
    assert_nothing_forwarded(gw, before, name)


def test_pipelined_requests_answered_in_order(gw, docroot):
    reqs = (b"GET /static/small.txt?p=1 HTTP/1.1\r\nHost: p.test\r\n\r\n"
            b"GET /static/64k.bin?p=2 HTTP/1.1\r\nHost: p.test\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: p.test\r\n\r\n"
            b"HEAD /static/1m.bin?p=4 HTTP/1.1\r\nHost: p.test\r\n\r\n"
            b"GET /static/small.txt?p=5 HTTP/1.1\r\nHost: p.test\r\n"
            b"Connection: close\r\n\r\n")
    with gwtest.RawConn(gw.port) as c:
        c.send(reqs)  # all at once, in one segment
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response("HEAD")
        r5 = c.read_response()
        assert c.is_closed(3)
    assert (r1.status, r1.body) == (200, SMALL_TXT)
    assert r2.status == 200 and r2.body == docroot.read("64k.bin")
    assert r3.status == 404
    assert r4.status == 200 and r4.header("content-length") == str(1024 * 1024)
    assert (r5.status, r5.body) == (200, SMALL_TXT)
    gw.nginx.wait_for_uri("/small.txt?p=5")  # logged after it answered
    uris = [e["request_uri"] for e in gw.nginx.access_log()]
    assert uris == ["/small.txt?p=1", "/64k.bin?p=2", "/1m.bin?p=4",
                    "/small.txt?p=5"]


def test_keepalive_reuse(gw):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    conn.connect()
    sock = conn.sock
    for i in range(5):
        conn.request("GET", "/static/small.txt?ka=%d" % i)
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == SMALL_TXT
        assert not r.will_close, "the gateway closed a keep-alive connection"
        assert conn.sock is sock
    conn.close()
    # one client connection, and one pooled upstream connection to nginx
    entries = gwtest.wait_until(
        lambda: [e for e in gw.nginx.access_log() if "ka=" in e["request_uri"]]
        if len(gw.nginx.access_log()) >= 5 else None, 5, what="5 nginx entries")
    assert len(entries) == 5
    assert len({e["connection"] for e in entries}) == 1, \
        "upstream keep-alive not used: %r" % [
            (e["connection"], e["connection_requests"]) for e in entries]

    # HTTP/1.0 without keep-alive: the gateway closes after the response
    with gwtest.RawConn(gw.port) as c:
        c.send(b"GET /static/small.txt HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == SMALL_TXT
        assert c.is_closed(3)


def hold_connections(port, n):
    """n client connections, each with one request answered 200."""
    held = []
    for i in range(n):
        c = gwtest.RawConn(port)
        held.append(c)
        c.send(b"GET /static/small.txt HTTP/1.1\r\nHost: mc.test\r\n\r\n")
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError) as e:
            for h in held:
                h.close()
            pytest.fail("connection %d of %d under the limit was refused: %r"
                        % (i + 1, n, e))
        assert r.status == 200, r
    return held


def test_over_max_connections_503(gateway, nginx):
    gw = gateway({"static": upstream(nginx.port)},
                 [{"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}], workers=1, max_connections=2)
    held = hold_connections(gw.port, 2)
    try:
        with gwtest.RawConn(gw.port) as c:
            c.send(b"GET /static/small.txt HTTP/1.1\r\nHost: mc.test\r\n\r\n")
            try:
                r = c.read_response()
            except (EOFError, ConnectionResetError) as e:
                pytest.fail("the connection over the limit got no 503: %r"
                            % e)
            assert r.status == 503, r
    finally:
        for c in held:
            c.close()

    # the slots come back once the held connections are gone
    def ok():
        try:
            st, _, _ = gwtest.get(gw.port, "/static/small.txt")
            return st == 200
        except OSError:
            return False
    gwtest.wait_until(ok, 5, 0.1, "a free connection slot")


def test_max_connections_is_process_wide(gateway, nginx):
    """config.h: max_connections counts client connections of the whole
    process, whichever worker accepted them."""
    gw = gateway({"static": upstream(nginx.port)},
                 [{"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}], workers=4, max_connections=16)
    # were the limit split per worker (16/4), SO_REUSEPORT's hash would
    # have to spread 16 connections exactly 4/4/4/4: a 1.5 % chance
    for c in hold_connections(gw.port, 16):
        c.close()


def test_expect_continue_over_limit_413_at_once(gw):
    """With Expect: 100-continue the client waits before sending the body;
    a Content-Length over the limit is answered 413 from the head alone."""
    before = gw.nginx.count()
    with gwtest.RawConn(gw.port, timeout=3) as c:
        c.send(b"POST /static/small.txt HTTP/1.1\r\nHost: e.test\r\n"
               b"Content-Length: 2048\r\nExpect: 100-continue\r\n\r\n")
        try:
            r = c.read_response()
        except OSError as e:
            pytest.fail("no answer to an over-limit Expect: 100-continue "
                        "head within 3s: %r" % e)
        assert r.status == 413, r
    assert_nothing_forwarded(gw, before, "expect413")


@pytest.fixture
def sink_gw(gateway, stub_factory):
    sink = stub_factory("sink")
    g = gateway({"sink": upstream(sink.port, read_timeout="5s")},
                [{"name": "sink", "path": "/up/", "upstream": "sink",
                  "max_body_size": "1k"}],
                listener={"timeouts": {"header": "2s", "body": "1s",
                                       "keepalive": "1s"}})
    g.sink = sink
    return g


def test_chunked_body_over_limit_413(sink_gw):
    chunk = b"3e8\r\n" + b"c" * 1000 + b"\r\n"
    with gwtest.RawConn(sink_gw.port, timeout=5) as c:
        c.send(b"POST /up/chunked HTTP/1.1\r\nHost: c.test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(4):
                c.send(chunk)
            c.send(b"0\r\n\r\n")
        except OSError:
            pass  # the gateway may stop reading once it has said 413
        r = c.read_response()
        assert r.status == 413, r
    # under the limit, chunked, goes through whole
    with gwtest.RawConn(sink_gw.port, timeout=5) as c:
        c.send(b"POST /up/small HTTP/1.1\r\nHost: c.test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert b'"length": 1000' in r.body


def test_stalled_body_408(sink_gw):
    with gwtest.RawConn(sink_gw.port, timeout=5) as c:
        c.send(b"POST /up/stall HTTP/1.1\r\nHost: b.test\r\n"
               b"Content-Length: 100\r\n\r\n" + b"x" * 10)
        t0 = time.monotonic()
        r = c.read_response()
        took = time.monotonic() - t0
        assert r.status == 408, r
        assert 0.8 <= took < 2.5, "408 after %.1fs, body timeout 1s" % took
        assert c.is_closed(2)


def test_idle_keepalive_closed_silently(sink_gw):
    with gwtest.RawConn(sink_gw.port, timeout=5) as c:
        c.send(b"POST /up/ka HTTP/1.1\r\nHost: k.test\r\n"
               b"Content-Length: 2\r\n\r\nok")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        c.sock.settimeout(4)
        try:
            rest = c.read_to_eof()
        except OSError:
            pytest.fail("idle keep-alive connection open 4s after its "
                        "response; keepalive timeout is 1s")
        took = time.monotonic() - t0
        assert rest == b"", "bytes on an idle keep-alive connection: %r" % rest
        assert 0.8 <= took < 2.5, "closed after %.1fs idle" % took
