"""trusted_proxies (issue 18): behind a load balancer, the client is the
one the balancer's X-Forwarded-For names -- read from the right, only as
far as the hops are listed proxies, and only on connections from a listed
proxy. That client is what the address lists, the brute-force guard, the
access log and X-Real-IP see. What the upstream received is read by h11
(tests/tools/h11_upstream.py), not by the gateway's own parser. Proxies
and clients are other addresses of 127.0.0.0/8."""


import pytest

from conftest import config_check, upstream

import gwtest

PROXY = "127.0.0.7"


def send(gw, path, source, xff=(), extra=()):
    headers = [("X-Forwarded-For", v) for v in xff] + list(extra)
    return gwtest.raw_request(gw.port, "GET", path, headers,
                              source_address=(source, 0))


def received(up, mark, tag):
    """The fields of the one request whose target has `tag`."""
    reqs = gwtest.wait_until(
        lambda: [e for e in up.since(mark, "request") if tag in e["target"]],
        10, what="request %s at the upstream" % tag)
    assert len(reqs) == 1, reqs
    fields = {}
    for n, v in reqs[0]["fields"]:
        fields.setdefault(n.lower(), []).append(v)
    return fields


def logged(gw, tag):
    return gwtest.wait_until(
        lambda: [e for e in gw.access_log() if tag in e["path"]],
        10, what="access log entry %s" % tag)[0]


@pytest.fixture
def gw(gateway, h11_upstream, tmp_path):
    users = tmp_path / "users"
    users.write_text(gwtest.htpasswd_line("u", "pw", "-B", "-C", "4") + "\n")
    return gateway(
        {"app": upstream(h11_upstream.port)},
        [{"name": "open", "path": "/open/", "upstream": "app"},
         {"name": "office", "path": "/office/", "upstream": "app",
          "allow": ["203.0.113.0/24", "2001:db8:1::/48"]},
         {"name": "admin", "path": "/admin/", "upstream": "app",
          "realm": "r"}],
        listener={"trusted_proxies": [PROXY, "10.0.0.0/8",
                                      "2001:db8:ffff::/48"]},
        realms={"r": {"htpasswd": str(users), "max_failures": 2,
                      "failure_window": "1h"}})


def test_the_proxy_names_the_client(gw, h11_upstream):
    m = h11_upstream.mark()
    r = send(gw, "/open/a?t=1", PROXY, ["203.0.113.9"])
    assert r.status == 200, r
    f = received(h11_upstream, m, "t=1")
    assert f["x-forwarded-for"] == ["203.0.113.9, " + PROXY]
    assert f["x-real-ip"] == ["203.0.113.9"]
    e = logged(gw, "t=1")
    assert e["client"] == "203.0.113.9" and e["proxy"] == PROXY, e


def test_what_the_client_wrote_is_not_read(gw, h11_upstream):
    """A client's own X-Forwarded-For goes through the proxy, which appends
    the address it saw: only that last hop is believed."""
    m = h11_upstream.mark()
    r = send(gw, "/open/a?t=2", PROXY, ["10.1.1.1, 203.0.113.9"])
    assert r.status == 200
    f = received(h11_upstream, m, "t=2")
    assert f["x-real-ip"] == ["203.0.113.9"]
    assert f["x-forwarded-for"] == ["203.0.113.9, " + PROXY]


def test_trusted_hops_are_walked(gw, h11_upstream):
    """Through two listed proxies (and two fields, read as one list, with
    ports and brackets as some balancers write them)."""
    m = h11_upstream.mark()
    r = send(gw, "/open/a?t=3", PROXY,
             ["198.51.100.4, [2001:db8:1::5]:4431", "10.2.3.4:80, 10.0.0.9"])
    assert r.status == 200
    f = received(h11_upstream, m, "t=3")
    assert f["x-real-ip"] == ["2001:db8:1::5"]
    assert f["x-forwarded-for"] == [
        "2001:db8:1::5, 10.2.3.4, 10.0.0.9, " + PROXY]


def test_an_unlisted_peer_is_its_own_client(gw, h11_upstream):
    m = h11_upstream.mark()
    r = send(gw, "/open/a?t=4", "127.0.0.8", ["203.0.113.9"])
    assert r.status == 200
    f = received(h11_upstream, m, "t=4")
    assert f["x-forwarded-for"] == ["127.0.0.8"]
    assert f["x-real-ip"] == ["127.0.0.8"]
    e = logged(gw, "t=4")
    assert e["client"] == "127.0.0.8" and e["proxy"] is None, e
    # and garbage from it is not read either
    assert send(gw, "/open/a?t=5", "127.0.0.8", ["not an address"]).status \
        == 200


def test_garbage_from_a_trusted_proxy_is_refused(gw, h11_upstream):
    m = h11_upstream.mark()
    for i, v in enumerate(["unknown", "203.0.113.9, bogus, 10.0.0.1",
                           "[2001:db8::1", "203.0.113.9:99999",
                           "fe80::1%eth0"]):
        r = send(gw, "/open/a?bad=%d" % i, PROXY, [v])
        assert r.status == 400, (v, r)
    # a member left of the client is never read, so it may be anything
    assert send(gw, "/open/a?t=6", PROXY,
                ["bogus, 203.0.113.9"]).status == 200
    h11_upstream.wait_quiet()
    assert not [e for e in h11_upstream.since(m, "request")
                if "bad=" in e["target"]]


def test_no_field_from_a_proxy_means_the_proxy(gw, h11_upstream):
    """Its own health check, say: and each request of a kept-alive
    connection names its own client."""
    m = h11_upstream.mark()
    c = gwtest.RawConn(gw.port, source_address=(PROXY, 0))
    try:
        c.send(b"GET /open/a?t=7 HTTP/1.1\r\nHost: gw.test\r\n"
               b"X-Forwarded-For: 203.0.113.1\r\n\r\n")
        assert c.read_response("GET").status == 200
        c.send(b"GET /open/a?t=8 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response("GET").status == 200
        c.send(b"GET /open/a?t=9 HTTP/1.1\r\nHost: gw.test\r\n"
               b"X-Forwarded-For: 203.0.113.2\r\n\r\n")
        assert c.read_response("GET").status == 200
    finally:
        c.close()
    assert received(h11_upstream, m, "t=7")["x-real-ip"] == ["203.0.113.1"]
    assert received(h11_upstream, m, "t=8")["x-real-ip"] == [PROXY]
    assert received(h11_upstream, m, "t=9")["x-real-ip"] == ["203.0.113.2"]


def test_lists_see_the_real_client(gw):
    assert send(gw, "/office/x", PROXY, ["203.0.113.50"]).status == 200
    assert send(gw, "/office/x", PROXY, ["2001:db8:1::77"]).status == 200
    assert send(gw, "/office/x", PROXY, ["198.51.100.50"]).status == 403
    # the proxy's own address is not in the office's list
    assert send(gw, "/office/x", PROXY).status == 403
    # and a client cannot talk its way in past the proxy
    assert send(gw, "/office/x", PROXY,
                ["203.0.113.50, 198.51.100.50"]).status == 403


def test_the_guard_throttles_the_client_not_the_proxy(gw):
    wrong = [("Authorization", gwtest.basic_auth("u", "wrong"))]
    right = [("Authorization", gwtest.basic_auth("u", "pw"))]
    for _ in range(2):
        assert send(gw, "/admin/x", PROXY, ["198.51.100.66"],
                    wrong).status == 401
    r = send(gw, "/admin/x", PROXY, ["198.51.100.66"], right)
    assert r.status == 429, r
    # another client behind the same proxy is not throttled
    assert send(gw, "/admin/x", PROXY, ["198.51.100.67"],
                right).status == 200
    assert send(gw, "/admin/x", PROXY, (), right).status == 200


@pytest.mark.parametrize("value,want", [
    ([], "listeners[0].trusted_proxies: must be a list of 1 to"),
    ("10.0.0.0/8", "listeners[0].trusted_proxies: must be a list of 1 to"),
    (["10.0.0.0/8", 7], "listeners[0].trusted_proxies[1]: must be a string"),
    (["10.1.0.0/8"], 'listeners[0].trusted_proxies[0]: "10.1.0.0/8":'),
    (["elb.example"], 'listeners[0].trusted_proxies[0]: "elb.example":'),
])
def test_config_errors(tmp_path, value, want):
    r = config_check(tmp_path, {"trusted_proxies": value})
    assert r.returncode == 1, r
    assert want in r.stderr, r.stderr
