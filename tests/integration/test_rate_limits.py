"""Rate limits per route (issue 18): a token bucket per client address
(or per verified user), shared by both workers with no lock; 429 with
Retry-After; portcullis_http_requests_limited_total{route}. What the
upstream received is counted at the upstream."""

import json
import threading
import time

import pytest

from conftest import config_check, upstream

import gwtest


def send(gw, path, source="127.0.0.1", headers=()):
    return gwtest.raw_request(gw.port, "GET", path, list(headers),
                              source_address=(source, 0))


def limited(gw, route):
    return gwtest.metric(gw.metrics(),
                         "portcullis_http_requests_limited_total",
                         route=route)


@pytest.fixture
def stub(stub_factory):
    return stub_factory("slow", delay=0, body_size=16)


def hits(stub, tag):
    return [e for e in stub.log() if tag in e["request_line"]]


def test_exact_across_two_workers(gateway, stub):
    """Four threads, each request on a new connection (so both workers
    take them), for about 4 s at 5/s with a burst of 5: the admitted
    count is 5 + 5 x the seconds between the first and last request,
    within one burst (a request delayed by a busy machine moves its
    instant: 5/s keeps that well inside the burst). A full bucket per
    worker would admit about twice the rate."""
    gw = gateway({"app": upstream(stub.port)},
                 [{"name": "api", "path": "/api/", "upstream": "app",
                   "rate_limit": {"rate": "5/s", "burst": 5}}],
                 workers=2)
    results = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 4.0

    def client(n):
        i = 0
        while time.monotonic() < stop_at:
            t = time.monotonic()
            r = send(gw, "/api/x?c=%d.%d" % (n, i))
            with lock:
                results.append((t, r.status, r.header("Retry-After")))
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = min(t for t, _, _ in results)
    last = max(t for t, _, _ in results)
    ok = sum(1 for _, st, _ in results if st == 200)
    refused = [ra for _, st, ra in results if st == 429]
    assert ok + len(refused) == len(results), \
        {st for _, st, _ in results}
    assert len(refused) > 0, "the clients never went over the limit"
    want = 5 + 5 * (last - first)
    assert abs(ok - want) <= 5 + 1, (ok, want, len(results))
    assert all(ra == "1" for ra in refused), set(refused)
    # the upstream saw exactly the admitted ones, the metric the rest
    gwtest.wait_until(lambda: len(hits(stub, "c=")) >= ok, 10,
                      what="admitted requests at the stub")
    assert len(hits(stub, "c=")) == ok
    assert limited(gw, "api") == len(refused)


def test_one_connection_gets_the_whole_rate(gateway, stub):
    """One kept-alive connection is served by one worker: it still gets
    the route's whole rate (a share per worker would give it half)."""
    gw = gateway({"app": upstream(stub.port)},
                 [{"name": "api", "path": "/api/", "upstream": "app",
                   "rate_limit": {"rate": "5/s", "burst": 5}}],
                 workers=2)
    ok = total = 0
    c = gwtest.RawConn(gw.port)
    try:
        first = time.monotonic()
        stop_at = first + 4.0
        while True:
            last = time.monotonic()
            if last > stop_at:
                break
            c.send(b"GET /api/k HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            r = c.read_response("GET")
            assert r.status in (200, 429), r
            ok += r.status == 200
            total += 1
    finally:
        c.close()
    want = 5 + 5 * (last - first)
    assert total > want and abs(ok - want) <= 5 + 1, (ok, want, total)


@pytest.fixture
def gw(gateway, stub, tmp_path):
    users = tmp_path / "users"
    users.write_text(gwtest.htpasswd_line("u", "pw", "-B", "-C", "4") + "\n"
                     + gwtest.htpasswd_line("v", "pw", "-B", "-C", "4")
                     + "\n")
    return gateway(
        {"app": upstream(stub.port)},
        [{"name": "slow", "path": "/slow/", "upstream": "app",
          "rate_limit": {"rate": "1/m", "burst": 2}},
         {"name": "guarded", "path": "/guarded/", "upstream": "app",
          "realm": "r", "rate_limit": {"rate": "1/h", "burst": 1}},
         {"name": "peruser", "path": "/peruser/", "upstream": "app",
          "realm": "r",
          "rate_limit": {"rate": "1/h", "burst": 2, "key": "user"}},
         {"name": "free", "path": "/free/", "upstream": "app"}],
        listener={"trusted_proxies": ["127.0.0.9"],
                  "headers": {"set": {"X-Frame-Options": "DENY"}}},
        realms={"r": {"htpasswd": str(users)}})


def test_per_address(gw, stub):
    assert send(gw, "/slow/a?m=1", "127.0.0.2").status == 200
    assert send(gw, "/slow/a?m=2", "127.0.0.2").status == 200
    r = send(gw, "/slow/a?m=3", "127.0.0.2")
    assert r.status == 429, r
    assert r.body == b"429 Too Many Requests: rate limit\n"
    assert 1 <= int(r.header("Retry-After")) <= 60
    # the gateway's own answer carries the listener's response headers
    assert r.header("X-Frame-Options") == "DENY"
    # another address, and another route, are not limited
    assert send(gw, "/slow/a?m=4", "127.0.0.3").status == 200
    assert send(gw, "/free/a?m=5", "127.0.0.2").status == 200
    gwtest.wait_until(lambda: len(hits(stub, "m=")) >= 4, 10,
                      what="the admitted requests at the stub")
    assert sorted(e["request_line"].split("m=")[1][0]
                  for e in hits(stub, "m=")) == ["1", "2", "4", "5"]
    assert limited(gw, "slow") == 1 and limited(gw, "free") == 0
    e = gwtest.wait_until(
        lambda: [e for e in gw.access_log() if "m=3" in e["path"]], 10,
        what="the 429 in the access log")[0]
    assert e["status"] == 429 and e["route"] == "slow"


def test_behind_a_proxy_each_client_has_its_bucket(gw):
    proxy = "127.0.0.9"
    fwd = [("X-Forwarded-For", "198.51.100.1")]
    assert send(gw, "/slow/p", proxy, fwd).status == 200
    assert send(gw, "/slow/p", proxy, fwd).status == 200
    assert send(gw, "/slow/p", proxy, fwd).status == 429
    assert send(gw, "/slow/p", proxy,
                [("X-Forwarded-For", "198.51.100.2")]).status == 200


def test_a_limited_address_costs_no_hash(gw):
    ok = [("Authorization", gwtest.basic_auth("u", "pw"))]
    wrong = [("Authorization", gwtest.basic_auth("u", "wrong"))]
    assert send(gw, "/guarded/a", "127.0.0.4", ok).status == 200
    before = gwtest.auth_counters(gw.metrics(), "r")
    assert send(gw, "/guarded/a", "127.0.0.4", wrong).status == 429
    assert send(gw, "/guarded/a", "127.0.0.4").status == 429
    after = gwtest.auth_counters(gw.metrics(), "r")
    assert gwtest.counters_delta(before, after)["verifications"] == 0


def test_per_user(gw):
    u = [("Authorization", gwtest.basic_auth("u", "pw"))]
    v = [("Authorization", gwtest.basic_auth("v", "pw"))]
    wrong = [("Authorization", gwtest.basic_auth("u", "nope"))]
    # a failed password is not the user's: it takes no token
    assert send(gw, "/peruser/a", "127.0.0.5", wrong).status == 401
    assert send(gw, "/peruser/a", "127.0.0.5", u).status == 200
    # the same user from another address shares the bucket
    assert send(gw, "/peruser/a", "127.0.0.6", u).status == 200
    r = send(gw, "/peruser/a", "127.0.0.5", u)
    assert r.status == 429, r
    assert 3000 < int(r.header("Retry-After")) <= 3600
    # another user from the same address does not
    assert send(gw, "/peruser/a", "127.0.0.5", v).status == 200
    assert limited(gw, "peruser") == 1


def test_reload_keeps_buckets_of_an_unchanged_limit(gw):
    assert send(gw, "/slow/r", "127.0.0.8").status == 200
    assert send(gw, "/slow/r", "127.0.0.8").status == 200
    assert send(gw, "/slow/r", "127.0.0.8").status == 429
    cfg = json.loads(json.dumps(gw.config))
    cfg["listeners"][0]["routes"].append(
        {"name": "probe", "path": "/probe/", "upstream": "app"})
    gw.reload(cfg)
    gwtest.wait_until(lambda: send(gw, "/probe/").status == 200, 10,
                      what="the reloaded config")
    assert send(gw, "/slow/r", "127.0.0.8").status == 429
    # a new limit is a new table
    cfg["listeners"][0]["routes"][0]["rate_limit"]["burst"] = 3
    gw.reload(cfg)
    gwtest.wait_until(
        lambda: send(gw, "/slow/r", "127.0.0.8").status == 200, 10,
        what="the new limit")


def check(tmp_path, rate_limit, realm=False):
    route = {"rate_limit": rate_limit}
    top = {}
    if realm:
        users = tmp_path / "users"
        users.write_text(gwtest.htpasswd_line("u", "pw", "-B", "-C", "4"))
        route["realm"] = "r"
        top["realms"] = {"r": {"htpasswd": str(users)}}
    return config_check(tmp_path, route=route, **top)


P = "listeners[0].routes[0].rate_limit"


@pytest.mark.parametrize("value,want", [
    ("10/s", P + ": must be an object"),
    ({"burst": 5}, P + ".rate: required"),
    ({"rate": "10/s"}, P + ".burst: required"),
    ({"rate": "10", "burst": 5}, P + '.rate: "10": must be N/s, N/m or N/h'),
    ({"rate": "10/d", "burst": 5}, P + '.rate: "10/d": must be'),
    ({"rate": "0/s", "burst": 5}, P + '.rate: "0/s": must be'),
    ({"rate": "10/", "burst": 5}, P + '.rate: "10/": must be'),
    ({"rate": "2000000/s", "burst": 5}, P + '.rate: "2000000/s": must be'),
    ({"rate": 10, "burst": 5}, P + ".rate: must be a string"),
    ({"rate": "10/s", "burst": 0}, P + ".burst: must be"),
    ({"rate": "10/s", "burst": 5, "key": "ip"}, P + '.key: "ip": must be'),
    ({"rate": "10/s", "burst": 5, "key": "user"},
     P + '.key: "user" needs a route with a realm'),
    ({"rate": "10/s", "burst": 5, "per": "ip"}, P + ".per: unknown key"),
])
def test_config_errors(tmp_path, value, want):
    r = check(tmp_path, value)
    assert r.returncode == 1, r
    assert want in r.stderr, r.stderr


def test_config_user_key_with_a_realm(tmp_path):
    r = check(tmp_path, {"rate": "10/s", "burst": 5, "key": "user"},
              realm=True)
    assert r.returncode == 0, r.stderr
