"""Metrics: after N requests from concurrent clients spread over 2 workers,
the admin listener's counters hold exactly N per route/method/code and the
duration histogram's _count is exactly the total; the exposition is valid
Prometheus text that promtool accepts and a real Prometheus scrapes."""

import json
import re
import subprocess
import threading
import urllib.parse

import pytest

import gwtest
from conftest import free_port, upstream

BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
           120, float("inf")]

# (method, path, expected code, how many)
PLAN = [("GET", "/static/small.txt", 200, 60),
        ("GET", "/static/missing.txt", 404, 7),
        ("HEAD", "/static/64k.bin", 200, 5),
        ("POST", "/static/small.txt", 405, 3)]


@pytest.fixture
def gw(gateway, nginx):
    g = gateway({"static": upstream(nginx.port, keepalive=4)},
                [{"name": "static", "path": "/static/", "upstream": "static",
                  "strip_prefix": True}], workers=2)
    g.nginx = nginx
    return g


def run_plan(port, threads=6):
    """Sends PLAN from `threads` concurrent clients, half of them with a
    new connection per request (so SO_REUSEPORT spreads them over the
    workers), half over keep-alive. Fails on any unexpected status.
    Returns how many connections the clients opened."""
    work = [(m, p, c) for m, p, c, n in PLAN for _ in range(n)]
    shares = [work[i::threads] for i in range(threads)]
    errors = []
    opened = []

    def client(items, keepalive):
        conn = None
        try:
            for method, path, code in items:
                if conn is None:
                    conn = gwtest.RawConn(port)
                    opened.append(1)
                body = b"abc" if method == "POST" else b""
                conn.send(b"%s %s HTTP/1.1\r\nHost: m.test\r\n"
                          b"Content-Length: %d\r\n%s\r\n%s" % (
                              method.encode(), path.encode(), len(body),
                              b"" if keepalive else b"Connection: close\r\n",
                              body))
                r = conn.read_response(method)
                if r.status != code:
                    errors.append((method, path, r.status))
                if not keepalive:
                    conn.close()
                    conn = None
        except Exception as e:  # reported below, not lost in a thread
            errors.append(repr(e))
        finally:
            if conn:
                conn.close()

    ts = [threading.Thread(target=client, args=(shares[i], i % 2 == 0))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    return len(opened)


def test_request_counters_exact(gw):
    run_plan(gw.port)
    total = sum(n for _, _, _, n in PLAN)

    def counters():
        s = gw.metrics()
        return {(m, c): gwtest.metric(s, "portcullis_http_requests_total",
                                      route="static", method=m, code=str(c))
                for m, _, c, _ in PLAN}
    want = {(m, c): float(n) for m, _, c, n in PLAN}
    # the last responses may be counted just after they were sent
    try:
        gwtest.wait_until(lambda: counters() == want, 3, 0.1)
    except AssertionError:
        pass
    assert counters() == want

    s = gw.metrics()
    count = gwtest.metric(s, "portcullis_http_request_duration_seconds_count",
                          route="static")
    assert count == total
    assert gwtest.metric(s, "portcullis_http_request_duration_seconds_sum",
                         route="static") > 0
    buckets = gwtest.samples_named(
        s, "portcullis_http_request_duration_seconds_bucket", route="static")
    les = sorted(float(l["le"]) for l, _ in buckets)
    assert les == BUCKETS, "buckets %r, DESIGN.md says %r" % (les, BUCKETS)
    by_le = sorted((float(l["le"]), v) for l, v in buckets)
    values = [v for _, v in by_le]
    assert values == sorted(values), "buckets not cumulative: %r" % by_le
    assert by_le[-1][1] == total
    # loopback requests to nginx are fast: most under a second
    assert dict(by_le)[1.0] >= total * 0.9, by_le

    # the upstream histogram counts the requests that reached nginx
    up_count = gwtest.metric(
        s, "portcullis_upstream_response_duration_seconds_count",
        route="static")
    assert up_count == total


def test_no_route_and_upstream_error_counters(gateway, nginx):
    dead = free_port()
    gw = gateway({"static": upstream(nginx.port), "dead": upstream(dead)},
                 [{"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True},
                  {"name": "dead", "path": "/dead/", "upstream": "dead"}])
    for _ in range(4):
        st, _, _ = gwtest.get(gw.port, "/dead/x")
        assert st == 502
    s = gw.metrics()
    assert gwtest.metric(s, "portcullis_http_requests_total", route="dead",
                         method="GET", code="502") == 4
    assert gwtest.metric(s, "portcullis_upstream_errors_total", route="dead",
                         reason="connect") == 4
    # no sample is labelled with a raw path
    for name, labels, _ in s:
        assert not labels.get("route", "").startswith("/"), (name, labels)


def test_idle_route_has_zero_histograms(gateway, nginx):
    """A configured route is in the histograms before its first request,
    at zero, so "no traffic" is told from "no data"; the requests counter
    has no series until a request gives it a method and code."""
    gw = gateway({"static": upstream(nginx.port)},
                 [{"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True},
                  {"name": "idle", "path": "/idle/", "upstream": "static"}])
    st, _, _ = gwtest.get(gw.port, "/static/small.txt")
    assert st == 200
    s = gw.metrics()
    for family in ("portcullis_http_request_duration_seconds",
                   "portcullis_upstream_response_duration_seconds"):
        assert gwtest.metric(s, family + "_count", route="idle") == 0
        assert gwtest.metric(s, family + "_sum", route="idle") == 0
        assert gwtest.metric(s, family + "_bucket", route="idle",
                             le="+Inf") == 0
        assert gwtest.metric(s, family + "_count", route="static") == 1
    assert not gwtest.samples_named(s, "portcullis_http_requests_total",
                                    route="idle")
    # The per-class counter is what the SLO rules read: at 0 from the
    # start for every class of an idle route.
    for cls in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        assert gwtest.metric(s, "portcullis_http_responses_total",
                             route="idle", **{"class": cls}) == 0
    assert gwtest.metric(s, "portcullis_http_responses_total",
                         route="static", **{"class": "2xx"}) == 1
    assert not gwtest.samples_named(s, family + "_count", route="_none")


def test_exposition_passes_promtool(gw):
    run_plan(gw.port, threads=2)
    text = gw.metrics_text()
    p = subprocess.run(["/usr/bin/promtool", "check", "metrics"],
                       input=text.encode(), capture_output=True, timeout=20)
    # promtool exits 0 and says nothing: no parse error, no lint.
    assert p.returncode == 0, p
    problems = [l for l in (p.stdout + p.stderr).decode().splitlines()
                if l.strip()]
    assert not problems, "promtool check metrics (exit %d):\n%s" % (
        p.returncode, "\n".join(problems))


# DESIGN.md's metrics that exist without TLS, realms or AWS, with types.
CONTRACT = {
    "portcullis_http_requests_total": "counter",
    "portcullis_http_responses_total": "counter",
    "portcullis_http_request_duration_seconds": "histogram",
    "portcullis_upstream_response_duration_seconds": "histogram",
    "portcullis_upstream_errors_total": "counter",
    "portcullis_http_request_size_bytes_total": "counter",
    "portcullis_http_response_size_bytes_total": "counter",
    "portcullis_connections_active": "gauge",
    "portcullis_connections_accepted_total": "counter",
    "portcullis_config_last_reload_successful": "gauge",
    "portcullis_config_last_reload_success_timestamp_seconds": "gauge",
    "portcullis_build_info": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_open_fds": "gauge",
}


def test_contract_metric_names(gw):
    listener = gw.config["listeners"][0]["listen"]
    # the fixture's readiness probe must be accepted and gone first
    gwtest.wait_until(lambda: gwtest.metric(
        gw.metrics(), "portcullis_connections_active", listener=listener) == 0,
        5, 0.05, "the readiness probe's connection to close")
    before = gwtest.metric(gw.metrics(), "portcullis_connections_accepted_total",
                           listener=listener)
    opened = run_plan(gw.port, threads=2)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", gw.metrics_text(),
                            re.M))
    missing = sorted(n for n in CONTRACT if n not in types)
    wrong = sorted((n, types[n]) for n in CONTRACT
                   if n in types and types[n] != CONTRACT[n])
    assert not missing and not wrong, (
        "missing from /metrics: %s; wrong type: %s" % (missing, wrong))
    s = gw.metrics()
    assert gwtest.metric(s, "portcullis_connections_accepted_total",
                         listener=listener) == before + opened
    info = gwtest.samples_named(s, "portcullis_build_info")
    assert len(info) == 1 and info[0][1] == 1
    assert info[0][0].get("version")


def test_real_prometheus_scrapes_the_gateway(gw, prometheus_factory):
    prom = prometheus_factory([("portcullis", "127.0.0.1:%d" % gw.admin_port,
                                "/metrics")])
    run_plan(gw.port)

    def query(expr):
        st, _, body = gwtest.get(prom.port, "/prometheus/api/v1/query?"
                                 + urllib.parse.urlencode({"query": expr}))
        assert st == 200, body
        return json.loads(body)["data"]["result"]

    expr = ('sum(portcullis_http_requests_total{job="portcullis",'
            'route="static",method="GET",code="200"})')
    res = gwtest.wait_until(
        lambda: (lambda r: r if r and r[0]["value"][1] == "60" else None)(
            query(expr)), 15, 0.25, "Prometheus to scrape 60 GET 200s")
    assert res[0]["value"][1] == "60"
    up = query('up{job="portcullis"}')
    assert up and up[0]["value"][1] == "1"
