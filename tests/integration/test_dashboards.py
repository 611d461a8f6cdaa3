"""Grafana dashboards (grafana/dashboards/*.json) and their provisioning:
every panel query parses, the structure holds, and every query returns
data from a live Prometheus fed by real traffic.

  parse      tests/tools/dashboard_queries.py writes every query (variables
             substituted) as a recording rule and runs `promtool check
             rules`; a broken expr makes it exit 1 naming dashboard, panel
             and refId (checked on a copy with one expr broken).
  structure  uids per the contract, provisioned datasource uids on every
             panel, unique ids and titles, refId and expr on every target,
             $__rate_interval as every rate() range, no overlapping panels,
             every slo:* series a dashboard reads is recorded by
             prometheus/rules/slo.yml, the provisioning files' settings.
  live       a gateway with routes "app" and "secure" (basic auth, users
             from a Secrets Manager secret on tests/tools/fake_aws.py,
             refreshed every second) to a stub upstream, and "down" to a
             closed port (502, upstream connect errors), on a plain and a
             TLS listener (self-signed certificate made at start); node-
             exporter; a Prometheus of the test's own scraping them every
             second with the SLO rules of prometheus/rules/slo.yml. A
             background driver sends, every second: fast requests, one
             0.7 s request (over the latency threshold), 502s, good, cached,
             wrong and missing passwords, TLS requests, a plain-text request
             on the TLS port (a failed handshake) and an unmatched path.
             Then every query of the SLO, gateway and host dashboards (and
             of their variables) must return at least one series with a
             finite value, through /api/v1/query, and the panels in NONZERO
             a value above zero; a failure names dashboard, panel, refId.

The SLO rules run time-compressed (compressed_slo_rules): the long-window
group's own 1m interval is dropped, so it evaluates at the test
Prometheus's 1 s like the rest, and the alerts lose their `for`, so
SLOErrorBudgetBurn fires within seconds instead of minutes. Expressions and
record names are the file's own.

Cost dashboard: issue 7's exporter does not exist yet, so its panels are
checked against COST_METRICS, a stand-in exposition of the contract's
aws_cost_* metrics served by this test (job "cost-exporter"): that proves
names, labels and joins agree with the contract, not with the exporter.

No panel is excluded from the live check (LIVE_EXCLUDED is empty)."""

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
from conftest import (PYTHON, REPO, TOOLS, Proc, free_port, make_config,
                      upstream, wait_http)

sys.path.insert(0, str(TOOLS))
import dashboard_queries as dq  # noqa: E402

TOOL = TOOLS / "dashboard_queries.py"
SLO_RULES = REPO / "prometheus" / "rules" / "slo.yml"
PROVIDER = REPO / "grafana" / "provisioning" / "dashboards" / "provider.yml"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"

UIDS = {"portcullis-slo", "portcullis-gateway", "portcullis-host",
        "portcullis-cost"}
VARIABLES = {"portcullis-slo": {"route"}, "portcullis-gateway": {"route"},
             "portcullis-host": {"instance"},
             "portcullis-cost": {"environment"}}

# (dashboard uid, panel title) -> why it is not checked live. Keep empty
# unless a query truly cannot have data under test.
LIVE_EXCLUDED = {}

# Panels whose value the driven traffic makes positive: an empty-looking
# zero there means the query reads the wrong series or labels.
NONZERO = {
    ("portcullis-slo", "SLO events per second (5m)"),
    ("portcullis-slo", "Burn rate: fast page (1h and 5m above 14.4)"),
    ("portcullis-slo", "Burn rate: slow page (6h and 30m above 6)"),
    ("portcullis-slo", "Burn rate: ticket (3d and 6h above 1)"),
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
    recorded = {r["record"] for g in
                yaml.safe_load(SLO_RULES.read_text())["groups"]
                for r in g["rules"] if "record" in r}
    used = {}
    for q in dq.queries():
        for name in re.findall(r"\bslo:[a-z0-9_]+:[a-z0-9_]+", q.expr):
            used.setdefault(name, (q.dashboard, q.panel))
    assert used, "no dashboard reads an slo:* series"
    missing = {n: w for n, w in used.items() if n not in recorded}
    assert not missing, "read but not recorded by %s: %r" % (
        SLO_RULES.name, missing)
    # every window of the contract is on the SLO dashboard
    for w in ("5m", "1h", "6h", "3d"):
        assert "slo:burn_rate:ratio" + w in used, w
    for name in ("slo:objective:ratio", "slo:sli:ratio30d",
                 "slo:error_budget_remaining:ratio"):
        assert name in used, name


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


def compressed_slo_rules(dst):
    """prometheus/rules/slo.yml with every group at the global (1 s)
    interval and no `for` on the alerts, written to dst."""
    assert SLO_RULES.is_file(), "%s is missing" % SLO_RULES
    doc = yaml.safe_load(SLO_RULES.read_text())
    alerts = 0
    for g in doc["groups"]:
        g.pop("interval", None)
        for r in g["rules"]:
            if "alert" in r:
                r.pop("for", None)
                alerts += 1
    assert alerts, "no alert in %s" % SLO_RULES
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
# Stand-in for issue 7's cost exporter: the contract's names and labels.
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
"""


@pytest.fixture
def cost_stand_in():
    """COST_METRICS on /metrics of a thread in this process; the counters
    grow with every scrape."""
    scrapes = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
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
    yield "127.0.0.1:%d" % srv.server_address[1]
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


@pytest.fixture
def stack(fake_aws, gateway, stub_factory, node_exporter, cost_stand_in,
          prometheus_factory, tmp_path):
    password = "pw-dashboards-0123"
    fake = fake_aws({"region": REGION, "static_keys": {KEY_ID: KEY_SECRET},
                     "secrets": {SECRET: json.dumps(
                         {"username": "alice", "password": password})}})
    app = stub_factory("slow", delay=0, body_size=64)
    routes = [{"name": "app", "path": "/app/", "upstream": "app"},
              {"name": "secure", "path": "/secure/", "upstream": "app",
               "realm": REALM},
              {"name": "down", "path": "/down/", "upstream": "down"}]
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
    prom = Prom(prometheus_factory(
        [("portcullis", "127.0.0.1:%d" % gw.admin_port, "/metrics"),
         ("node", node_exporter, "/metrics"),
         ("cost-exporter", cost_stand_in, "/metrics")],
        rule_files=[compressed_slo_rules(tmp_path / "slo.yml")]))
    gwtest.wait_until(lambda: gwtest.get(gw.admin_port, "/readyz")[0] == 200,
                      15, 0.1, "the gateway to be ready (secret fetched)")
    driver = Driver(gw, tls_port, "alice", password)
    driver.start()
    yield gw, prom, node_exporter
    driver.stop()
    assert not driver.errors, driver.errors[:20]


def check(prom, t):
    """None if the query of Target t has a series with a finite value (a
    positive one for NONZERO panels), else what it returned."""
    res = prom.query(t.expr)
    vals = [float(s["value"][1]) for s in res]
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
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
    assert time.monotonic() - t_start < 90
