"""The probe SLI end to end: a real Prometheus (Debian's) scrapes a real
blackbox exporter (Debian's prometheus-blackbox-exporter) that probes a real
gateway over TLS with basic auth, in front of a real upstream (nginx), and
evaluates the repository's prometheus/rules/probe.yml in place.

    Prometheus --/probe?target=...--> blackbox exporter
        --TLS, Basic probe:PASSWORD--> portcullis (realm) --> nginx

The probe module is the repository's own (scripts/local/blackbox.yml,
module gateway_realm) with its two files pointed at the test's CA and
password file; the probe job's params and relabelling are those of
scripts/local/prometheus.yml with the test's addresses. So the committed
configuration is what proves:

  - while the gateway is up, every probe succeeds and the recorded SLI
    slo:probe_success:ratio5m{route="app"} reads 1; the gateway saw the
    probes as user "probe", 200, over TLS;
  - the exporter reports the served certificate's notAfter in
    probe_ssl_earliest_cert_expiry (the leaf expires before its CA);
  - once the gateway is stopped (by its PID), probe_success goes to 0 while
    the exporter itself is still scraped fine (up 1), and the recorded SLI
    falls below 1.

Every wait is a poll with a deadline on Prometheus's own scrapes and rule
evaluations; nothing sleeps a fixed time and then asserts.
"""

import json
import secrets
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

import gwtest
from conftest import (PROMETHEUS, REPO, Proc, free_port, make_config,
                      upstream, wait_http)

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
RULES = REPO / "prometheus" / "rules" / "probe.yml"
LOCAL = REPO / "scripts" / "local"
ROUTE = "app"
MODULE = "gateway_realm"
# Probes every 3 s: each gets 2.9 s (scrape timeout minus the exporter's
# --timeout-offset), room enough on a busy machine for a TLS handshake and
# a request on loopback.
PROBE_INTERVAL = 3


def blackbox_config(ca, password_file):
    """scripts/local/blackbox.yml with the test's CA and password file."""
    cfg = yaml.safe_load((LOCAL / "blackbox.yml").read_text())
    http = cfg["modules"][MODULE]["http"]
    assert http["basic_auth"]["username"] == "probe"
    assert "password" not in http["basic_auth"]
    http["tls_config"]["ca_file"] = str(ca)
    http["basic_auth"]["password_file"] = str(password_file)
    return cfg


def prometheus_config(target, exporter):
    """A Prometheus config with scripts/local/prometheus.yml's probe job
    (params, relabelling) aimed at the test's target and exporter, the
    exporter's own job, and the repository's probe rules, in place."""
    local = yaml.safe_load((LOCAL / "prometheus.yml").read_text())
    (job,) = [j for j in local["scrape_configs"] if j["job_name"] == "probe"]
    assert job["params"] == {"module": [MODULE]}
    relabel = job["relabel_configs"]
    assert relabel[-1]["target_label"] == "__address__"
    relabel[-1]["replacement"] = exporter
    job["static_configs"] = [{"targets": [target], "labels": {"route": ROUTE}}]
    job["scrape_interval"] = job["scrape_timeout"] = "%ds" % PROBE_INTERVAL
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            job,
            {"job_name": "blackbox",
             "static_configs": [{"targets": [exporter]}]},
        ],
    }


class Prom:
    def __init__(self, port):
        self.port = port

    def api(self, path, **params):
        st, _, body = gwtest.get(
            self.port, "/prometheus/api/v1/" + path
            + ("?" + urllib.parse.urlencode(params) if params else ""))
        assert st == 200, (path, params, st, body[:500])
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def value(self, expr):
        """The value of a one-element instant vector; None when empty."""
        res = self.query(expr)
        if not res:
            return None
        assert len(res) == 1, (expr, res)
        return float(res[0]["value"][1])


@pytest.fixture
def probe_stack(tmp_path, gateway, nginx):
    """nginx, then the gateway (TLS, realm with the user probe), then the
    exporter, then Prometheus: the first probe already finds the gateway
    up. Yields (gateway, Prom, cert path); stops Prometheus and the
    exporter by their PIDs (the fixtures stop the gateway and nginx)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = gwtest.make_ca(certs)
    # The leaf expires a day before its CA (2 days), so it is the earliest
    # certificate the probe can see, however it counts the chain.
    cert, key = gwtest.make_cert(certs, "gateway", "/CN=localhost",
                                 ["localhost", "127.0.0.1"], ca=ca, days=1)
    password = secrets.token_urlsafe(18)
    password_file = tmp_path / "probe.password"
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n")
    users = tmp_path / "users.htpasswd"
    users.write_text(gwtest.htpasswd_line("probe", password, "-B", "-C", "4")
                     + "\n")

    cfg = make_config(free_port(), free_port(),
                      {"web": upstream(nginx.port, keepalive=4)},
                      [{"name": ROUTE, "path": "/app/", "upstream": "web",
                        "strip_prefix": True, "realm": "stack"}],
                      {"tls": True},
                      tls={"certificates": [{"cert": str(cert),
                                             "key": str(key)}]},
                      realms={"stack": {"htpasswd": str(users)}})
    gw = gateway.start_config(cfg)
    target = "https://127.0.0.1:%d/app/small.txt" % gw.port

    procs = []
    try:
        bb_port = free_port()
        bb_dir = tmp_path / "blackbox"
        bb_dir.mkdir()
        (bb_dir / "blackbox.yml").write_text(
            yaml.safe_dump(blackbox_config(ca[0], password_file)))
        bb = Proc("blackbox", [
            BLACKBOX, "--config.file=%s" % (bb_dir / "blackbox.yml"),
            "--web.listen-address=127.0.0.1:%d" % bb_port,
            "--timeout-offset=0.1"], bb_dir, cwd=bb_dir)
        procs.append(bb)
        wait_http(bb, bb_port, "/-/healthy", timeout=30)

        prom_port = free_port()
        prom_dir = tmp_path / "prometheus"
        prom_dir.mkdir()
        (prom_dir / "prometheus.yml").write_text(yaml.safe_dump(
            prometheus_config(target, "127.0.0.1:%d" % bb_port),
            sort_keys=False))
        prom = Proc("prometheus", [
            PROMETHEUS,
            "--web.listen-address=127.0.0.1:%d" % prom_port,
            "--web.external-url=http://127.0.0.1:%d/prometheus/" % prom_port,
            "--storage.tsdb.path=%s" % (prom_dir / "data"),
            "--config.file=%s" % (prom_dir / "prometheus.yml")],
            prom_dir, cwd=prom_dir)
        procs.append(prom)
        wait_http(prom, prom_port, "/prometheus/-/ready", timeout=60)
        gw.target = target
        yield gw, Prom(prom_port), cert
    finally:
        for p in reversed(procs):
            p.stop()


def test_probe_sli_follows_the_gateway(probe_stack):
    gw, prom, cert = probe_stack
    sel = '{job="probe",route="%s"}' % ROUTE

    # The rules are the repository's file, loaded where it lies.
    groups = prom.api("rules")["groups"]
    assert {g["file"] for g in groups} == {str(RULES)}, groups
    assert "slo:probe_success:ratio5m" in {
        r["name"] for g in groups for r in g["rules"]}

    # ---- up: three probes or more, every one a success, and the rule's
    # value read after an evaluation that saw them
    gwtest.wait_until(
        lambda: (prom.value("count_over_time(probe_success%s[5m])" % sel)
                 or 0) >= 3, 60, 0.2, "three probes in Prometheus")
    assert prom.value("min_over_time(probe_success%s[5m])" % sel) == 1, \
        prom.query("probe_success%s[5m]" % sel)
    evaluated_after = time.time()

    def recorded():
        res = prom.query('timestamp(slo:probe_success:ratio5m{route="%s"})'
                         % ROUTE)
        return res and float(res[0]["value"][1]) > evaluated_after
    gwtest.wait_until(recorded, 30, 0.2, "a rule evaluation after the probes")
    assert prom.value('slo:probe_success:ratio5m{route="%s"}' % ROUTE) == 1

    # The series carry the route and the target URL; the exporter's own
    # job is scraped too.
    (s,) = prom.query("probe_success%s" % sel)
    assert s["metric"]["instance"] == gw.target, s
    assert prom.value('up{job="blackbox"}') == 1

    # The gateway saw the probes: user probe, 200, TLS, route app.
    probes = [e for e in gw.access_log() if e.get("user") == "probe"]
    assert probes, gw.access_log()[-5:]
    assert {(e["route"], e["status"], e["path"]) for e in probes} == \
        {(ROUTE, 200, "/app/small.txt")}, probes
    assert all(e.get("tls", "").startswith("TLSv1.") for e in probes), probes
    # ... and without the probe's credentials the same URL is refused.
    r = gwtest.tls_request(gw.port, "GET", "/app/small.txt",
                           context=gwtest.tls_client_context())
    assert r.status == 401

    # The certificate as the client saw it.
    assert prom.value("probe_ssl_earliest_cert_expiry%s" % sel) == \
        gwtest.cert_not_after(cert)
    assert prom.value("probe_http_version%s" % sel) == 1.1
    assert prom.value("probe_http_ssl%s" % sel) == 1

    # ---- down: the gateway stopped by its PID
    rc, killed = gw.stop()
    assert (rc, killed) == (0, False), gw.diagnostics()
    stopped = time.time()

    def failed_probe():
        res = prom.query("probe_success%s" % sel)
        return res and float(res[0]["value"][1]) == 0 and res
    gwtest.wait_until(failed_probe, 30, 0.2, "probe_success 0")
    # The probe failed, not the scrape: the exporter answered.
    assert prom.value('up{job="probe",route="%s"}' % ROUTE) == 1

    def sli_fell():
        res = prom.query('slo:probe_success:ratio5m{route="%s"}' % ROUTE)
        return res and float(res[0]["value"][1]) < 1 and res
    res = gwtest.wait_until(sli_fell, 30, 0.2,
                            "slo:probe_success:ratio5m below 1")
    assert 0 < float(res[0]["value"][1]) < 1, res
    # and it is a rule evaluation from after the stop that says so
    assert prom.value('timestamp(slo:probe_success:ratio5m{route="%s"})'
                      % ROUTE) > stopped
