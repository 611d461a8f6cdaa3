"""Upstream health: active checks take a server that dies or hangs out of
rotation after `fall` failed checks and bring it back after `rise` passed
ones; passive ejection after `max_fails` connect failures; no server left
-> 503 and /readyz names the upstream; per-server metrics. What each
upstream received is read from its own log, not only from the gateway's
metrics."""

import json
import subprocess

import gwtest
from conftest import free_port, make_config, portcullis_binary

HEALTH_PATH = "/-/healthy"


def server(port):
    return "127.0.0.1:%d" % port


def checked(ports, **check):
    """An upstream of servers on 127.0.0.1 with fast checks."""
    hc = {"path": HEALTH_PATH, "interval": "200ms", "timeout": "200ms",
          "rise": 2, "fall": 2}
    hc.update(check)
    return {"servers": [server(p) for p in ports], "connect_timeout": "1s",
            "read_timeout": "5s", "health_check": hc}


def app_route(upstream="app", path="/app/"):
    return {"name": upstream, "path": path, "upstream": upstream}


def app_requests(stub):
    """The requests (not checks) a stub received."""
    return [e for e in stub.log()
            if not e["request_line"].startswith("GET %s " % HEALTH_PATH)]


def checks_seen(stub):
    return [e for e in stub.log()
            if e["request_line"].startswith("GET %s " % HEALTH_PATH)]


def value(gw, name, **labels):
    v = gwtest.metric(gw.metrics(), name, **labels)
    return 0 if v is None else v


def up(gw, port, upstream="app"):
    return gwtest.metric(gw.metrics(), "portcullis_upstream_server_up",
                         upstream=upstream, server=server(port))


def wait_up(gw, port, want, timeout=20, upstream="app"):
    gwtest.wait_until(lambda: up(gw, port, upstream) == want, timeout,
                      interval=0.05,
                      what="server_up{server=%s} == %d" % (server(port),
                                                           want))


def requests_to(gw, port, upstream="app"):
    return value(gw, "portcullis_upstream_server_requests_total",
                 upstream=upstream, server=server(port))


def wait_log(gw, text):
    """The error log is written by a thread of its own: poll it."""
    gwtest.wait_until(lambda: text in gw.error_log(), 10,
                      what="%r in the error log" % text)


def get_ok(gw, n, path="/app/x"):
    for i in range(n):
        st, _, body = gwtest.get(gw.port, "%s?i=%d" % (path, i))
        assert st == 200, (i, st, body)


def test_dead_server_no_traffic_after_fall_back_after_rise(gateway,
                                                           stub_factory):
    a = stub_factory("slow", delay=0, body_size=16)
    b = stub_factory("slow", delay=0, body_size=16)
    gw = gateway({"app": checked([a.port, b.port])}, [app_route()])
    # both are checked, and pass
    gwtest.wait_until(lambda: len(checks_seen(a)) >= 2 and
                      len(checks_seen(b)) >= 2, 10, what="checks")
    check = checks_seen(b)[0]
    assert b.header(check, "Host") == server(b.port), check
    assert b.header(check, "Connection") == "close", check

    get_ok(gw, 20)
    # round robin per request: both served, and the gateway's count per
    # server is what each server saw
    ra, rb = len(app_requests(a)), len(app_requests(b))
    assert ra + rb == 20 and ra > 0 and rb > 0, (ra, rb)
    assert requests_to(gw, a.port) == ra
    assert requests_to(gw, b.port) == rb
    m = gw.metrics()
    assert gwtest.metric(m, "portcullis_upstream_server_connect_seconds_count",
                         upstream="app", server=server(a.port)) >= 1
    assert gwtest.metric(m, "portcullis_upstream_health_checks_total",
                         upstream="app", server=server(b.port),
                         result="ok") >= 2

    b.stop()  # by PID
    wait_up(gw, b.port, 0)
    assert value(gw, "portcullis_upstream_health_checks_total",
                 upstream="app", server=server(b.port),
                 result="connect") >= 2
    sent_b = requests_to(gw, b.port)
    get_ok(gw, 20)  # no 502: only the live server is used
    assert requests_to(gw, b.port) == sent_b, \
        "a request was handed to a server marked down"
    wait_log(gw, "server %s: down after 2 failed check(s), the last: "
             "connect" % server(b.port))

    # back on the same port: up after `rise`, and traffic returns
    b2 = stub_factory("slow", delay=0, body_size=16, port=b.port)
    wait_up(gw, b.port, 1)
    assert len(checks_seen(b2)) >= 2  # rise = 2
    get_ok(gw, 20)
    assert len(app_requests(b2)) > 0, "no traffic back after rise"
    wait_log(gw, "server %s: up after 2 passed check(s)" % server(b.port))


def test_hanging_server_down_after_timeouts(gateway, stub_factory):
    a = stub_factory("slow", delay=0, body_size=16)
    hang = stub_factory("silent")  # accepts, reads, never answers
    gw = gateway({"app": checked([a.port, hang.port], interval="300ms",
                                 timeout="250ms", fall=2)},
                 [app_route()])
    wait_up(gw, hang.port, 0)
    assert value(gw, "portcullis_upstream_health_checks_total",
                 upstream="app", server=server(hang.port),
                 result="timeout") >= 2
    get_ok(gw, 10)
    assert app_requests(hang) == [], "a request reached the hanging server"
    assert len(app_requests(a)) == 10
    assert requests_to(gw, hang.port) == 0

    # it recovers: something that answers on the same port
    hang.stop()
    back = stub_factory("slow", delay=0, body_size=16, port=hang.port)
    wait_up(gw, hang.port, 1)
    get_ok(gw, 10)
    assert len(app_requests(back)) > 0


def test_unexpected_status_fails_the_check(gateway, stub_factory):
    a = stub_factory("slow", delay=0, body_size=16)
    moved = stub_factory("raw", response=b"HTTP/1.1 301 Moved Permanently\r\n"
                         b"Location: /elsewhere\r\nContent-Length: 0\r\n\r\n")
    gw = gateway({"app": checked([a.port, moved.port],
                                 expect_status=["2xx", 204])},
                 [app_route()])
    wait_up(gw, moved.port, 0)
    assert value(gw, "portcullis_upstream_health_checks_total",
                 upstream="app", server=server(moved.port),
                 result="status") >= 2
    assert up(gw, a.port) == 1
    wait_log(gw, "server %s: down after 2 failed check(s), the last "
             "answered 301" % server(moved.port))


def test_passive_ejection_without_checks(gateway, stub_factory):
    a = stub_factory("slow", delay=0, body_size=16)
    dead = free_port()  # nothing listens: connects are refused
    gw = gateway({"app": {"servers": [server(a.port), server(dead)],
                          "passive": {"max_fails": 2, "eject_for": "4s"}}},
                 [app_route()])
    assert up(gw, dead) == 1
    get_ok(gw, 10)  # refused connects are retried on the other server
    # exactly max_fails failures, then ejected: no further try
    assert value(gw, "portcullis_upstream_server_errors_total",
                 upstream="app", server=server(dead), reason="connect") == 2
    assert requests_to(gw, dead) == 2
    assert up(gw, dead) == 0
    get_ok(gw, 10)
    assert requests_to(gw, dead) == 2, "an ejected server was tried"
    assert value(gw, "portcullis_upstream_errors_total", route="app",
                 reason="connect") == 0, "the client saw no error"
    wait_log(gw, "server %s: ejected for 4000ms after 2 connect failures "
             "in a row" % server(dead))
    # the ejection ends; the server, now listening, gets traffic again
    back = stub_factory("slow", delay=0, body_size=16, port=dead)
    wait_up(gw, dead, 1, timeout=15)
    get_ok(gw, 10)
    assert len(app_requests(back)) > 0


def test_no_healthy_server_503_and_readyz(gateway, stub_factory):
    a = stub_factory("slow", delay=0, body_size=16)
    b = stub_factory("slow", delay=0, body_size=16)
    extra = stub_factory("slow", delay=0, body_size=16)
    optional = free_port()
    gw = gateway({"app": checked([a.port, b.port], fall=1),
                  "extra": checked([extra.port]),
                  "optional": dict(checked([optional], fall=1),
                                   required_for_ready=False)},
                 [app_route(), app_route("extra", "/extra/"),
                  app_route("optional", "/optional/")])
    wait_up(gw, optional, 0, upstream="optional")
    # an upstream that is not required_for_ready does not fail /readyz
    st, _, body = gwtest.get(gw.admin_port, "/readyz")
    assert st == 200, body
    st, _, _ = gwtest.get(gw.port, "/optional/x")
    assert st == 503

    a.stop()
    b.stop()
    wait_up(gw, a.port, 0)
    wait_up(gw, b.port, 0)
    st, _, body = gwtest.get(gw.admin_port, "/readyz")
    assert st == 503, body
    text = body.decode()
    assert 'upstream "app" has no healthy server' in text, text
    assert "extra" not in text and "optional" not in text, text
    for i in range(3):
        st, _, _ = gwtest.get(gw.port, "/app/x")
        assert st == 503
    get_ok(gw, 2, "/extra/x")  # the others still serve
    assert value(gw, "portcullis_upstream_errors_total", route="app",
                 reason="no_healthy_server") == 3
    assert requests_to(gw, a.port) == 0 and requests_to(gw, b.port) == 0

    stub_factory("slow", delay=0, body_size=16, port=a.port)
    wait_up(gw, a.port, 1)
    st, _, body = gwtest.get(gw.admin_port, "/readyz")
    assert st == 200, body
    get_ok(gw, 2)


def test_reload_keeps_the_state_of_kept_servers(gateway, stub_factory):
    a = stub_factory("slow", delay=0, body_size=16)
    dead = free_port()
    # fall 3 at 1s: a server that started afresh at the reload would be
    # up for two more seconds
    up_cfg = checked([a.port, dead], interval="1s", timeout="500ms",
                     rise=2, fall=3)
    gw = gateway({"app": up_cfg}, [app_route()])
    wait_up(gw, dead, 0)
    before = value(gw, "portcullis_upstream_health_checks_total",
                   upstream="app", server=server(dead), result="connect")
    cfg = dict(gw.config)
    cfg["upstreams"] = {"app": dict(up_cfg, read_timeout="6s")}
    gw.reload(cfg)
    wait_log(gw, "reload: %s loaded" % gw.config_path)
    # still down (no fresh start as up), and its counters go on
    assert up(gw, dead) == 0
    assert "server %s: up" % server(dead) not in gw.error_log()
    assert value(gw, "portcullis_upstream_health_checks_total",
                 upstream="app", server=server(dead),
                 result="connect") >= before
    get_ok(gw, 5)


def check_config(tmp_path, cfg):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, timeout=10)
    return p.returncode, p.stderr.decode(errors="replace")


def test_config_errors_name_every_new_key(tmp_path):
    bad = {
        "servers": ["127.0.0.1:1", "127.0.0.1:1"],
        "health_check": {"path": "no-slash", "host": "a b",
                         "interval": "10ms", "timeout": "2m", "rise": 0,
                         "fall": 101, "expect_status": ["2xx", "600",
                                                        "3yy", 99],
                         "mystery": 1},
        "passive": {"max_fails": 0, "eject_for": "1ms", "other": True},
        "required_for_ready": "yes",
    }
    cfg = make_config(free_port(), free_port(), {"app": bad},
                      [app_route()])
    rc, err = check_config(tmp_path, cfg)
    assert rc == 1, err
    p = "upstreams.app."
    for want in [
            p + "servers[1]: \"127.0.0.1:1\" is listed twice",
            p + "health_check.path: must be a path starting with '/'",
            p + "health_check.host: must be a Host value",
            p + "health_check.interval: must be a duration from 100ms to 1h",
            p + "health_check.timeout: must be a duration from 10ms to 1m",
            p + "health_check.rise: must be an integer from 1 to 100",
            p + "health_check.fall: must be an integer from 1 to 100",
            p + "health_check.expect_status[1]: must be a status",
            p + "health_check.expect_status[2]: must be a status",
            p + "health_check.expect_status[3]: must be a status",
            p + "health_check.mystery: unknown key",
            p + "passive.max_fails: must be an integer from 1 to 100",
            p + "passive.eject_for: must be a duration from 1s to 1h",
            p + "passive.other: unknown key",
            p + "required_for_ready: must be true or false"]:
        assert want in err, "%r not in:\n%s" % (want, err)
    assert p + "health_check.expect_status[0]" not in err, err

    # the remaining shapes, one at a time
    for hc, want in [
            ({}, "health_check.path: required"),
            ({"path": "/h", "interval": "1s", "timeout": "2s"},
             "health_check.timeout: 2s is longer than interval (1s)"),
            ({"path": "/h", "expect_status": []},
             "health_check.expect_status: must list 1 to 16 statuses"),
            ({"path": "/h", "expect_status": "200-100"},
             "health_check.expect_status: must be a status"),
            ("on", "health_check: must be an object")]:
        cfg["upstreams"] = {"app": {"servers": ["127.0.0.1:1"],
                                    "health_check": hc}}
        rc, err = check_config(tmp_path, cfg)
        assert rc == 1 and p + want in err, (hc, err)

    # and a good one passes, defaults for the rest
    cfg["upstreams"] = {"app": {
        "servers": ["127.0.0.1:1", "[::1]:1"],
        "health_check": {"path": "/h?x=1", "host": "app.internal",
                         "expect_status": [200, "3xx", "401-403"]},
        "passive": {}, "required_for_ready": False}}
    rc, err = check_config(tmp_path, cfg)
    assert rc == 0, err


def test_server_by_name_checked_through_the_resolver(gateway, stub_factory,
                                                     tmp_path):
    """A server given by name is resolved by the checker at each check
    (dnsmasq on loopback, as in test_dns.py): down while the name does not
    resolve (result dns), up once it does, and then given requests."""
    from test_dns import Dnsmasq  # a real DNS server, *.test only

    d = tmp_path / "dns"
    d.mkdir()
    dns = Dnsmasq(d)
    try:
        a = stub_factory("slow", delay=0, body_size=16)
        named = stub_factory("slow", delay=0, body_size=16)
        up_cfg = checked([a.port], timeout="1s", interval="1s", fall=1)
        up_cfg["servers"].append("named.test:%d" % named.port)
        up_cfg["resolve_interval"] = "1s"
        gw = gateway({"app": up_cfg}, [app_route()],
                     resolvers=["127.0.0.1:%d" % dns.port])
        label = "named.test:%d" % named.port
        gwtest.wait_until(
            lambda: gwtest.metric(gw.metrics(),
                                  "portcullis_upstream_server_up",
                                  upstream="app", server=label) == 0,
            20, what="the unresolvable server down")
        assert value(gw, "portcullis_upstream_health_checks_total",
                     upstream="app", server=label, result="dns") >= 1

        dns.set("127.0.0.1 named.test")
        gwtest.wait_until(
            lambda: gwtest.metric(gw.metrics(),
                                  "portcullis_upstream_server_up",
                                  upstream="app", server=label) == 1,
            20, what="the named server up once it resolves")
        host = [named.header(e, "Host") for e in checks_seen(named)]
        assert host and host[0] == label, host
        # the workers resolve it on their own (every resolve_interval)
        gwtest.wait_until(lambda: get_ok(gw, 4) or app_requests(named), 20,
                          interval=0.2, what="a request to the named server")
    finally:
        dns.stop()
