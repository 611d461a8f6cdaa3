"""Grafana dashboards (grafana/dashboards/*.json) and their provisioning:
every panel query parses, the structure holds, every query returns data
from a live Prometheus fed by real traffic, none returns NaN on an idle
gateway, and the cost panels outlive a missed scrape.

  parse      tests/tools/dashboard_queries.py writes every query (variables
             substituted) as a recording rule and runs `promtool check
             rules`; a broken expr makes it exit 1 naming dashboard, panel
             and refId (checked on a copy with one expr broken).
  structure  uids per the contract, provisioned datasource uids on every
             panel, unique ids and titles, refId and expr on every target,
             $__rate_interval as every rate() range, no overlapping panels,
             every slo:* series a dashboard reads is recorded by
             prometheus/rules/slo.yml or probe.yml (or listed in UNVERIFIED), every
             cost-exporter gauge read through last_over_time, the
             provisioning files' settings.
  live       a gateway with routes "app" and "secure" (basic auth, users
             from a Secrets Manager secret on tests/tools/fake_aws.py,
             refreshed every second) to a stub upstream, and "down" to a
             closed port (502, upstream connect errors), on a plain and a
             TLS listener (self-signed certificate made at start); node-
             exporter; Debian's blackbox exporter probing route "app"
             through the TLS listener (job probe, labelled route, as
             prometheus/prometheus.yml will scrape it); a Prometheus of the
             test's own scraping them every second with the SLO rules of
             prometheus/rules/slo.yml, sending to a real Alertmanager. A
             background driver sends, every second: fast requests, one
             0.7 s request (over the latency threshold), 502s, good, cached,
             wrong and missing passwords, TLS requests, a plain-text request
             on the TLS port (a failed handshake) and an unmatched path.
             Then every query of every dashboard (and of their variables)
             must return at least one series, every value finite, through
             /api/v1/query, and the panels in NONZERO a value above zero; a
             failure names dashboard, panel, refId. Every metric name a
             dashboard reads is then among the series that Prometheus holds,
             or in UNVERIFIED.
  idle       the same gateway with routes that never get a request ("app",
             "secure", "quiet") and one only the blackbox exporter probes
             ("probed"): every query of the gateway, SLO and Prometheus
             dashboards, evaluated as a range query over the last 30 s and
             at the end, has no NaN or infinite sample, returns a series
             (unless the panel sets a noValue text, what Grafana then shows
             instead of "No data"), and every per-route panel has a series
             for every configured route. The gateway's /metrics proves the
             idle routes stayed without a request. Every metric the
             Prometheus dashboard reads is in that Prometheus.
  stale      the cost panels against a Prometheus scraping a stand-in
             exporter that stops answering: once the bare metric has gone
             stale (the instant selector is empty), every cost panel still
             shows the last scraped value.

The SLO rules run time-compressed (compressed_slo_rules): the long-window
group's own 1m interval is dropped, so it evaluates at the test
Prometheus's 1 s like the rest, and the alerts lose their `for`, so
SLOErrorBudgetBurn fires within seconds instead of minutes. Expressions and
record names are the file's own.

Cost dashboard: its panels are checked against COST_METRICS, a stand-in
exposition of the cost exporter's aws_cost_* metrics served by this test
(job "cost-exporter"): that proves names, labels and joins agree with the
exporter's contract (cost-exporter/README.md) without Cost Explorer;
tests/integration/test_cost_exporter.py checks the exporter itself.

No panel is excluded from the live check (LIVE_EXCLUDED is empty). Metric
names no file on this branch produces are accepted only when listed in
UNVERIFIED, with the file that will."""

import http.server
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
import yaml

import gwtest
from conftest import (PROMETHEUS, PYTHON, REPO, TOOLS, Proc, Service,
                      each_in_own_dir, free_port, make_config, upstream,
                      wait_http)

sys.path.insert(0, str(TOOLS))
import dashboard_queries as dq  # noqa: E402

TOOL = TOOLS / "dashboard_queries.py"
SLO_RULES = REPO / "prometheus" / "rules" / "slo.yml"
PROBE_RULES = REPO / "prometheus" / "rules" / "probe.yml"
PROVIDER = REPO / "grafana" / "provisioning" / "dashboards" / "provider.yml"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"

UIDS = {"portcullis-slo", "portcullis-gateway", "portcullis-host",
        "portcullis-cost", "portcullis-prometheus"}
VARIABLES = {"portcullis-slo": {"route"}, "portcullis-gateway": {"route"},
             "portcullis-host": {"instance"},
             "portcullis-cost": {"environment"},
             "portcullis-prometheus": set()}

# Metric names a dashboard reads that no file on this branch produces, each
# with the file that will. Only these may be absent from the live
# Prometheus (a query reading nothing else may return no series); remove an
# entry when its file is merged.
UNVERIFIED = {}

# (dashboard uid, panel title) -> why it is not checked live. Keep empty
# unless a query truly cannot have data under test.
LIVE_EXCLUDED = {}

# Panels whose value the driven traffic makes positive: an empty-looking
# zero there means the query reads the wrong series or labels.
NONZERO = {
    ("portcullis-slo", "SLO events per second (5m)"),
    ("portcullis-slo", "Burn rate: fast page (1h and 5m above 14.4)"),
    ("portcullis-slo", "Burn rate: slow page (6h and 30m above 6)"),
    ("portcullis-slo", "Burn rate: ticket (3d and 6h above 1, or 1d and 2h above 3)"),
    ("portcullis-slo", "Error ratio by window"),
    ("portcullis-slo", "SLO alerts firing"),
    ("portcullis-slo", "SLO alert history"),
    ("portcullis-gateway", "Requests per second"),
    ("portcullis-gateway", "5xx share"),
    ("portcullis-gateway", "p99 latency"),
    ("portcullis-gateway", "Requests slower than 0.5 s"),
    ("portcullis-gateway", "Request rate by route"),
    ("portcullis-gateway", "Responses by status"),
    ("portcullis-gateway", "5xx error ratio by route"),
    ("portcullis-gateway", "Bytes per second by route"),
    ("portcullis-gateway", "Request duration p50 by route"),
    ("portcullis-gateway", "Request duration p95 by route"),
    ("portcullis-gateway", "Request duration p99 by route"),
    ("portcullis-gateway", "Upstream response time p99 by route"),
    ("portcullis-gateway", "Upstream errors by route and reason"),
    ("portcullis-gateway", "Connections accepted by listener"),
    ("portcullis-gateway", "TLS handshakes by result"),
    ("portcullis-gateway", "Certificate expiry (days left)"),
    ("portcullis-gateway", "Auth results by realm"),
    ("portcullis-gateway", "Password hash verifications by realm"),
    ("portcullis-gateway", "Secret refreshes by result"),
    ("portcullis-cost", "Exporter refreshes by result"),
    ("portcullis-cost", "Cost Explorer API requests"),
    ("portcullis-slo", "Probe duration by route"),
    ("portcullis-slo", "Certificate days left, as clients see it"),
    ("portcullis-prometheus", "Targets up"),
    ("portcullis-prometheus", "Uptime"),
    ("portcullis-prometheus", "Head series"),
    ("portcullis-prometheus", "Scrape duration by job"),
    ("portcullis-prometheus", "Samples scraped by job"),
    ("portcullis-prometheus", "Rule group evaluation duration"),
    ("portcullis-prometheus", "Samples appended per second"),
    ("portcullis-prometheus", "Notifications sent"),
    ("portcullis-prometheus", "Resident memory"),
}

ROUTES = ("app", "secure", "down")
REALM = "prom"
SECRET = "prometheus/prometheus-auth"
REGION = "eu-west-1"
KEY_ID = "AKIDTEST"
KEY_SECRET = "fake-aws-static-secret-key-0123456789ab"
ENVIRONMENT = "local"


# ------------------------------------------------------------ parse/structure


def run_tool(*args):
    r = subprocess.run([PYTHON, str(TOOL)] + list(args), capture_output=True,
                       text=True, timeout=120, cwd=REPO)
    return r.returncode, r.stdout, r.stderr


def test_every_panel_query_parses():
    rc, out, err = run_tool()
    assert rc == 0, out + err
    n = sum(1 for _ in dq.queries())
    assert "%d dashboards, %d queries" % (len(UIDS), n) in out, out
    assert n >= 100, "only %d queries" % n


def test_a_broken_query_fails_the_check_naming_its_panel(tmp_path):
    for f in dq.DASHBOARDS.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / "gateway.json"
    dash = json.loads(path.read_text())
    panel = next(p for p in dash["panels"]
                 if p["title"] == "Request rate by route")
    assert panel["targets"][0]["expr"].endswith("))")
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"][:-1]
    path.write_text(json.dumps(dash))
    rc, out, err = run_tool("--dashboards", str(tmp_path))
    assert rc == 1, out + err
    assert "portcullis-gateway panel 'Request rate by route' target A: " \
        "could not parse expression" in err, err
    assert err.count("could not parse") == 1, err

    # an unprovisioned datasource and an unknown variable: structure
    panel["targets"][0]["expr"] += ")"
    panel["datasource"] = {"type": "prometheus", "uid": "prom"}
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace(
        "$route", "$rout")
    path.write_text(json.dumps(dash))
    rc, out, err = run_tool("--dashboards", str(tmp_path))
    assert rc == 1, out + err
    assert "panel 'Request rate by route' (id %d): datasource uid 'prom' " \
        "is not provisioned" % panel["id"] in err, err
    assert "target A: unknown variable $rout" in err, err


def test_structure():
    ds = dq.provisioned()
    assert ds == {"prometheus": "prometheus",
                  "alertmanager": "alertmanager"}, ds
    dashboards = dq.load()
    assert {d["uid"] for _, d in dashboards} == UIDS
    bad = []
    for path, dash in dashboards:
        bad += dq.problems(path, dash, ds)
    assert not bad, "\n".join(bad)
    for path, dash in dashboards:
        uid = dash["uid"]
        assert {v["name"] for v in dq.variables(dash)} == VARIABLES[uid]
        assert 36 <= dash["schemaVersion"] <= 41, uid
        assert dash["editable"] is False and dash["tags"][0] == "portcullis"
        cells = {}
        for p in dq.panels(dash):
            where = "%s panel %r" % (uid, p["title"])
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus",
                                           "uid": "prometheus"}, where
                assert p.get("description"), where + ": no description"
            g = p["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, \
                where
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, "%s overlaps %r" % (
                        where, cells[(x, y)])
                    cells[(x, y)] = p["title"]
            for t in p.get("targets") or []:
                for m in re.finditer(r"\b(i?rate)\([^\[]*\[([^\]]*)\]",
                                     t["expr"]):
                    assert m.group(2) == "$__rate_interval", (
                        "%s target %s: %s() over [%s], not "
                        "[$__rate_interval]" % (where, t["refId"],
                                                m.group(1), m.group(2)))


def test_dashboards_read_only_recorded_slo_series():
    assert SLO_RULES.is_file(), "%s is missing" % SLO_RULES
    recorded = {r["record"] for f in (SLO_RULES, PROBE_RULES) for g in
                yaml.safe_load(f.read_text())["groups"]
                for r in g["rules"] if "record" in r}
    used = {}
    for q in dq.queries():
        for name in re.findall(r"\bslo:[a-z0-9_]+:[a-z0-9_]+", q.expr):
            used.setdefault(name, (q.dashboard, q.panel))
    assert used, "no dashboard reads an slo:* series"
    missing = {n: w for n, w in used.items()
               if n not in recorded and n not in UNVERIFIED}
    assert not missing, "read but not recorded by %s or %s: %r" % (
        SLO_RULES.name, PROBE_RULES.name, missing)
    # every window of the contract is on the SLO dashboard
    for w in ("5m", "1h", "6h", "3d"):
        assert "slo:burn_rate:ratio" + w in used, w
    for name in ("slo:objective:ratio", "slo:sli:ratio30d",
                 "slo:error_budget_remaining:ratio"):
        assert name in used, name


COST_SCRAPE_INTERVAL = 300  # s, job cost-exporter in prometheus/prometheus.yml


def test_cost_gauges_are_read_through_last_over_time():
    """A failed scrape makes every series of the job stale at once; the cost
    exporter is scraped every 5 minutes, so an instant selector would leave
    a panel blank until the next good scrape. Every aws_cost_* gauge must
    be read as last_over_time(...[W]) with W over two scrape intervals (a
    missed scrape, and the next one's timeout)."""
    conf = yaml.safe_load((REPO / "prometheus" / "prometheus.yml")
                          .read_text())
    [job] = [j for j in conf["scrape_configs"]
             if j["job_name"] == "cost-exporter"]
    assert job["scrape_interval"] == "%dm" % (COST_SCRAPE_INTERVAL // 60)
    seen = 0
    for q in dq.queries():
        if q.dashboard != "portcullis-cost":
            continue
        for m in re.finditer(r"\b(aws_cost_\w+)\{[^}]*\}(\[(\w+)\])?",
                             q.expr):
            if m.group(1).endswith("_total"):
                continue  # counters: read by increase() over a range
            if q.panel.startswith("variable "):
                continue  # label_values: the series API, not a sample
            seen += 1
            where = "%s: %s" % (q.panel, m.group(0))
            assert q.expr[:m.start()].endswith("last_over_time("), where
            w = m.group(3)
            assert w and w.endswith("m") and \
                int(w[:-1]) * 60 > 2 * COST_SCRAPE_INTERVAL, where
    assert seen >= 10, seen


def test_provisioning_files():
    with open(dq.DATASOURCES) as f:
        doc = yaml.safe_load(f)
    assert doc["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    p, a = by_uid["prometheus"], by_uid["alertmanager"]
    assert (p["type"], p["url"], p["isDefault"], p["editable"],
            p["access"]) == ("prometheus", "http://prometheus:9090", True,
                             False, "proxy")
    assert p["jsonData"]["timeInterval"] == "15s"
    assert (a["type"], a["url"], a["editable"],
            a["jsonData"]["implementation"]) == (
        "alertmanager", "http://alertmanager:9093", False, "prometheus")
    assert not a.get("isDefault")
    with open(PROVIDER) as f:
        doc = yaml.safe_load(f)
    assert doc["apiVersion"] == 1
    [prov] = doc["providers"]
    assert (prov["type"], prov["folder"], prov["allowUiUpdates"],
            prov["options"]["path"]) == ("file", "portcullis", False,
                                         "/var/lib/grafana/dashboards")


# ------------------------------------------------------------------- live


class Prom:
    """Instant queries against a Prometheus under /prometheus/."""

    def __init__(self, svc):
        self.svc = svc

    def query(self, expr):
        st, _, body = gwtest.get(
            self.svc.port, self.svc.prefix + "api/v1/query?"
            + urllib.parse.urlencode({"query": expr}))
        doc = json.loads(body)
        assert st == 200 and doc["status"] == "success", (expr, st, doc)
        return doc["data"]["result"]

    def value(self, expr):
        res = self.query(expr)
        return float(res[0]["value"][1]) if res else None

    def query_range(self, expr, seconds, step=1):
        """Every value of expr over the last `seconds`, as Grafana asks."""
        end = time.time()
        st, _, body = gwtest.get(
            self.svc.port, self.svc.prefix + "api/v1/query_range?"
            + urllib.parse.urlencode({"query": expr, "start": end - seconds,
                                      "end": end, "step": step}))
        doc = json.loads(body)
        assert st == 200 and doc["status"] == "success", (expr, st, doc)
        return doc["data"]["result"]

    def names(self):
        """Every metric name Prometheus holds: scraped, synthetic (up,
        scrape_*) and recorded."""
        st, _, body = gwtest.get(self.svc.port, self.svc.prefix
                                 + "api/v1/label/__name__/values")
        assert st == 200, body
        return set(json.loads(body)["data"])


def start_prometheus(tmp, public_port, scrape_configs, rule_files=(),
                     alertmanager=None):
    """conftest.start_prometheus with scrape configs of the caller's (dicts:
    the blackbox job needs params and relabelling) and, if given, a real
    Alertmanager (a conftest Service) to send alerts to. Scrapes itself as
    job prometheus; everything every second. The caller stops .proc."""
    port = free_port()
    conf = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "prometheus",
                "metrics_path": "/prometheus/metrics",
                "static_configs": [{"targets": ["127.0.0.1:%d" % port]}]}]
            + list(scrape_configs)}
    if rule_files:
        conf["rule_files"] = []
        for f in rule_files:
            (tmp / f.name).write_bytes(f.read_bytes())
            conf["rule_files"].append(f.name)
    if alertmanager is not None:
        conf["alerting"] = {"alertmanagers": [{
            "path_prefix": alertmanager.prefix,
            "static_configs": [{"targets": [
                "127.0.0.1:%d" % alertmanager.port]}]}]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(conf))
    proc = Proc("prometheus", [
        PROMETHEUS,
        "--web.listen-address=127.0.0.1:%d" % port,
        "--web.external-url=http://127.0.0.1:%d/prometheus/" % public_port,
        "--storage.tsdb.path=%s" % (tmp / "data"),
        "--config.file=%s" % (tmp / "prometheus.yml")], tmp, cwd=tmp)
    try:
        wait_http(proc, port, "/prometheus/-/ready", timeout=60)
    except BaseException:
        proc.stop()
        raise
    return Service(proc, port, "/prometheus/")


@pytest.fixture
def own_prometheus(tmp_path, public_port):
    """own_prometheus(scrape_configs, rule_files=(), alertmanager=None):
    see start_prometheus; every one is stopped at teardown."""
    def start_in(d, scrape_configs, rule_files=(), alertmanager=None):
        return start_prometheus(d, public_port, scrape_configs, rule_files,
                                alertmanager)
    yield from each_in_own_dir(tmp_path, "own-prometheus", start_in)


def job(name, target, path="/metrics"):
    return {"job_name": name, "metrics_path": path,
            "static_configs": [{"targets": [target]}]}


BLACKBOX_CONFIG = """modules:
  https_200:
    prober: http
    timeout: 5s
    http:
      valid_status_codes: [200]
      fail_if_not_ssl: true
      tls_config:
        insecure_skip_verify: true  # the test gateway's self-signed cert
"""


@pytest.fixture
def blackbox(tmp_path):
    """Debian's blackbox exporter on a free port; returns "host:port"."""
    port = free_port()
    d = tmp_path / "blackbox"
    d.mkdir()
    (d / "blackbox.yml").write_text(BLACKBOX_CONFIG)
    proc = Proc("blackbox", [
        BLACKBOX, "--config.file=%s" % (d / "blackbox.yml"),
        "--web.listen-address=127.0.0.1:%d" % port], d)
    try:
        wait_http(proc, port, "/metrics", timeout=20)
        yield "127.0.0.1:%d" % port
    finally:
        proc.stop()


def probe_job(blackbox_addr, urls):
    """Job probe: the blackbox exporter requests each {route: url}, one
    target per route labelled with it (the shape of the stack's job)."""
    return {"job_name": "probe", "metrics_path": "/probe",
            "params": {"module": ["https_200"]},
            "static_configs": [{"targets": [u], "labels": {"route": r}}
                               for r, u in sorted(urls.items())],
            "relabel_configs": [
                {"source_labels": ["__address__"],
                 "target_label": "__param_target"},
                {"source_labels": ["__param_target"],
                 "target_label": "instance"},
                {"target_label": "__address__",
                 "replacement": blackbox_addr}]}


def compressed_slo_rules(dst):
    return compressed_rules(SLO_RULES, dst)


def compressed_rules(src, dst):
    """The rule file src with every group at the global (1 s) interval
    and no `for` on the alerts, written to dst."""
    assert src.is_file(), "%s is missing" % src
    doc = yaml.safe_load(src.read_text())
    alerts = 0
    for g in doc["groups"]:
        g.pop("interval", None)
        for r in g["rules"]:
            if "alert" in r:
                r.pop("for", None)
                alerts += 1
    assert alerts, "no alert in %s" % src
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


@pytest.fixture
def node_exporter(tmp_path):
    port = free_port()
    d = tmp_path / "node-exporter"
    d.mkdir()
    proc = Proc("node-exporter", [NODE_EXPORTER,
                                  "--web.listen-address=127.0.0.1:%d" % port],
                d)
    try:
        wait_http(proc, port, "/metrics", timeout=20)
        yield "127.0.0.1:%d" % port
    finally:
        proc.stop()


COST_METRICS = """\
# Stand-in for the cost exporter: its names and labels.
aws_cost_daily_usd{environment="local",service="Amazon EC2",day="yesterday"} 1.62
aws_cost_daily_usd{environment="local",service="Amazon S3",day="yesterday"} 0.11
aws_cost_daily_usd{environment="local",service="Amazon EC2",day="today"} 0.70
aws_cost_daily_usd{environment="local",service="Amazon S3",day="today"} 0.04
aws_cost_month_to_date_usd{environment="local"} 21.37
aws_cost_month_to_date_by_service_usd{environment="local",service="Amazon EC2"} 19.80
aws_cost_month_to_date_by_service_usd{environment="local",service="Amazon S3"} 1.57
aws_cost_forecast_month_usd{environment="local"} 48.10
aws_cost_seven_day_average_daily_usd{environment="local"} 1.55
aws_cost_exporter_last_success_timestamp_seconds{environment="local"} %(now).0f
aws_cost_exporter_refresh_total{environment="local",result="ok"} %(n)d
aws_cost_exporter_refresh_total{environment="local",result="error"} 0
aws_cost_exporter_api_requests_total{environment="local"} %(api)d
aws_cost_exporter_build_info{environment="local",version="0.0.0-test"} 1
aws_cost_exporter_missing_dates{environment="local"} 0
"""


class CostStandIn:
    """COST_METRICS on /metrics of a thread in this process (.addr); the
    counters grow with every scrape. While .failing is set, it answers 503:
    a failed scrape."""

    def __init__(self, srv, failing):
        self.addr = "127.0.0.1:%d" % srv.server_address[1]
        self.failing = failing


@pytest.fixture
def cost_stand_in():
    scrapes = [0]
    failing = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if failing.is_set():
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            scrapes[0] += 1
            body = (COST_METRICS % {"now": time.time() - 60,
                                    "n": scrapes[0],
                                    "api": 3 * scrapes[0]}).encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield CostStandIn(srv, failing)
    srv.shutdown()
    srv.server_close()
    t.join(5)


class Driver(threading.Thread):
    """Sends the traffic mix (see the module docstring) every second until
    stop(); unexpected answers are kept in .errors."""

    def __init__(self, gw, tls_port, user, password):
        super().__init__(daemon=True)
        self.gw, self.tls_port = gw, tls_port
        self.auth = gwtest.basic_auth(user, password)
        self.wrong = gwtest.basic_auth(user, password + "-wrong")
        self.errors = []
        self.rounds = 0
        self._halt = threading.Event()

    def expect(self, status, fn, what):
        try:
            got = fn()
        except Exception as e:  # reported by the test, not lost here
            got = repr(e)
        if got != status:
            self.errors.append((what, status, got))

    def get(self, path, auth=None, delay=None):
        headers = {}
        if auth:
            headers["Authorization"] = auth
        if delay is not None:
            headers["X-Stub-Delay"] = "%g" % delay
        return gwtest.get(self.gw.port, path, headers=headers)[0]

    def tls_get(self, path):
        return gwtest.tls_request(self.tls_port, "GET", path).status

    def plain_on_tls(self):
        """A plain-text request on the TLS port: the gateway closes (or
        resets) it, a failed handshake."""
        with socket.create_connection(("127.0.0.1", self.tls_port),
                                      timeout=5) as s:
            s.sendall(b"GET /app/x HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        return "closed"

    def one_round(self):
        slow = threading.Thread(target=self.expect, args=(
            200, lambda: self.get("/app/slow", delay=0.7), "slow request"))
        slow.start()
        for i in range(10):
            self.expect(200, lambda: self.get("/app/x%d" % i), "app")
        for _ in range(3):
            self.expect(502, lambda: self.get("/down/x"), "down")
        for _ in range(2):
            self.expect(200, lambda: self.get("/secure/x", self.auth),
                        "secure, right password")
        self.expect(401, lambda: self.get("/secure/x", self.wrong),
                    "secure, wrong password")
        self.expect(401, lambda: self.get("/secure/x"), "secure, no password")
        self.expect(404, lambda: self.get("/nowhere"), "unmatched path")
        for path in ("/app/tls", "/secure/tls"):
            want = 200 if path == "/app/tls" else 401
            self.expect(want, lambda: self.tls_get(path), "TLS " + path)
        self.expect("closed", self.plain_on_tls, "plain HTTP on TLS")
        slow.join(10)
        self.rounds += 1

    def run(self):
        while not self._halt.is_set():
            t0 = time.monotonic()
            self.one_round()
            self._halt.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    def stop(self):
        self._halt.set()
        self.join(20)


def start_gateway(fake_aws, gateway, stub_factory, tmp_path, routes):
    """The gateway of the live and idle stacks: `routes` to a stub upstream
    ("app", plus "down": a closed port), realm REALM from a Secrets Manager
    secret on the fake AWS, a plain and a TLS listener. Returns (gateway,
    TLS port, password) once /readyz answers."""
    password = "pw-dashboards-0123"
    fake = fake_aws({"region": REGION, "static_keys": {KEY_ID: KEY_SECRET},
                     "secrets": {SECRET: json.dumps(
                         {"username": "alice", "password": password})}})
    app = stub_factory("slow", delay=0, body_size=64)
    cfg = make_config(
        free_port(), free_port(),
        {"app": upstream(app.port, keepalive=8),
         "down": upstream(free_port(), connect_timeout="1s")},  # closed
        routes,
        realms={REALM: {"aws_secret": SECRET, "secret_refresh": "1s",
                        "max_failures": 0}})
    tls_port = free_port()
    cfg["listeners"].append({"listen": "127.0.0.1:%d" % tls_port,
                             "tls": True, "routes": routes})
    cfg["tls"] = {"certificates": [{
        "cert": str(tmp_path / "gw.crt"), "key": str(tmp_path / "gw.key"),
        "self_signed": {"common_name": "gw.test",
                        "alt_names": ["gw.test", "127.0.0.1"]}}]}
    gw = gateway.start_config(cfg, env={
        "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY_SECRET,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/",
        "AWS_EC2_METADATA_DISABLED": "true"})
    gwtest.wait_until(lambda: gwtest.get(gw.admin_port, "/readyz")[0] == 200,
                      15, 0.1, "the gateway to be ready (secret fetched)")
    return gw, tls_port, password


@pytest.fixture
def stack(fake_aws, gateway, stub_factory, node_exporter, cost_stand_in,
          blackbox, alertmanager, own_prometheus, tmp_path):
    routes = [{"name": "app", "path": "/app/", "upstream": "app"},
              {"name": "secure", "path": "/secure/", "upstream": "app",
               "realm": REALM},
              {"name": "down", "path": "/down/", "upstream": "down"}]
    gw, tls_port, password = start_gateway(fake_aws, gateway, stub_factory,
                                           tmp_path, routes)
    prom = Prom(own_prometheus(
        [job("portcullis", "127.0.0.1:%d" % gw.admin_port),
         job("node", node_exporter),
         job("cost-exporter", cost_stand_in.addr),
         probe_job(blackbox, {
             "app": "https://127.0.0.1:%d/app/probe" % tls_port})],
        rule_files=[compressed_slo_rules(tmp_path / "slo.yml"),
                    compressed_rules(PROBE_RULES, tmp_path / "probe.yml")],
        alertmanager=alertmanager))
    driver = Driver(gw, tls_port, "alice", password)
    driver.start()
    yield gw, prom, node_exporter
    driver.stop()
    assert not driver.errors, driver.errors[:20]


# a metric name: an identifier right before its {label matchers}
NAME_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def metric_names(expr):
    """The metric names a query reads (every selector has matchers)."""
    return set(NAME_RE.findall(re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)))


def unverified_only(expr):
    names = metric_names(expr)
    return bool(names) and names <= set(UNVERIFIED)


def check(prom, t):
    """None if the query of Target t has a series, every value finite (a
    positive one for NONZERO panels), else what it returned. A query that
    reads only UNVERIFIED names may return nothing."""
    res = prom.query(t.expr)
    vals = [float(s["value"][1]) for s in res]
    finite = [v for v in vals if math.isfinite(v)]
    if len(finite) != len(vals):
        return "a value that is not finite: %r" % (res[:4],)
    if not finite:
        if not res and unverified_only(t.expr):
            return None
        return "no finite value: %r" % (res[:4],)
    if (t.dashboard, t.panel) in NONZERO and not any(v > 0 for v in finite):
        return "no value above 0: %r" % (res[:4],)
    return None


def test_every_query_returns_data_live(stack):
    gw, prom, node = stack
    t_start = time.monotonic()
    values = {"route": "(%s)" % "|".join(ROUTES),
              # as Grafana writes a multi-value variable: regex-escaped
              "instance": re.escape(node).replace("\\", "\\\\"),
              "environment": "(%s)" % ENVIRONMENT}
    live = [t for t in dq.targets(values=values)
            if (t.dashboard, t.panel) not in LIVE_EXCLUDED]
    assert {t.dashboard for t in live} == UIDS
    for key in NONZERO:
        assert any((t.dashboard, t.panel) == key for t in live), key

    failing = {}

    def fast_burn_firing():
        """(route, slo) of every firing SLOErrorBudgetBurn."""
        return {(a["metric"]["route"], a["metric"]["slo"]) for a in
                prom.query('ALERTS{alertname="SLOErrorBudgetBurn",'
                           'alertstate="firing"}')}

    def all_pass():
        failing.clear()
        for t in live:
            why = check(prom, t)
            if why:
                failing[t] = why
        # SLODataAbsent fires before the first request: wait for the alert
        # the traffic causes too, or the alert panels pass on that alone
        return not failing and ("down", "availability") in fast_burn_firing()
    try:
        gwtest.wait_until(all_pass, 60, 1.0, "every dashboard query to "
                          "return data")
    except AssertionError:
        pass
    assert not failing, "%d of %d queries without data:\n%s" % (
        len(failing), len(live), "\n".join(
            "%s panel %r target %s: %s\n    %s" % (
                t.dashboard, t.panel, t.ref_id or "-", why, t.expr)
            for t, why in failing.items()))

    # the template variables offer what was driven
    def label_values(dashboard, var, label):
        [t] = [t for t in live if t.dashboard == dashboard
               and t.panel == "variable $" + var]
        return {s["metric"].get(label) for s in prom.query(t.expr)}
    assert set(ROUTES) <= label_values("portcullis-slo", "route", "route")
    assert set(ROUTES) <= label_values("portcullis-gateway", "route",
                                       "route")
    assert label_values("portcullis-host", "instance", "instance") == {node}
    assert label_values("portcullis-cost", "environment",
                        "environment") == {ENVIRONMENT}
    # the SLO alert panels show the route that fails every request
    assert ("down", "availability") in fast_burn_firing()
    # every metric name a dashboard reads is in Prometheus, or listed
    held = prom.names()
    unknown = {}
    for t in live:
        for n in metric_names(t.expr) - held - set(UNVERIFIED):
            unknown.setdefault(n, (t.dashboard, t.panel))
    assert not unknown, "read by a dashboard, unknown to Prometheus and " \
        "not in UNVERIFIED: %r" % unknown
    stale = set(UNVERIFIED) & held
    assert not stale, "in UNVERIFIED but produced here: %r" % stale
    assert time.monotonic() - t_start < 90


# ------------------------------------------------------------------- idle

IDLE_UIDS = {"portcullis-gateway", "portcullis-slo", "portcullis-prometheus"}
IDLE_ROUTES = ("app", "secure", "quiet")  # never requested
PROBED = "probed"  # requested by the blackbox exporter only


def idle_targets(values):
    """(Target, legendFormat, noValue) of every query of IDLE_UIDS."""
    for _, dash in dq.load():
        if dash["uid"] not in IDLE_UIDS:
            continue
        for p in dq.panels(dash):
            no_value = ((p.get("fieldConfig") or {}).get("defaults") or
                        {}).get("noValue")
            for t in p.get("targets") or []:
                yield (dq.Target(dash["uid"], p["title"], t["refId"],
                                 p["id"], dq.substitute(t["expr"], values)),
                       t.get("legendFormat") or "", no_value)


@pytest.fixture
def idle_stack(fake_aws, gateway, stub_factory, blackbox, alertmanager,
               own_prometheus, tmp_path):
    routes = [{"name": "app", "path": "/app/", "upstream": "app"},
              {"name": "secure", "path": "/secure/", "upstream": "app",
               "realm": REALM},
              {"name": "quiet", "path": "/quiet/", "upstream": "down"},
              {"name": PROBED, "path": "/probed/", "upstream": "app"}]
    gw, tls_port, _ = start_gateway(fake_aws, gateway, stub_factory,
                                    tmp_path, routes)
    prom = Prom(own_prometheus(
        [job("portcullis", "127.0.0.1:%d" % gw.admin_port),
         probe_job(blackbox, {
             PROBED: "https://127.0.0.1:%d/probed/x" % tls_port})],
        rule_files=[compressed_slo_rules(tmp_path / "slo.yml"),
                    compressed_rules(PROBE_RULES, tmp_path / "probe.yml")],
        alertmanager=alertmanager))
    return gw, prom


def assert_idle(gw):
    """The idle routes have had no request: their duration histogram is
    there, at 0, and they have no request counter."""
    s = gw.metrics()
    for r in IDLE_ROUTES:
        assert gwtest.metric(s, "portcullis_http_request_duration_seconds_"
                             "count", route=r) == 0, r
        assert not gwtest.samples_named(s, "portcullis_http_requests_total",
                                        route=r), r


def test_idle_gateway_panels_have_no_nan(idle_stack):
    gw, prom = idle_stack
    everything = IDLE_ROUTES + (PROBED,)
    # $route: every route, then only those without a request (what a
    # stat panel over the selection shows for a quiet route)
    selections = [everything, IDLE_ROUTES]
    targets = [(set(sel),) + x for sel in selections
               for x in idle_targets({"route": "(%s)" % "|".join(sel)})]
    assert {t.dashboard for _, t, _, _ in targets} == IDLE_UIDS

    # rates need two scrapes, the SLO rules a few evaluations, the probe
    # panels a probe
    def warm():
        routes = {s["metric"]["route"] for s in prom.query(
            'slo:burn_rate:ratio5m{slo="latency"}')}
        return routes == set(everything) and prom.query(
            'probe_success{job="probe"} == 1') and prom.query(
            'rate(prometheus_tsdb_wal_fsync_duration_seconds_count[1m])') \
            and prom.value("prometheus_notifications_alertmanagers_"
                           "discovered") == 1
    gwtest.wait_until(warm, 60, 0.5, "the idle stack's series")
    time.sleep(3)
    assert_idle(gw)

    failing = []
    for selected, t, legend, no_value in targets:
        where = "%s panel %r target %s: %s" % (t.dashboard, t.panel,
                                               t.ref_id, t.expr)
        bad = [v for series in prom.query_range(t.expr, 30)
               for _, v in series["values"] if not math.isfinite(float(v))]
        if bad:
            failing.append("%s\n    %d samples not finite over 30 s: %r"
                           % (where, len(bad), bad[:3]))
            continue
        res = prom.query(t.expr)
        vals = [float(x["value"][1]) for x in res]
        if not all(math.isfinite(v) for v in vals):
            failing.append("%s\n    not finite now: %r" % (where, vals))
        elif not res:
            if not (no_value or unverified_only(t.expr)):
                failing.append("%s\n    no series, and no noValue text"
                               % where)
        elif "{{route}}" in legend:
            want = selected & ({PROBED} if "probe_" in t.expr
                               else set(everything))
            got = {x["metric"].get("route") for x in res}
            if not want <= got:
                failing.append("%s\n    no series for route(s) %s"
                               % (where, sorted(want - got)))
    assert not failing, "%d of %d idle queries:\n%s" % (
        len(failing), len(targets), "\n".join(failing))
    assert_idle(gw)

    # every metric the Prometheus dashboard reads is Prometheus's own
    held = prom.names()
    used = set()
    for _, t, _, _ in targets:
        if t.dashboard == "portcullis-prometheus":
            used |= metric_names(t.expr)
    assert used and not used - held, sorted(used - held)


# ------------------------------------------------------------------ stale


def test_cost_panels_survive_a_missed_scrape(cost_stand_in, own_prometheus):
    """The stand-in exporter stops answering: the bare gauges go stale (an
    instant query of them comes back empty, which is what left the panels
    blank), yet every cost panel still shows the last scraped value.
    Scrapes are every second here, the window 15m: what matters is the
    window against the gap, as with 5m scrapes in the stack."""
    prom = Prom(own_prometheus([job("cost-exporter", cost_stand_in.addr)]))
    values = {"environment": "(%s)" % ENVIRONMENT}
    cost = [t for t in dq.targets(values=values)
            if t.dashboard == "portcullis-cost"
            and not t.panel.startswith("variable ")]
    gwtest.wait_until(lambda: all(prom.query(t.expr) for t in cost), 30,
                      0.5, "every cost panel to have data")
    before = {t: prom.query(t.expr) for t in cost}
    cost_stand_in.failing.set()
    gwtest.wait_until(
        lambda: prom.value('up{job="cost-exporter"}') == 0 and not
        prom.query('aws_cost_month_to_date_usd') and not
        prom.query('aws_cost_daily_usd'), 20, 0.5,
        "the cost gauges to go stale after a failed scrape")
    for t in cost:
        res = prom.query(t.expr)
        where = "%s target %s: %s" % (t.panel, t.ref_id, t.expr)
        assert res, "blank after a missed scrape: " + where
        if t.panel == "Exporter up":
            assert [float(x["value"][1]) for x in res] == [0.0], where
            continue
        if "increase(" in t.expr or "time()" in t.expr:
            continue  # counters over a range, an age: they move
        got = sorted((tuple(sorted(x["metric"].items())),
                      float(x["value"][1])) for x in res)
        want = sorted((tuple(sorted(x["metric"].items())),
                       float(x["value"][1])) for x in before[t])
        assert got == want, where
    month = prom.value('sum(last_over_time(aws_cost_month_to_date_usd'
                       '{environment="local"}[15m]))')
    assert month == 21.37
