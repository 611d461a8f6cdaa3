"""Address allow and deny lists of a listener and a route (issue 18):
checked before routing answers and before any password check, so a
refused address learns nothing of the routes and costs no hash; 403 and
portcullis_http_requests_denied_total{route,reason}. Clients connect from
other addresses of 127.0.0.0/8 (the whole block is local on Linux)."""

import json

import pytest

from conftest import config_check, upstream

import gwtest


def from_addr(gw, path, source, headers=()):
    return gwtest.raw_request(gw.port, "GET", path, list(headers),
                              source_address=(source, 0))


def denied(gw):
    return {(labels["route"], labels["reason"]): value
            for labels, value in gwtest.samples_named(
                gw.metrics(), "portcullis_http_requests_denied_total")}


@pytest.fixture
def stub(stub_factory):
    return stub_factory("slow", delay=0, body_size=16)


@pytest.fixture
def gw(gateway, stub, tmp_path):
    users = tmp_path / "users"
    users.write_text(gwtest.htpasswd_line("u", "pw", "-B", "-C", "4") + "\n")
    return gateway(
        {"app": upstream(stub.port)},
        [{"name": "open", "path": "/open/", "upstream": "app"},
         {"name": "admin", "path": "/admin/", "upstream": "app",
          "allow": ["127.0.0.1/32", "127.0.0.4"], "realm": "r"},
         {"name": "nobad", "path": "/nobad/", "upstream": "app",
          "deny": ["127.0.0.3"]}],
        listener={"allow": ["127.0.0.0/29", "::1"],
                  "deny": ["127.0.0.5"]},
        realms={"r": {"htpasswd": str(users)}})


def test_listener_lists(gw, stub):
    assert from_addr(gw, "/open/a", "127.0.0.2").status == 200
    # in the listener's deny list: refused, whatever the route
    r = from_addr(gw, "/open/a?m=deny", "127.0.0.5")
    assert r.status == 403, r
    assert r.body == b"403 Forbidden: address not allowed\n"
    # outside the listener's allow list (127.0.0.0/29 is .0 to .7)
    assert from_addr(gw, "/open/a?m=out", "127.0.0.9").status == 403
    # even a path with no route: 403, not 404 (nothing is revealed)
    assert from_addr(gw, "/nothing", "127.0.0.9").status == 403
    assert not [e for e in stub.log() if "m=" in e["request_line"]]
    d = denied(gw)
    assert d[("open", "deny_list")] == 1 and \
        d[("open", "not_allowed")] == 1, d
    assert d[("_none", "not_allowed")] == 1, d


def test_route_lists_and_no_hash_for_a_refused_address(gw, stub):
    before = gwtest.auth_counters(gw.metrics(), "r")
    wrong = [("Authorization", gwtest.basic_auth("u", "wrong"))]
    # allowed by the listener, not by the route: 403 before the realm
    r = from_addr(gw, "/admin/x?m=a", "127.0.0.2", wrong)
    assert r.status == 403, r
    after = gwtest.auth_counters(gw.metrics(), "r")
    assert gwtest.counters_delta(before, after)["verifications"] == 0
    # an allowed address reaches the realm: 401 for the wrong password
    assert from_addr(gw, "/admin/x", "127.0.0.4", wrong).status == 401
    ok = [("Authorization", gwtest.basic_auth("u", "pw"))]
    assert from_addr(gw, "/admin/x?m=ok", "127.0.0.1", ok).status == 200
    # a route's deny list
    assert from_addr(gw, "/nobad/x?m=b", "127.0.0.3").status == 403
    assert from_addr(gw, "/nobad/x?m=c", "127.0.0.2").status == 200
    # the stub and the access log are written apart from the answers:
    # wait for what must be there, then check what must not
    seen = gwtest.wait_until(
        lambda: (lambda ls: ls if any("m=ok" in l for l in ls) and
                 any("m=c" in l for l in ls) else None)(
            [e["request_line"] for e in stub.log()
             if "m=" in e["request_line"]]),
        10, what="the two allowed requests at the stub")
    assert not any("m=a" in l or "m=b" in l for l in seen), seen
    d = denied(gw)
    assert d[("admin", "not_allowed")] == 1 and \
        d[("nobad", "deny_list")] == 1, d
    want = {("admin", "127.0.0.2"), ("nobad", "127.0.0.3")}
    gwtest.wait_until(
        lambda: want <= {(e["route"], e["client"]) for e in gw.access_log()
                         if e["status"] == 403},
        10, what="both 403s in the access log")


def test_reload_changes_the_lists(gw):
    assert from_addr(gw, "/open/a", "127.0.0.6").status == 200
    cfg = json.loads(json.dumps(gw.config))
    cfg["listeners"][0]["deny"] = ["127.0.0.5", "127.0.0.6"]
    gw.reload(cfg)
    gwtest.wait_until(lambda: from_addr(gw, "/open/a", "127.0.0.6").status
                      == 403, 10, what="the reloaded deny list")


@pytest.mark.parametrize("value,want", [
    (["10.0.0.0/33"], '[0]: "10.0.0.0/33": the prefix must be 0 to 32'),
    (["2001:db8::/129"], "the prefix must be 0 to 128"),
    (["10.1.2.3/8"], "has bits set past its prefix"),
    (["localhost"], "not an IPv4 or IPv6 address"),
    (["10.0.0.0/"], "the prefix must be 0 to 32"),
    (["10.0.0.0/+8"], "the prefix must be 0 to 32"),
    ([], "must be a list of 1 to 256 addresses"),
    ("10.0.0.0/8", "must be a list of 1 to 256 addresses"),
    ([7], "[0]: must be a string"),
])
def test_bad_lists_are_named(tmp_path, value, want):
    p = config_check(tmp_path, listener={"allow": value})
    assert p.returncode == 1 and "listeners[0].allow" in p.stderr and \
        want in p.stderr, p.stderr
    p = config_check(tmp_path, route={"deny": value})
    assert p.returncode == 1 and "listeners[0].routes[0].deny" in p.stderr


def test_good_lists(tmp_path):
    p = config_check(tmp_path, listener={"allow": ["0.0.0.0/0", "::/0"]},
              route={"deny": ["192.0.2.1", "2001:db8::/32", "::ffff:0:0/96"]})
    assert p.returncode == 0, p.stderr
