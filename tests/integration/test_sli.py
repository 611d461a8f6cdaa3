"""SLIs through a real Prometheus: the gateway's request counter and
duration histogram are what the SLO rules read, per route.

    availability = non-5xx / all        latency = share under 0.5 s

A Prometheus of the test's own scrapes the admin listener every second
while traffic flows on three routes:

    avail  nginx:      95 x 200 and exactly 5 x 503 (nginx's /__status/503)
    slow   stub, 0.3 s: 5 requests, all in the le="0.5" bucket
    mixed  stub, per request X-Stub-Delay: 10 fast, 5 x 0.3 s, 5 x 0.7 s,
           so 15 of 20 under 0.5 s

and a few requests that match no route ("_none").

Why the traffic comes in two phases. A route's requests counters appear
with its first request, so the first sample Prometheus holds is already
non-zero, and rate() needs two samples of a series. Each route therefore
gets one fifth of its traffic (in the same proportions as the whole) right
after a scrape and well before the next one, and the other four fifths once
Prometheus holds that first sample. Every counter series of a route then
starts at the same scrape with first/increase = 1/4 and ends at the same
scrape, so rate() extrapolates each of them by the same factor and the
rate-based SLIs equal the cumulative ones. The duration histograms are
exported at zero from the gateway's start, so all of theirs start together
at 0 (the test checks the first samples, so a phase that straddled a
scrape is reported as such)."""

import json
import threading
import time
import urllib.parse

import pytest

import gwtest
from conftest import upstream

JOB = "portcullis"
ROUTES = {"avail", "slow", "mixed"}

AVAIL_OK = "/avail/small.txt"
AVAIL_FAIL = "/avail/__status/503"  # nginx answers 503


class Prom:
    """Queries a Prometheus under its /prometheus/ prefix."""

    def __init__(self, svc):
        self.svc = svc

    def api(self, path, **params):
        st, _, body = gwtest.get(
            self.svc.port, self.svc.prefix + "api/v1/" + path
            + ("?" + urllib.parse.urlencode(params) if params else ""))
        assert st == 200, (path, params, st, body[:500])
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        return self.api("query", **params)["result"]

    def value(self, expr, at=None):
        """The value of a one-element instant vector, or None if empty."""
        res = self.query(expr, at)
        if not res:
            return None
        assert len(res) == 1, (expr, res)
        return float(res[0]["value"][1])

    def last_scrape(self):
        """Timestamp of the newest sample of the gateway's job: it becomes
        visible once that scrape is complete."""
        return self.value('timestamp(up{job="%s"})' % JOB)


def send(port, path, status, delay=None, errors=None):
    headers = {} if delay is None else {"X-Stub-Delay": "%g" % delay}
    try:
        st, _, _ = gwtest.get(port, path, headers=headers, timeout=10)
        if st != status:
            errors.append((path, delay, st))
    except Exception as e:  # reported by the caller, not lost in a thread
        errors.append((path, delay, repr(e)))


def in_parallel(port, groups):
    """Each group is a list of (path, status, delay) sent one after the
    other; the groups run concurrently. Fails on any unexpected answer."""
    errors = []

    def run(group):
        for path, status, delay in group:
            send(port, path, status, delay, errors)

    ts = [threading.Thread(target=run, args=(g,)) for g in groups]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors, errors


def avail_requests(ok, fail):
    """`ok` 200s with the `fail` 503s spread among them."""
    n = ok + fail
    step = n // fail
    return [(AVAIL_FAIL, 503, None) if i % step == step // 2
            else (AVAIL_OK, 200, None) for i in range(n)]


def mixed(fast, d03, d07):
    return ([("/mixed/x", 200, 0)] * fast, [("/mixed/x", 200, 0.3)] * d03,
            [("/mixed/x", 200, 0.7)] * d07)


def sample_range(prom, selector, at):
    """{frozenset(labels): (first timestamp, first value, last value,
    sample count)} of every series `selector` matches in the minute
    before `at`."""
    out = {}
    for s in prom.query("%s[1m]" % selector, at):
        labels = {k: v for k, v in s["metric"].items()
                  if k not in ("__name__", "job", "instance")}
        vals = s["values"]
        out[frozenset(labels.items())] = (vals[0][0], float(vals[0][1]),
                                          float(vals[-1][1]), len(vals))
    return out


@pytest.fixture
def stack(gateway, nginx, stub_factory, prometheus_factory):
    slow = stub_factory("slow", delay=0.3, body_size=64)
    mix = stub_factory("slow", delay=0.0, body_size=64)
    gw = gateway(
        {"avail": upstream(nginx.port, keepalive=8),
         "slow": upstream(slow.port, keepalive=8),
         "mixed": upstream(mix.port, keepalive=8)},
        [{"name": "avail", "path": "/avail/", "upstream": "avail",
          "strip_prefix": True},
         {"name": "slow", "path": "/slow/", "upstream": "slow"},
         {"name": "mixed", "path": "/mixed/", "upstream": "mixed"}],
        workers=2)
    prom = Prom(prometheus_factory([(JOB, "127.0.0.1:%d" % gw.admin_port,
                                     "/metrics")]))
    return gw, prom


def test_slis_through_real_prometheus(stack):
    gw, prom = stack
    t_start = time.monotonic()

    # ---- 1. the target is up, and the targets API agrees
    gwtest.wait_until(lambda: prom.value('up{job="%s"}' % JOB) == 1, 15,
                      0.1, "up{job=%r} == 1" % JOB)
    targets = prom.api("targets", state="active")["activeTargets"]
    mine = [t for t in targets if t["labels"].get("job") == JOB]
    assert len(mine) == 1, targets
    assert mine[0]["health"] == "up", mine[0]
    assert mine[0]["lastError"] == "", mine[0]
    assert mine[0]["scrapeUrl"] == \
        "http://127.0.0.1:%d/metrics" % gw.admin_port, mine[0]

    # requests that match no route: counted under "_none"
    in_parallel(gw.port, [[("/nowhere", 404, None),
                           ("/Slow/x", 404, None)]])

    # ---- phase 1: a fifth of every route's traffic, between two scrapes
    t0 = prom.last_scrape()
    gwtest.wait_until(lambda: prom.last_scrape() != t0, 5, 0.02,
                      "a scrape of the gateway")
    began = time.monotonic()
    fast1, d03_1, d07_1 = mixed(2, 1, 1)
    # the slow ones first, the fast ones once they are done: the phase
    # ends within a few ms of its slowest request
    in_parallel(gw.port, [avail_requests(19, 1), [("/slow/x", 200, None)],
                          d03_1, d07_1])
    in_parallel(gw.port, [fast1])
    phase1 = time.monotonic() - began
    gwtest.wait_until(
        lambda: prom.value('sum(portcullis_http_requests_total{route="avail"})'
                           ) == 20
        and prom.value('sum(portcullis_http_request_duration_seconds_count'
                       '{route=~"slow|mixed"})') == 5,
        10, 0.1, "Prometheus to scrape phase 1")

    # ---- phase 2: the other four fifths, concurrently
    fast2, d03_2, d07_2 = mixed(8, 4, 4)
    in_parallel(gw.port, [avail_requests(76, 4)]
                + [[("/slow/x", 200, None)]] * 4
                + [[r] for r in d03_2 + d07_2] + [fast2])
    gwtest.wait_until(
        lambda: prom.value('sum(portcullis_http_requests_total{route="avail"})'
                           ) == 100
        and prom.value('portcullis_http_request_duration_seconds_count'
                       '{route="slow"}') == 5
        and prom.value('portcullis_http_request_duration_seconds_count'
                       '{route="mixed"}') == 20,
        10, 0.1, "Prometheus to scrape all the requests")
    at = time.time()  # every query below is evaluated at this instant

    # ---- 2. availability, cumulative: exactly 95 of 100
    assert prom.value('sum(portcullis_http_requests_total'
                      '{route="avail",code="503"})', at) == 5
    assert prom.value('sum(portcullis_http_requests_total'
                      '{route="avail",code="200"})', at) == 95
    avail = prom.value(
        'sum(portcullis_http_requests_total{route="avail",code!~"5.."})'
        ' / sum(portcullis_http_requests_total{route="avail"})', at)
    assert avail == pytest.approx(0.95, abs=1e-9)

    # ---- 3. latency, cumulative: the buckets hold what was sent
    def bucket(route, le):
        return prom.value('portcullis_http_request_duration_seconds_bucket'
                          '{route="%s",le="%s"}' % (route, le), at)
    assert (bucket("slow", "0.25"), bucket("slow", "0.5")) == (0, 5)
    assert (bucket("mixed", "0.25"), bucket("mixed", "0.5"),
            bucket("mixed", "1"), bucket("mixed", "+Inf")) == (10, 15, 20, 20)

    # The premise of the rate() checks. The requests counters started at
    # one scrape, at a fifth of their final value (phase 1); the duration
    # histograms of configured routes are exported at zero from the start,
    # so theirs began earlier, at 0. Each has >= 2 samples in the window.
    counters = sample_range(
        prom, 'portcullis_http_requests_total{route="avail"}', at)
    hists = {}
    for sel in ('portcullis_http_request_duration_seconds_count'
                '{route=~"slow|mixed"}',
                'portcullis_http_request_duration_seconds_bucket'
                '{route=~"slow|mixed"}'):
        hists.update(sample_range(prom, sel, at))
    series = {**counters, **hists}
    odd = {k: v for k, v in counters.items() if v[1] * 5 != v[2] or v[3] < 2}
    odd.update({k: v for k, v in hists.items() if v[1] != 0 or v[3] < 2})
    starts = {v[0] for v in counters.values()}
    hist_starts = {v[0] for v in hists.values()}
    assert len(counters) == 2 and len(hists) == 2 + 2 * 15 and not odd \
        and len(starts) == 1 and len(hist_starts) == 1 \
        and min(hist_starts) <= min(starts), (
            "phase 1 (%.3fs) straddled a scrape? (first t, first, last, "
            "samples): %r" % (phase1, odd or series))

    # ---- 2. availability, the SLO rules' rate() form
    avail_rate = prom.value(
        'sum(rate(portcullis_http_requests_total'
        '{route="avail",code!~"5.."}[1m]))'
        ' / sum(rate(portcullis_http_requests_total{route="avail"}[1m]))',
        at)
    assert avail_rate == pytest.approx(0.95, abs=0.01), series

    # ---- 3. latency, the SLO rules' rate() form
    def p99(route):
        return prom.value(
            'histogram_quantile(0.99, sum by (le) (rate('
            'portcullis_http_request_duration_seconds_bucket'
            '{route="%s"}[1m])))' % route, at)

    def under_half_second(route):
        return prom.value(
            'sum(rate(portcullis_http_request_duration_seconds_bucket'
            '{route="%s",le="0.5"}[1m]))'
            ' / sum(rate(portcullis_http_request_duration_seconds_count'
            '{route="%s"}[1m]))' % (route, route), at)

    # 0.3 s requests: every one in (0.25, 0.5], so the quantile is
    # interpolated inside that bucket: 0.25 + 0.25 * 0.99
    q = p99("slow")
    assert 0.25 < q <= 0.5, q
    assert q == pytest.approx(0.4975, abs=1e-9)
    assert under_half_second("slow") == 1.0
    # nginx on loopback: all fast
    assert p99("avail") < 0.25
    assert under_half_second("avail") == 1.0
    # 15 of 20 under 0.5 s; the 0.7 s ones are the top quarter, in (0.5, 1]
    assert under_half_second("mixed") == pytest.approx(0.75, abs=0.02), \
        series
    q = p99("mixed")  # rank 19.8 of 20: 0.5 + 0.5 * (19.8 - 15) / 5
    assert 0.5 < q <= 1.0
    assert q == pytest.approx(0.98, abs=0.01)

    # ---- 4. route labels are route names, never paths
    routes = {r["metric"].get("route") for r in prom.query(
        'count by (route) ({job="%s", route!=""})' % JOB, at)}
    assert routes == ROUTES | {"_none"}, routes
    assert {l["route"] for _, l, _ in gw.metrics() if "route" in l} == \
        ROUTES | {"_none"}

    # ---- 1 again: no scrape failed while traffic flowed
    assert prom.value('min_over_time(up{job="%s"}[1m])' % JOB, at) == 1
    target = [t for t in prom.api("targets", state="active")["activeTargets"]
              if t["labels"].get("job") == JOB]
    assert [(t["health"], t["lastError"]) for t in target] == [("up", "")]
    assert time.monotonic() - t_start < 40
