"""Response headers a front door sets (issue 18, the "headers" policy of a
listener or route): `set` replaces the upstream's field of that name,
`add` adds beside it, `remove` drops it; the gateway's own answers (404,
401, 502, redirects) get `set` and `add` too. A route with its own
"headers" uses those instead of the listener's (as nginx's add_header
does). The upstream answers with exact bytes (h11_upstream's raw
responses); the client reads with h11, a parser that is not ours."""


import pytest

from conftest import config_check, upstream
from test_root_redirect import h11_exchange

import gwtest

UPSTREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: upstream-srv/1.0\r\n"
    b"X-Frame-Options: SAMEORIGIN\r\n"
    b"x-powered-by: php\r\n"
    b"Cache-Control: no-store\r\n"
    b"Content-Length: 5\r\n\r\nhello")

LISTENER_HEADERS = {
    "set": {"X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"},
    "add": {"Cache-Control": "private"},
    "remove": ["Server", "X-Powered-By"],
}


def fields(resp, name):
    return [v.decode() for n, v in resp.headers if n == name.lower().encode()]


@pytest.fixture
def gw(gateway, h11_upstream, tmp_path):
    h11_upstream.add_raw("ok", UPSTREAM_RESPONSE)
    users = tmp_path / "users"
    users.write_text(gwtest.htpasswd_line("u", "a password", "-B", "-C", "4")
                     + "\n")
    dead = gateway.free_port()
    return gateway(
        {"up": upstream(h11_upstream.port), "dead": upstream(dead)},
        [{"name": "app", "path": "/app/", "upstream": "up"},
         {"name": "own", "path": "/own/", "upstream": "up",
          "headers": {"set": {"X-Route": "own"}}},
         {"name": "locked", "path": "/locked/", "upstream": "up",
          "realm": "r"},
         {"name": "gone", "path": "/gone/", "upstream": "dead"},
         {"name": "named", "path": "/named/", "upstream": "up",
          "headers": {"set": {"Server": "front-door"}}},
         {"name": "named-gone", "path": "/named-gone/", "upstream": "dead",
          "headers": {"set": {"Server": "front-door"}}}],
        listener={"headers": LISTENER_HEADERS, "root_redirect": "/app/"},
        realms={"r": {"htpasswd": str(users)}})


def get(gw, path, raw=True):
    return h11_exchange(gw.port, "GET", path,
                        headers=[("X-Test-Response", "raw:ok")] if raw
                        else [])


def assert_listener_policy(resp, what):
    assert fields(resp, "X-Frame-Options") == ["DENY"], (what, resp.headers)
    assert fields(resp, "X-Content-Type-Options") == ["nosniff"], what
    assert fields(resp, "Referrer-Policy") == ["no-referrer"], what
    assert "private" in fields(resp, "Cache-Control"), what
    assert fields(resp, "Server") == [] and \
        fields(resp, "X-Powered-By") == [], (what, resp.headers)


def test_forwarded_response(gw):
    resp, body = get(gw, "/app/x")
    assert resp.status_code == 200 and body == b"hello"
    assert_listener_policy(resp, "forwarded 200")
    # set replaced the upstream's SAMEORIGIN; add kept its no-store
    assert fields(resp, "Cache-Control") == ["no-store", "private"]


def test_the_gateways_own_answers(gw):
    for path, status in [("/nothing", 404), ("/locked/x", 401),
                         ("/gone/x", 502), ("/app", 301), ("/", 302)]:
        resp, _ = get(gw, path, raw=False)
        assert resp.status_code == status, (path, resp)
        assert_listener_policy(resp, "%s %d" % (path, status))
        assert fields(resp, "Cache-Control") == ["private"]


def test_the_server_field(gw):
    """The gateway's own answers name no server; the upstream's Server is
    what `remove` drops (the listener's policy, above) or `set` replaces,
    on forwarded responses and the gateway's answers alike."""
    resp, _ = get(gw, "/nothing", raw=False)
    assert resp.status_code == 404 and fields(resp, "Server") == []
    resp, body = get(gw, "/named/x")
    assert resp.status_code == 200 and body == b"hello"
    assert fields(resp, "Server") == ["front-door"]
    resp, _ = get(gw, "/named-gone/x", raw=False)
    assert resp.status_code == 502
    assert fields(resp, "Server") == ["front-door"]


def test_a_route_with_its_own_headers(gw):
    resp, body = get(gw, "/own/x")
    assert resp.status_code == 200 and body == b"hello"
    assert fields(resp, "X-Route") == ["own"]
    # only the route's: the listener's policy does not apply to it
    assert fields(resp, "X-Frame-Options") == ["SAMEORIGIN"]
    assert fields(resp, "Server") == ["upstream-srv/1.0"]
    assert fields(resp, "X-Content-Type-Options") == []


def check(tmp_path, headers, where="listener"):
    if where == "listener":
        return config_check(tmp_path, listener={"headers": headers})
    return config_check(tmp_path, route={"headers": headers})


@pytest.mark.parametrize("headers,want", [
    ({"set": {"Content-Length": "5"}},
     'listeners[0].headers.set.Content-Length: "Content-Length" is '
     "hop-by-hop or framing"),
    ({"add": {"Connection": "close"}}, "is hop-by-hop or framing"),
    ({"remove": ["Transfer-Encoding"]},
     'listeners[0].headers.remove[0]: "Transfer-Encoding" is hop-by-hop'),
    ({"set": {"Strict-Transport-Security": "max-age=1"}},
     "is set by tls.hsts_max_age"),
    ({"set": {"Location": "/x"}}, "is written by the gateway's own answers"),
    ({"set": {"Bad Name": "x"}}, "must be a header name"),
    ({"set": {"X-A": "line\r\nInjected: yes"}}, "must be a string of at "
     "most 1024 visible ASCII characters"),
    ({"set": {"X-A": " padded"}}, "none at either end"),
    ({"set": {"X-A": 1}}, "must be a string"),
    ({"set": {"X-A": "1"}, "remove": ["x-a"]},
     '"X-A" is named twice in this "headers"'),
    ({"set": {"X-A": "1"}, "add": {"x-A": "2"}}, "is named twice"),
    ({"remove": "Server"}, "listeners[0].headers.remove: must be a list"),
    ({"sett": {}}, "listeners[0].headers.sett: unknown key"),
    ({"add": {"X-%d" % i: "v" for i in range(33)}},
     'at most 32 fields in one "headers"'),
])
def test_bad_policies_are_named(tmp_path, headers, want):
    p = check(tmp_path, headers)
    assert p.returncode == 1 and want in p.stderr, p.stderr


def test_route_policy_errors_name_the_route(tmp_path):
    p = check(tmp_path, {"set": {"Content-Type": "text/html"}}, "route")
    assert p.returncode == 1
    assert 'listeners[0].routes[0].headers.set.Content-Type: ' \
        '"Content-Type" is written by the gateway\'s own answers' \
        in p.stderr, p.stderr
    p = check(tmp_path, LISTENER_HEADERS)
    assert p.returncode == 0, p.stderr
