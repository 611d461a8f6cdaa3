"""Smuggling and desync regressions, one byte-exact scenario per defect:
what the client sends or the upstream answers, and what the other side
then gets, both read by h11 (tests/tools/h11_upstream.py upstream, an
h11.CLIENT client), with the raw bytes at hand for exact checks.

  1. a Connection option naming a field the gateway acts on
     (Content-Length, Transfer-Encoding, Host, Authorization,
     X-Forwarded-For, the route's user header) is a 400, nothing reaches
     the upstream; a custom option (x-foo) drops its field and Connection;
  2. an upstream response whose Connection names Content-Length or
     Transfer-Encoding is a 502, and a request pipelined behind it is not
     confused;
  3. framing is re-made, never passed through: Content-Length without
     leading zeros, chunks without leading zeros or extensions, no trailers
     (none of Content-Length, Transfer-Encoding, Host, the user header) and
     no Trailer field, both ways; Transfer-Encoding other than chunked from
     an upstream is a 502;
  4. underscored field names (X-WEBAUTH_USER) never reach the upstream;
  5. a chunked body over max_body_size is a 413 and the upstream never
     gets more than the limit, nor a complete body;
  6. an HTTP/1.0 client never gets Transfer-Encoding;
  7. garbage (a NUL, a TLS ClientHello) on the plain port is an immediate
     400, not a 408 after the header timeout;
  8. an upstream response with 150 fields is passed on whole;
  9. TRACE is a 405 with Allow; backslashes and ";" dot segments in a path
     are a 400, on plain and strip_prefix routes;
 10. redirects keep their whole Location and a terminated head: the
     trailing-slash 301 with a long query, the redirect_https 308 with a
     long Host and path."""

import secrets
import socket

import pytest

import gwtest
from conftest import make_config, upstream
from h11check import (USER, USER_HEADER, H11Client, chunked_scan,
                      framing_problems, routes, show, split_head,
                      start_gateway, users_file, values)

TIMEOUTS = {"header": "30s", "body": "5s", "keepalive": "10s"}
SMUGGLED = b"GET /admin/secret HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture
def password():
    return "pw-" + secrets.token_urlsafe(12)


@pytest.fixture
def gw(gateway, h11_upstream, tmp_path, password):
    """The three routes (see h11check.routes) with a 30 s header timeout,
    so a 408 cannot pass for an immediate answer."""
    g = start_gateway(gateway, h11_upstream, tmp_path, password,
                      listener={"timeouts": TIMEOUTS})
    g.password = password
    return g


def authz(gw):
    return "Authorization: %s\r\n" % gwtest.basic_auth(USER, gw.password)


FOLLOW = "/public/__follow"


class Exchange:
    """One connection's answers and what the upstream logged meanwhile.
    `data` holds len(methods) requests; then, if the connection is still
    open, a well-formed follow-up request, which must get its own answer
    from the upstream (a request smuggled before it would show)."""

    def __init__(self, gw, data, methods=("GET",), version="1.1",
                 follow=True):
        up = gw.up
        mark = up.mark()
        self.sent = data
        self.responses = []
        self.follow = None
        self.followed = False
        self.timed_out = False
        self.closed = None
        with H11Client(gw.port) as c:
            c.send(data)
            try:
                for m in methods:
                    r = c.read_response(m, version)
                    self.responses.append(r)
                    if r is None or not c.can_send_more():
                        break
                if c.can_send_more():
                    if follow:
                        self.followed = True
                        c.send(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n"
                               % FOLLOW.encode())
                        self.follow = c.read_response()
                else:
                    self.closed = c.closed_soon()
            except socket.timeout:
                self.timed_out = True
                self.responses.append(None)
            self.received = bytes(c.received)
        up.wait_quiet()
        self.events = up.since(mark)
        self.requests = [e for e in self.events if e["event"] == "request"
                         and e["target"] != FOLLOW]
        self.errors = [e for e in self.events if e["event"] == "error"]
        self.raw = [up.raw(e) for e in self.requests + self.errors]
        self.r = self.responses[0]
        if self.followed:
            doc = self.follow.json() if self.follow is not None else None
            assert doc is not None and doc.get("target") == FOLLOW, \
                "the follow-up request did not get its own answer\n" + \
                self.describe()

    def describe(self):
        return "client sent %s%s\nclient got %s%s\nupstream got %s\n%s" % (
            show(self.sent), " and a follow-up request" if self.followed
            else "", show(self.received),
            " (then nothing for 10 s)" if self.timed_out else "",
            [show(x, 800) for x in self.raw],
            "\n".join("upstream error: " + e["error"] for e in self.errors))

    def assert_refused(self, status):
        assert self.r is not None and self.r.status == status, \
            "want %d\n%s" % (status, self.describe())
        assert self.r.upstream_id() is None, self.describe()
        assert not self.requests and not self.errors, \
            "the upstream got bytes of a refused request\n" + self.describe()

    def one_request(self):
        """The only request the upstream got (after a 200 from it)."""
        assert self.r is not None and self.r.status == 200 \
            and self.r.upstream_id() is not None, self.describe()
        assert len(self.requests) == 1 and not self.errors, \
            "want exactly one request upstream\n" + self.describe()
        return self.requests[0]


def post(target, fields, body=b"", extra=""):
    """A POST with Host, the raw `extra` lines, then `fields`, then body."""
    head = "POST %s HTTP/1.1\r\nHost: a\r\n%s" % (target, extra)
    head += "".join("%s: %s\r\n" % f for f in fields) + "\r\n"
    return head.encode() + body


# ---------------------------------------------- 1. Connection options


def test_connection_content_length_smuggles_nothing(gw):
    data = (b"POST /public HTTP/1.1\r\nHost: a\r\n"
            b"Connection: content-length\r\nContent-Length: 39\r\n\r\n"
            + SMUGGLED)
    Exchange(gw, data, ("POST",)).assert_refused(400)


CONNECTION_400 = {
    # option: (target, authorized, fields, body)
    "content-length": ("/public/x", False, [("Content-Length", "39")],
                       SMUGGLED),
    "host": ("/public/x", False, [], b""),
    "transfer-encoding": ("/public/x", False,
                          [("Transfer-Encoding", "chunked")],
                          b"5\r\nhello\r\n0\r\n\r\n"),
    "authorization": ("/admin/x", True, [], b""),
    "x-forwarded-for": ("/public/x", False,
                        [("X-Forwarded-For", "10.9.8.7")], b""),
    "x-webauth-user": ("/admin/x", True, [(USER_HEADER, "root")], b""),
}


@pytest.mark.parametrize("option", sorted(CONNECTION_400))
def test_connection_option_on_managed_field_400(gw, option):
    target, authorized, fields, body = CONNECTION_400[option]
    data = post(target, [("Connection", option)] + fields, body,
                authz(gw) if authorized else "")
    Exchange(gw, data, ("POST",)).assert_refused(400)


def test_connection_custom_option_drops_its_field(gw):
    x = Exchange(gw, b"GET /public/x HTTP/1.1\r\nHost: a\r\n"
                 b"Connection: x-foo\r\nX-Foo: secret\r\nX-Bar: kept\r\n\r\n")
    ev = x.one_request()
    assert values(ev["fields"], "x-foo") == [], x.describe()
    assert values(ev["fields"], "connection") == [], x.describe()
    assert values(ev["fields"], "x-bar") == ["kept"], x.describe()


# ------------------------------- 2. Connection options in a response


def raw_request(gw, name, response, target="/public/raw", version="1.1"):
    """A request whose answer is `response`, verbatim, from the upstream."""
    gw.up.add_raw(name, response)
    return ("GET %s HTTP/%s\r\nHost: a\r\nX-Test-Response: raw:%s\r\n\r\n"
            % (target, version, name)).encode()


UPSTREAM_CONNECTION = {
    "content-length": b"HTTP/1.1 200 OK\r\nConnection: content-length\r\n"
                      b"Content-Length: 5\r\n\r\nhello",
    "transfer-encoding": b"HTTP/1.1 200 OK\r\n"
                         b"Connection: transfer-encoding\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("option", sorted(UPSTREAM_CONNECTION))
def test_upstream_connection_option_on_framing_502(gw, option):
    after = b"GET /public/after HTTP/1.1\r\nHost: a\r\n\r\n"
    x = Exchange(gw, raw_request(gw, "conn-" + option,
                                 UPSTREAM_CONNECTION[option]) + after,
                 ("GET", "GET"), follow=False)
    assert x.r is not None and x.r.status == 502, x.describe()
    assert x.r.upstream_id() is None, x.describe()
    if len(x.responses) > 1 and x.responses[1] is not None:
        doc = x.responses[1].json() or {}
        assert doc.get("target") == "/public/after", \
            "the pipelined request got another answer\n" + x.describe()
    else:
        assert x.closed, "neither closed nor answered\n" + x.describe()


# ----------------------------------------------------- 3. re-framing


def test_content_length_leading_zeros_reframed(gw):
    x = Exchange(gw, post("/public/cl", [("Content-Length", "010")],
                          b"0123456789"), ("POST",))
    ev = x.one_request()
    head, body = split_head(x.raw[0])
    assert values(ev["fields"], "content-length") == ["10"], x.describe()
    assert values(ev["fields"], "transfer-encoding") == [], x.describe()
    assert body == b"0123456789", x.describe()


def assert_chunks_reframed(head_fields, body_raw, data, what):
    """body_raw is a chunked body without leading zeros, extensions or
    trailers that decodes to data."""
    got, lines, trailers, complete = chunked_scan(body_raw)
    msg = "%s: %s" % (what, show(body_raw))
    assert complete and got == data, msg
    for line in lines[:-1]:
        assert line[:1] != b"0" and b";" not in line and \
            int(line, 16) > 0, "chunk size line %r\n%s" % (line, msg)
    assert lines[-1] == b"0" and trailers == [], msg
    assert body_raw.endswith(b"\r\n0\r\n\r\n"), msg
    assert values(head_fields, "trailer") == [], "Trailer field\n" + msg


def test_chunk_sizes_and_extensions_reframed(gw):
    body = (b"0000a\r\n0123456789\r\n"
            b"a;foo=bar\r\nabcdefghij\r\n"
            b"0\r\n\r\n")
    x = Exchange(gw, post("/public/chunks",
                          [("Transfer-Encoding", "chunked")], body),
                 ("POST",))
    ev = x.one_request()
    _, raw_body = split_head(x.raw[0])
    assert_chunks_reframed(ev["fields"], raw_body,
                           b"0123456789abcdefghij", "upstream got")


def test_request_trailers_never_reach_upstream(gw):
    body = (b"a\r\n0123456789\r\n0\r\n"
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
            b"Host: evil.test\r\nX-WEBAUTH-USER: root\r\nX-Trailer: ok\r\n"
            b"\r\n")
    x = Exchange(gw, post("/admin/trailers", [
        ("Transfer-Encoding", "chunked"),
        ("Trailer", "Content-Length, Transfer-Encoding, Host, "
                    "X-WEBAUTH-USER, X-Trailer")], body, authz(gw)),
        ("POST",))
    if x.r is None or x.r.upstream_id() is None:
        # refusing them is fine too, if nothing went up
        assert not x.requests and not x.errors, x.describe()
        return
    ev = x.one_request()
    _, raw_body = split_head(x.raw[0])
    assert_chunks_reframed(ev["fields"], raw_body, b"0123456789",
                           "upstream got")
    assert ev["trailers"] == [], x.describe()
    assert values(ev["fields"], USER_HEADER) == [USER], x.describe()
    assert values(ev["fields"], "host") == ["a"], x.describe()


def test_response_chunks_reframed_without_trailers(gw):
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"0000a;foo=bar\r\n0123456789\r\n"
                b"5;x\r\nhello\r\n"
                b"0;last=1\r\nContent-Length: 5\r\nX-T: 1\r\n\r\n")
    x = Exchange(gw, raw_request(gw, "chunked-resp", response))
    assert x.r is not None and x.r.status == 200, x.describe()
    head, raw_body = split_head(x.r.raw)
    assert_chunks_reframed(x.r.fields, raw_body, b"0123456789hello",
                           "client got")


def test_response_content_length_leading_zeros_reframed(gw):
    x = Exchange(gw, raw_request(gw, "cl-zeros", b"HTTP/1.1 200 OK\r\n"
                                 b"Content-Length: 010\r\n\r\n0123456789"))
    assert x.r is not None and x.r.status == 200, x.describe()
    assert values(x.r.fields, "content-length") == ["10"], x.describe()
    assert x.r.body == b"0123456789", x.describe()


@pytest.mark.parametrize("coding", ["gzip, chunked", "gzip"])
def test_upstream_transfer_coding_other_than_chunked_502(gw, coding):
    body = b"5\r\nhello\r\n0\r\n\r\n" if coding.endswith("chunked") \
        else b"hello"
    response = ("HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n"
                % coding).encode() + body
    gw.up.add_raw("te", response)
    x = Exchange(gw, b"GET /public/te HTTP/1.1\r\nHost: a\r\n"
                 b"X-Test-Response: rawclose:te\r\n\r\n")
    assert x.r is not None and x.r.status == 502, x.describe()


# --------------------------------------------- 4. underscored names


def test_underscored_fields_never_reach_upstream(gw):
    x = Exchange(gw, ("GET /admin/u HTTP/1.1\r\nHost: a\r\n%s"
                      "X-WEBAUTH_USER: root\r\nX_WEBAUTH_USER: root\r\n"
                      "x-webauth_user: root\r\nX_Forwarded_For: 6.6.6.6\r\n"
                      "Content_Length: 5\r\n\r\n" % authz(gw)).encode())
    ev = x.one_request()
    assert [n for n, _ in ev["fields"] if "_" in n] == [], x.describe()
    assert values(ev["fields"], USER_HEADER) == [USER], x.describe()


# ------------------------------------------------ 5. body over limit


@pytest.fixture
def small_gw(gateway, h11_upstream, tmp_path, password):
    """max_body_size 1k on every route; one worker, so the upstream
    connection a first request leaves in the pool is the next one's."""
    return start_gateway(gateway, h11_upstream, tmp_path, password,
                         listener={"timeouts": TIMEOUTS},
                         max_body_size="1k", workers=1)


def test_chunked_body_over_limit_413_upstream_gets_at_most_limit(small_gw):
    # a connected upstream connection waits in the pool: the body can go
    # up as fast as it comes in
    Exchange(small_gw, b"GET /public/warm HTTP/1.1\r\nHost: a\r\n\r\n"
             ).one_request()
    chunk = b"320\r\n" + b"c" * 800 + b"\r\n"
    data = post("/public/big", [("Transfer-Encoding", "chunked")],
                chunk * 3 + b"0\r\n\r\n")
    x = Exchange(small_gw, data, ("POST",))
    assert x.r is not None and x.r.status == 413, x.describe()
    assert not x.requests, "the upstream got a complete body\n" + \
        x.describe()
    for raw in x.raw:
        _, body = split_head(raw)
        got, _, _, complete = chunked_scan(body)
        assert len(got) <= 1024 and not complete, \
            "the upstream got %d body bytes%s\n%s" % (
                len(got), " and the last chunk" if complete else "",
                x.describe())


# ------------------------------------------ 6. HTTP/1.0 and chunked


def test_http10_client_never_gets_chunked(gw):
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    x = Exchange(gw, raw_request(gw, "chunked10", response, version="1.0"),
                 version="1.0")
    assert x.r is not None and x.r.status == 200, x.describe()
    assert values(x.r.fields, "transfer-encoding") == [], x.describe()
    assert x.r.body == b"hello world", x.describe()
    assert x.closed, "connection left open\n" + x.describe()


# --------------------------------------- 7. garbage on the plain port


@pytest.mark.parametrize("kind", ["nul", "client-hello"])
def test_garbage_is_400_at_once(gw, kind):
    data = b"\x00x" if kind == "nul" else gwtest.client_hello()
    with H11Client(gw.port, timeout=10) as c:
        c.send(data)
        try:
            r = c.read_response()
        except socket.timeout:
            pytest.fail("no answer to %r within 10 s (the header timeout "
                        "is 30 s)" % data[:8], pytrace=False)
    assert r is not None and r.status == 400, \
        "%r: %s" % (data[:8], show(bytes(c.received)))


# --------------------------------------- 8. many fields in a response


def test_upstream_response_with_150_fields_passes(gw):
    fields = [("X-F-%03d" % i, "v%03d-" % i + "x" * 40) for i in range(150)]
    response = b"HTTP/1.1 200 OK\r\n" + b"".join(
        ("%s: %s\r\n" % f).encode() for f in fields) + \
        b"Content-Length: 2\r\n\r\nok"
    assert len(response) < 64 * 1024
    x = Exchange(gw, raw_request(gw, "many", response))
    assert x.r is not None and x.r.status == 200, x.describe()
    got = [(n, v) for n, v in x.r.fields if n.startswith("X-F-")]
    assert got == fields, "%d of 150 fields\n%s" % (len(got), x.describe())
    assert x.r.body == b"ok"


# ----------------------------------------------- 9. methods and paths


def test_trace_405_with_allow(gw):
    x = Exchange(gw, b"TRACE /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
    x.assert_refused(405)
    assert values(x.r.fields, "allow"), "no Allow field\n" + x.describe()


PATHS_400 = {"dotdot-backslash": "/%s/..\\admin",
             "backslash": "/%s\\admin",
             "dotdot-semicolon": "/%s/..;/admin/secret",
             "dot-semicolon": "/%s/.;/x"}


@pytest.mark.parametrize("route", ["public", "strip"])
@pytest.mark.parametrize("path", sorted(PATHS_400))
def test_ambiguous_path_400(gw, route, path):
    target = PATHS_400[path] % route
    x = Exchange(gw, ("GET %s HTTP/1.1\r\nHost: a\r\n\r\n"
                      % target).encode())
    x.assert_refused(400)


# ------------------------------------------------------ 10. redirects


def test_trailing_slash_redirect_keeps_long_query(gw):
    query = "q=" + "x" * 700
    x = Exchange(gw, ("GET /admin?%s HTTP/1.1\r\nHost: a\r\n\r\n"
                      % query).encode())
    x.assert_refused(301)
    assert values(x.r.fields, "location") == ["/admin/?" + query], \
        x.describe()


@pytest.fixture
def redirect_gw(gateway, h11_upstream, tmp_path, password):
    """A redirect_https listener (https_port 443) next to the usual one."""
    users = users_file(tmp_path / "users.htpasswd", password)
    cfg = make_config(gateway.free_port(), gateway.free_port(),
                      {"h11": upstream(h11_upstream.port)}, routes(),
                      {"timeouts": TIMEOUTS},
                      realms={"main": {"htpasswd": str(users),
                                       "max_failures": 0}})
    port = gateway.free_port()
    cfg["listeners"].append({"listen": "127.0.0.1:%d" % port,
                             "redirect_https": True,
                             "timeouts": TIMEOUTS})
    g = gateway.start_config(cfg)
    g.up = h11_upstream
    g.redirect_port = port
    return g


def long_host(n):
    """n bytes of valid host characters: labels of 63 letters and dots."""
    labels = []
    while sum(len(l) + 1 for l in labels) < n + 1:
        labels.append(chr(ord("a") + len(labels) % 26) * 63)
    host = ".".join(labels)[:n]
    return host if not host.endswith(".") else host[:-1] + "z"


@pytest.mark.parametrize("host_len,path_len", [(200, 7000), (1200, 8000)])
def test_https_redirect_keeps_long_host_and_path(redirect_gw, host_len,
                                                 path_len):
    """The second size makes a Location of over 9000 bytes (the target
    is still under max_uri_size, the head under max_header_size)."""
    host = long_host(host_len)
    path = "/" + "p" * (path_len - 1)
    assert (len(host), len(path)) == (host_len, path_len)
    data = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode()
    with H11Client(redirect_gw.redirect_port) as c:
        c.send(data)
        r = c.read_response()
    assert r is not None and r.status == 308, show(bytes(c.received))
    assert values(r.fields, "location") == ["https://%s%s" % (host, path)], \
        show(r.raw_head)
    assert not framing_problems(r.fields, len(r.body)), show(r.raw_head)
