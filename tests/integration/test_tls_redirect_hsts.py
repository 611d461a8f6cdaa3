"""A redirect_https listener answers every request with 308 to the same
host (its port replaced by https_port, left out when 443), path and query
over https, except GET /healthz (200). TLS listeners add
Strict-Transport-Security when tls.hsts_max_age is set, to every response,
the gateway's own included; never on plain HTTP, never when unset."""

import pytest

import gwtest
from conftest import SMALL_TXT, free_port


def raw(port, head, body=b""):
    return gwtest.raw_exchange(port, head.encode() + body,
                               method=head.split(" ", 1)[0])


@pytest.fixture
def gw(tls_gateway, tls_certs):
    return tls_gateway([tls_certs.pair("gw.test")],
                       tls={"hsts_max_age": "1d"},
                       redirect={"redirect_https": True})


@pytest.fixture
def gw_port(tls_gateway, tls_certs):
    """TLS on a chosen port and a redirect listener whose https_port names
    it; HSTS one day."""
    port = free_port()
    return tls_gateway([tls_certs.pair("gw.test")],
                       tls={"hsts_max_age": "1d"},
                       listener={"listen": "127.0.0.1:%d" % port},
                       redirect={"redirect_https": True, "https_port": port})


def test_redirect_to_https_port(gw_port):
    g = gw_port
    cases = [
        ("GET", "/prometheus/graph?x=1", "gw.test:%d" % g.plain_port,
         "https://gw.test:%d/prometheus/graph?x=1" % g.tls_port),
        ("GET", "/", "gw.test", "https://gw.test:%d/" % g.tls_port),
        ("HEAD", "/a/b?c=d&e", "gw.test:80",
         "https://gw.test:%d/a/b?c=d&e" % g.tls_port),
        ("GET", "/healthz/x", "gw.test:%d" % g.plain_port,
         "https://gw.test:%d/healthz/x" % g.tls_port),
    ]
    for method, path, host, location in cases:
        r = raw(g.plain_port, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (method, path, host))
        assert (r.status, r.header("location")) == (308, location), \
            (method, path, host, r.status, r.headers)
        assert r.header("strict-transport-security") is None, r.headers

    # POST keeps 308 (and so its method and body, RFC 9110 15.4.9)
    r = raw(g.plain_port, "POST /prometheus/api/v1/query?x=1 HTTP/1.1\r\n"
            "Host: gw.test:%d\r\nContent-Type: application/x-www-form-"
            "urlencoded\r\nContent-Length: 9\r\n\r\n" % g.plain_port,
            b"query=up1")
    assert r.status == 308, r
    assert r.header("location") == \
        "https://gw.test:%d/prometheus/api/v1/query?x=1" % g.tls_port
    assert r.header("strict-transport-security") is None

    # /healthz is answered, not redirected
    for target in ("/healthz",):
        r = raw(g.plain_port, "GET %s HTTP/1.1\r\nHost: gw.test\r\n\r\n"
                % target)
        assert r.status == 200, r
        assert r.header("location") is None
        assert r.header("strict-transport-security") is None
    # nothing went upstream
    assert g.nginx.count() == 0, g.nginx.access_log()


def test_redirect_ipv6_literal_host(gw_port):
    """An IPv6 literal's port is replaced too; its brackets stay."""
    g = gw_port
    for host, location in (
            ("[::1]:%d" % g.plain_port, "https://[::1]:%d/x" % g.tls_port),
            ("[::1]", "https://[::1]:%d/x" % g.tls_port)):
        r = raw(g.plain_port, "GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        assert (r.status, r.header("location")) == (308, location), \
            (host, r.status, r.headers)


def test_redirect_port_443_left_out(tls_gateway, tls_certs):
    g = tls_gateway([tls_certs.pair("gw.test")],
                    redirect={"redirect_https": True, "https_port": 443})
    for host in ("gw.test:%d" % g.plain_port, "gw.test"):
        r = raw(g.plain_port, "GET /prometheus/graph?x=1 HTTP/1.1\r\n"
                "Host: %s\r\n\r\n" % host)
        assert r.status == 308, r
        assert r.header("location") == "https://gw.test/prometheus/graph?x=1"
    # the default https_port is 443
    g2 = tls_gateway([tls_certs.pair("gw.test")],
                     redirect={"redirect_https": True})
    r = raw(g2.plain_port, "GET /a?b HTTP/1.1\r\nHost: gw.test:8080\r\n\r\n")
    assert (r.status, r.header("location")) == (308, "https://gw.test/a?b")


def hsts_of(r):
    return r.header_all("strict-transport-security")


def test_hsts_on_tls_responses(gw):
    # proxied
    r = gwtest.tls_request(gw.tls_port, "GET", "/static/small.txt")
    assert r.status == 200 and r.body == SMALL_TXT
    assert hsts_of(r) == ["max-age=86400"], r.headers
    # the upstream's own 404, passed on
    r = gwtest.tls_request(gw.tls_port, "GET", "/static/nope.txt")
    assert r.status == 404 and hsts_of(r) == ["max-age=86400"], r.headers
    # the gateway's own 404 (no route) and 400 (no Host)
    r = gwtest.tls_request(gw.tls_port, "GET", "/unrouted")
    assert r.status == 404 and hsts_of(r) == ["max-age=86400"], r.headers
    s = gwtest.tls_connect(gw.tls_port)
    with gwtest.RawConn.wrap(s) as c:
        c.send(b"GET /static/small.txt HTTP/1.1\r\n\r\n")
        r = c.read_response()
    assert r.status == 400 and hsts_of(r) == ["max-age=86400"], r.headers
    # the plain listener never sends it
    r = raw(gw.plain_port, "GET /healthz HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    assert r.status == 200 and hsts_of(r) == []


def test_no_hsts_by_default(tls_gateway, tls_certs):
    g = tls_gateway([tls_certs.pair("gw.test")],
                    redirect={"redirect_https": True})
    for path, status in (("/static/small.txt", 200), ("/unrouted", 404)):
        r = gwtest.tls_request(g.tls_port, "GET", path)
        assert r.status == status and hsts_of(r) == [], r.headers
    r = raw(g.plain_port, "GET /x HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    assert r.status == 308 and hsts_of(r) == []


def test_request_keeps_the_config_it_began_on(tls_gateway, tls_certs):
    # A request takes its config at its first byte: a reload that lands
    # while its head is still coming must not give it the new config's
    # HSTS (once, the answer mixed the request's config and the worker's
    # current one). One worker, so new connections see what it sees.
    g = tls_gateway([tls_certs.pair("gw.test")],
                    tls={"hsts_max_age": "1d"}, workers=1)
    first = gwtest.RawConn.wrap(gwtest.tls_connect(g.tls_port))
    try:
        first.send(b"GET /unrouted HTTP/1.1\r\nHo")
        # A whole exchange on a second connection: the worker has read
        # the first connection's bytes (they were readable before this
        # connection existed) before it answers this one.
        r = gwtest.tls_request(g.tls_port, "GET", "/unrouted")
        assert r.status == 404 and hsts_of(r) == ["max-age=86400"], r.headers

        cfg = dict(g.config)
        cfg["tls"] = dict(cfg["tls"], hsts_max_age="2d")
        g.reload(cfg)
        gwtest.wait_until(
            lambda: hsts_of(gwtest.tls_request(g.tls_port, "GET",
                                               "/unrouted"))
            == ["max-age=172800"], 10, what="the reload to take effect")

        first.send(b"st: gw.test\r\n\r\n")
        r = first.read_response()
        assert r.status == 404, r
        assert hsts_of(r) == ["max-age=86400"], r.headers
    finally:
        first.close()
