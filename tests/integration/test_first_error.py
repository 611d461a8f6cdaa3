"""A route's first 5xx reaches the availability SLO.

Issue: the per-code counter portcullis_http_requests_total{route,method,
code} is born with its first response, at 1, so rate() over it never sees
the first 502 of a route and slo:errors:rate5m{slo="availability"} stayed
0. The gateway now exports portcullis_http_responses_total{route,class}
with every class at 0 for every configured route from its start, and the
SLO rules read it.

A real Prometheus scrapes a fresh gateway every second and evaluates the
repository's prometheus/rules/slo.yml (unchanged: the short windows run at
the global 1 s interval). The route gets a little traffic, then exactly
one 502 from nginx behind it. Asserted, in Prometheus's own data:
  - before any request, the route's 5xx series exists at 0;
  - the SLO error rate is 0 while only 200s flowed;
  - after the one 502, the raw counter reads 1 and the recorded
    slo:errors:rate5m{slo="availability",route} becomes > 0, within two
    scrapes and one evaluation (waited for with a generous deadline, the
    machine may be busy: the deadline bounds the wait, it is not what is
    measured)."""

import json
import urllib.parse

import pytest

import gwtest
from conftest import REPO, upstream

JOB = "portcullis"
ROUTE = "flaky"
SLO_RULES = REPO / "prometheus" / "rules" / "slo.yml"


def query(prom, expr):
    st, _, body = gwtest.get(prom.port, "/prometheus/api/v1/query?"
                             + urllib.parse.urlencode({"query": expr}))
    assert st == 200, (expr, st, body[:300])
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def value(prom, expr):
    res = query(prom, expr)
    if not res:
        return None
    assert len(res) == 1, (expr, res)
    return float(res[0]["value"][1])


def scrapes_since(prom, t0):
    """Prometheus has completed a scrape of the gateway after time t0."""
    ts = value(prom, 'timestamp(up{job="%s"})' % JOB)
    return ts is not None and ts > t0


@pytest.fixture
def stack(gateway, nginx, prometheus_factory):
    gw = gateway({"web": upstream(nginx.port, keepalive=4)},
                 [{"name": ROUTE, "path": "/flaky/", "upstream": "web",
                   "strip_prefix": True}])
    prom = prometheus_factory([(JOB, "127.0.0.1:%d" % gw.admin_port,
                                "/metrics")], rule_files=[SLO_RULES])
    return gw, prom


def test_first_5xx_of_a_route_counts_against_availability(stack):
    gw, prom = stack
    five = ('portcullis_http_responses_total{job="%s",route="%s",'
            'class="5xx"}' % (JOB, ROUTE))
    slo_errors = ('slo:errors:rate5m{slo="availability",route="%s"}'
                  % ROUTE)
    slo_requests = ('slo:requests:rate5m{slo="availability",route="%s"}'
                    % ROUTE)

    # The route's 5xx series is there, at 0, before its first request.
    gwtest.wait_until(lambda: value(prom, five) is not None, 30, 0.1,
                      "the first scrape of the gateway")
    assert value(prom, five) == 0
    # ... and the SLO error rate is recorded, at 0, for an idle route.
    gwtest.wait_until(lambda: value(prom, slo_errors) is not None, 30, 0.1,
                      "slo:errors:rate5m for the idle route")
    assert value(prom, slo_errors) == 0

    for _ in range(20):
        st, _, _ = gwtest.get(gw.port, "/flaky/small.txt")
        assert st == 200
    gwtest.wait_until(lambda: (value(prom, slo_requests) or 0) > 0, 30, 0.1,
                      "the SLO to see the route's traffic")
    assert value(prom, slo_errors) == 0

    t0 = value(prom, 'timestamp(up{job="%s"})' % JOB)
    st, _, _ = gwtest.get(gw.port, "/flaky/__status/502")
    assert st == 502
    # The gateway counted it, and Prometheus saw the 0 -> 1 increase.
    s = gw.metrics()
    assert gwtest.metric(s, "portcullis_http_responses_total", route=ROUTE,
                         **{"class": "5xx"}) == 1
    gwtest.wait_until(lambda: value(prom, five) == 1, 30, 0.1,
                      "Prometheus to scrape the 502")
    gwtest.wait_until(lambda: (value(prom, slo_errors) or 0) > 0, 30, 0.1,
                      "slo:errors:rate5m{slo=availability} > 0 after the "
                      "route's first 502")
    assert scrapes_since(prom, t0)
    # The error ratio is about 1/21 (rate() extrapolates numerator and
    # denominator alike only when both series span the same samples, so
    # just bound it).
    ratio = value(prom, 'slo:error_ratio:ratio5m{slo="availability",'
                  'route="%s"}' % ROUTE)
    assert ratio is not None and 0 < ratio <= 1
