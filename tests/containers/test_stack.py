"""The compose stack, live: compose/docker-compose.yml with the test override
(docker-compose.test.yml) under podman-compose, checked from the host
through the gateway's published ports only (127.0.0.1, free ports).

Images come from tests/containers/run.sh (it builds them); the project is
torn down with its volumes and network whatever happens. The last test stops
the gateway: keep it last.
"""

import base64
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from decimal import Decimal

import pytest

import compose_stack as stack
from compose_stack import IMAGES, SERVICES, inspect, podman

pytestmark = pytest.mark.skipif(
    stack.shutil.which("podman") is None or stack.shutil.which("podman-compose") is None,
    reason="needs podman and podman-compose")


@pytest.fixture(scope="module")
def project():
    missing = [i for i in IMAGES.values()
               if podman("image", "exists", i, check=False).returncode != 0]
    if missing:
        pytest.fail("images missing (tests/containers/run.sh builds them): " +
                    ", ".join(missing))
    conflicts = stack.dotenv_conflicts()
    if conflicts:
        pytest.fail("compose/.env sets " + ", ".join(conflicts) +
                    ": podman-compose would let it override the test's values; "
                    "unset them there to run this test")
    p = stack.Project()
    try:
        p.up()
        p.wait_healthy()
        ensure_cost_refresh(p)
        cert = podman("exec", p.container("gateway"), "cat",
                      "/etc/portcullis/certs/gateway.crt").stdout
        p.ca = p.dir / "gateway.crt"
        p.ca.write_text(cert)
        p.trust_gateway(cert)  # what the blackbox exporter verifies
        yield p
    finally:
        p.down()


def exporter_metrics(p):
    """The cost exporter's /metrics, asked from inside the stack's network."""
    return podman("exec", p.container("prometheus"), "wget", "-q", "-O", "-",
                  "http://cost-exporter:9091/metrics").stdout


def ensure_cost_refresh(p):
    """podman-compose starts fake-aws before the exporter but does not wait
    for it to listen; a first refresh that found nothing there would be
    retried only after --retry-min (1m). Once both are healthy, HUP (refresh
    now) makes sure one ran against the fake."""
    if 'aws_cost_exporter_refresh_total{environment="dev",result="ok"} 0' in \
            exporter_metrics(p):
        podman("kill", "-s", "HUP", p.container("cost-exporter"))


def fake_aws_state(p):
    out = podman("exec", p.container("fake-aws"), "/usr/bin/python3", "-c",
                 "import urllib.request; print(urllib.request.urlopen("
                 "'http://127.0.0.1:4566/_fake/state', timeout=5).read().decode())")
    return json.loads(out.stdout)


def tls_context(p, version=None):
    ctx = ssl.create_default_context(cafile=str(p.ca))
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def request(p, port, path, auth=None, method="GET", headers=None, tls=True):
    """One request to 127.0.0.1:port; returns (status, headers, body)."""
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                           context=tls_context(p))
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    hdrs = dict(headers or {})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        hdrs["Authorization"] = f"Basic {token}"
    try:
        conn.request(method, path, headers=hdrs)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def prom_query(p, query):
    status, _, body = request(
        p, p.ports["https"],
        "/prometheus/api/v1/query?" + urllib.parse.urlencode({"query": query}),
        auth=p.users["prometheus"])
    assert status == 200, body[:500]
    data = json.loads(body)
    assert data["status"] == "success", data
    return data["data"]["result"]


def eventually(check, timeout, what):
    """Calls check() until it returns a true value; fails after timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(2)
    pytest.fail(f"{what}: not within {timeout}s (last: {last!r})")


# --- the images -----------------------------------------------------------

def test_gateway_image_config():
    image = inspect(IMAGES["gateway"], "image")
    cfg = image["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["StopSignal"] == "SIGTERM"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "443/tcp", "9090/tcp", "9093/tcp"}
    # podman shows a docker-format image's HEALTHCHECK beside Config
    hc = image.get("Healthcheck") or cfg.get("Healthcheck") or {}
    assert any("/healthz" in part for part in hc.get("Test", [])), hc
    assert cfg["Entrypoint"] == ["/usr/local/bin/portcullis"]


def test_cost_exporter_image_config():
    image = inspect(IMAGES["cost-exporter"], "image")
    cfg = image["Config"]
    assert cfg["User"] == "10002:10002"
    assert set(cfg["ExposedPorts"]) == {"9091/tcp"}
    hc = image.get("Healthcheck") or cfg.get("Healthcheck") or {}
    assert "--healthcheck" in hc.get("Test", []), hc
    assert cfg["Entrypoint"] == ["/usr/local/bin/portcullis-cost-exporter"]


def test_stack_healthy(project):
    for s in SERVICES:
        state = inspect(project.container(s))["State"]
        assert state["Status"] == "running", s
        assert state["Health"]["Status"] == "healthy", (s, state["Health"])


def test_gateway_config_checks_in_container(project):
    out = podman("exec", project.container("gateway"), "portcullis", "-t", "-c",
                 "/etc/portcullis/portcullis.json")
    assert "configuration is valid" in out.stdout


# --- what is published ----------------------------------------------------

def test_only_the_gateway_publishes_ports(project):
    for s in SERVICES:
        ports = inspect(project.container(s))["NetworkSettings"]["Ports"] or {}
        bound = {k: v for k, v in ports.items() if v}
        if s != "gateway":
            assert not bound, (s, bound)
            continue
        assert set(bound) == {"80/tcp", "443/tcp", "9090/tcp", "9093/tcp"}, bound
        for binding in bound.values():
            assert all(b["HostIp"] == "127.0.0.1" for b in binding), binding


def test_admin_listener_only_inside(project):
    # Reachable on the stack's network (Prometheus scrapes it) ...
    out = podman("exec", project.container("prometheus"), "wget", "-q", "-O", "-",
                 "http://gateway:9145/healthz")
    assert out.returncode == 0
    # ... and published nowhere (see above); /readyz says all is loaded.
    out = podman("exec", project.container("gateway"), "curl", "-fsS",
                 "http://127.0.0.1:9145/readyz")
    assert out.returncode == 0, out.stdout


# --- port 80 and TLS -------------------------------------------------------

def test_http_redirects_to_https(project):
    status, headers, _ = request(project, project.ports["http"], "/prometheus/?a=1",
                                 tls=False)
    assert status == 308
    assert headers["location"].startswith("https://127.0.0.1"), headers["location"]
    assert headers["location"].endswith("/prometheus/?a=1"), headers["location"]


@pytest.mark.parametrize("version,name", [
    (ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_tls_handshake(project, version, name):
    ctx = tls_context(project, version)
    with socket.create_connection(("127.0.0.1", project.ports["https"]), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            assert t.version() == name
            assert t.selected_alpn_protocol() in (None, "http/1.1")


def test_self_signed_pair_kept_in_volume(project):
    out = podman("exec", project.container("gateway"), "stat", "-c", "%u %a %n",
                 "/etc/portcullis/certs/gateway.crt", "/etc/portcullis/certs/gateway.key")
    lines = out.stdout.split("\n")
    assert lines[0].startswith("10001 ") and lines[1].startswith("10001 600 "), out.stdout
    mounts = inspect(project.container("gateway"))["Mounts"]
    certs = [m for m in mounts if m["Destination"] == "/etc/portcullis/certs"]
    assert certs and certs[0]["Type"] == "volume", certs


# --- routes and realms on 443 ----------------------------------------------

def test_prometheus_needs_auth(project):
    status, headers, _ = request(project, project.ports["https"], "/prometheus/-/ready")
    assert status == 401
    assert headers["www-authenticate"].startswith('Basic realm="prometheus"')


def test_prometheus_with_auth(project):
    status, _, body = request(project, project.ports["https"], "/prometheus/-/ready",
                              auth=project.users["prometheus"])
    assert status == 200, body


def test_prometheus_links_use_external_url(project):
    status, headers, _ = request(project, project.ports["https"], "/prometheus/",
                                 auth=project.users["prometheus"])
    assert status in (301, 302, 303, 307, 308)
    assert headers["location"].startswith("/prometheus/") or \
        headers["location"].startswith("https://localhost/prometheus/"), headers


def test_realms_are_separate(project):
    status, _, _ = request(project, project.ports["https"], "/alertmanager/-/ready",
                           auth=project.users["prometheus"])
    assert status == 401


def test_alertmanager_with_auth(project):
    status, headers, _ = request(project, project.ports["https"], "/alertmanager/-/ready")
    assert status == 401
    assert headers["www-authenticate"].startswith('Basic realm="alertmanager"')
    status, _, body = request(project, project.ports["https"],
                              "/alertmanager/api/v2/status",
                              auth=project.users["alertmanager"])
    assert status == 200, body
    assert json.loads(body)["config"]["original"]


def test_query_through_gateway(project):
    # success at once; series once the first scrapes are in
    assert prom_query(project, "vector(1)")[0]["value"][1] == "1"
    eventually(lambda: prom_query(project, "up"), 60, "any up series")


def test_grafana_route_without_realm(project):
    status, _, body = request(project, project.ports["https"], "/api/health")
    assert status == 200, body
    assert json.loads(body)["database"] == "ok"
    # Grafana's own logins and API tokens must reach it; and the gateway's
    # forwarding headers.
    status, _, body = request(project, project.ports["https"], "/api/stand-in/request",
                              headers={"Authorization": "Bearer glsa_test"})
    seen = json.loads(body)["headers"]
    assert seen["authorization"] == "Bearer glsa_test"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["host"] == f"127.0.0.1:{project.ports['https']}"
    assert seen.get("x-request-id")


# --- listeners 9090 and 9093 -------------------------------------------------

def test_prometheus_listener_9090(project):
    port = project.ports["prometheus"]
    assert request(project, port, "/api/v1/query?query=up")[0] == 401
    status, _, body = request(project, port, "/api/v1/query?query=up",
                              auth=project.users["prometheus"])
    assert status == 200 and json.loads(body)["status"] == "success"


def test_alertmanager_listener_9093(project):
    port = project.ports["alertmanager"]
    assert request(project, port, "/api/v2/status")[0] == 401
    status, _, _ = request(project, port, "/api/v2/status",
                           auth=project.users["alertmanager"])
    assert status == 200


# --- Prometheus inside the stack ---------------------------------------------

def test_gateway_scraped(project):
    eventually(lambda: prom_query(project, 'up{job="portcullis"} == 1'), 90,
               'up{job="portcullis"} == 1')


def test_every_local_job_up(project):
    jobs = {"portcullis", "prometheus", "alertmanager", "grafana", "node",
            "blackbox"}

    def all_up():
        up = {r["metric"]["job"]: r["value"][1] for r in prom_query(project, "up")}
        return all(up.get(j) == "1" for j in jobs) and up
    eventually(all_up, 90, f"up == 1 for jobs {sorted(jobs)}")


PROBED_ROUTES = {"prometheus", "alertmanager", "grafana"}


def test_probes_succeed_through_the_gateway(project):
    """The blackbox exporter requests every route through the gateway's 443
    as a client does (TLS verified against the gateway's certificate; the
    realm user probe where the route has a realm): probe_success 1 for each
    route, the probe SLI recorded per route, and the certificate the probes
    saw is the one the gateway made."""
    def all_succeed():
        got = {r["metric"].get("route"): r["value"][1]
               for r in prom_query(project, 'probe_success{job="probe"}')}
        return set(got) == PROBED_ROUTES and \
            all(v == "1" for v in got.values()) and got
    eventually(all_succeed, 120, "probe_success 1 for routes "
               + ", ".join(sorted(PROBED_ROUTES)))

    def recorded():
        return {r["metric"].get("route") for r in
                prom_query(project, "slo:probe_success:ratio5m")} >= PROBED_ROUTES
    eventually(recorded, 60, "slo:probe_success:ratio5m for every route")

    not_after = stack.run(["openssl", "x509", "-in", str(project.ca), "-noout",
                           "-enddate"]).stdout.strip().split("=", 1)[1]
    seen = {r["value"][1] for r in
            prom_query(project, 'probe_ssl_earliest_cert_expiry{job="probe"}')}
    assert seen == {str(int(ssl.cert_time_to_seconds(not_after)))}, (seen, not_after)


def test_gateway_requests_recorded(project):
    # The requests above went through routes prometheus, alertmanager and
    # grafana; the SLIs come from this counter.
    def routes():
        r = prom_query(project, "sum by (route) (portcullis_http_requests_total)")
        names = {x["metric"].get("route") for x in r}
        return {"prometheus", "grafana"} <= names and names
    eventually(routes, 90, "portcullis_http_requests_total per route")


def test_rules_loaded_and_alertmanager_found(project):
    status, _, body = request(project, project.ports["https"], "/prometheus/api/v1/rules",
                              auth=project.users["prometheus"])
    assert status == 200
    groups = json.loads(body)["data"]["groups"]
    files = sorted((stack.ROOT / "prometheus" / "rules").glob("*.yml"))
    if files:
        assert groups, "prometheus/rules/*.yml exist but no rule group is loaded"
    status, _, body = request(project, project.ports["https"],
                              "/prometheus/api/v1/alertmanagers",
                              auth=project.users["prometheus"])
    active = json.loads(body)["data"]["activeAlertmanagers"]
    assert any("alertmanager:9093" in a["url"] for a in active), active


def test_watchdog_reaches_alertmanager(project):
    rules = " ".join(f.read_text() for f in
                     (stack.ROOT / "prometheus" / "rules").glob("*.yml"))
    if "alert: Watchdog" not in rules:
        pytest.skip("no Watchdog rule in prometheus/rules/")

    def watchdog():
        status, _, body = request(
            project, project.ports["alertmanager"],
            "/api/v2/alerts?" + urllib.parse.urlencode({"filter": 'alertname="Watchdog"'}),
            auth=project.users["alertmanager"])
        return status == 200 and json.loads(body)
    alerts = eventually(watchdog, 120, "Watchdog alert in Alertmanager")
    assert alerts[0]["labels"].get("environment") in ("prod", "dev"), alerts[0]["labels"]


# --- the cost exporter ------------------------------------------------------

def test_cost_exporter_runs_unprivileged(project):
    name = project.container("cost-exporter")
    state = inspect(name)["State"]
    assert state["Health"]["Status"] == "healthy", state["Health"]
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split() == ["10002"] * 4, fields["Uid"]
    assert fields["Gid"].split()[0] == "10002"
    for cap in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, (cap, fields[cap])
    assert fields["NoNewPrivs"].strip() == "1"
    assert inspect(name)["HostConfig"]["ReadonlyRootfs"] is True
    assert podman("exec", name, "touch", "/probe", check=False).returncode != 0
    # production's credential chain ends at IMDS; here it must never get there
    env = inspect(name)["Config"]["Env"]
    assert "AWS_EC2_METADATA_DISABLED=true" in env


def test_cost_exporter_not_published(project):
    for s in ("cost-exporter", "fake-aws"):
        ports = inspect(project.container(s))["NetworkSettings"]["Ports"] or {}
        assert not {k: v for k, v in ports.items() if v}, (s, ports)
    # ... yet on the stack's network at the name Prometheus scrapes
    assert "aws_cost_exporter_build_info{" in exporter_metrics(project)


def test_cost_exporter_scraped(project):
    eventually(lambda: prom_query(project, 'up{job="cost-exporter"} == 1'), 90,
               'up{job="cost-exporter"} == 1')


def test_cost_figures_through_prometheus(project):
    want = project.cost

    def mtd():
        return prom_query(project, "aws_cost_month_to_date_usd")
    (series,) = eventually(mtd, 90, "aws_cost_month_to_date_usd")
    assert series["metric"]["job"] == "cost-exporter"
    assert series["metric"]["environment"] == "dev"
    got = Decimal(series["value"][1])
    # to the cent (the exporter sums exactly; the amounts are whole cents)
    assert abs(got - want["mtd"]) < Decimal("0.005"), (got, want)
    (forecast,) = prom_query(project, "aws_cost_forecast_month_usd")
    assert abs(Decimal(forecast["value"][1]) - want["forecast"]) < Decimal("0.005"), \
        (forecast, want)
    ok = prom_query(project, 'aws_cost_exporter_refresh_total{result="ok"}')
    assert float(ok[0]["value"][1]) >= 1, ok
    # 2 GetCostAndUsage pages at least (7-day pages) and the forecast
    (req,) = prom_query(project, "aws_cost_exporter_api_requests_total")
    assert float(req["value"][1]) >= 2, req


def test_fake_aws_saw_signed_calls(project):
    """The figures came from the fake, by correctly signed requests with
    the test's static key."""
    state = fake_aws_state(project)
    assert state["signature_failures"] == 0, state
    calls = state["calls"]
    assert calls.get("AWSInsightsIndexService.GetCostAndUsage", 0) >= 2, calls
    # credentials were the static pair: no IMDS traffic, no temporary ones
    assert state["imds"]["token_puts"] == 0 and not state["credentials"], state


# --- Prometheus's admin API and backups ----------------------------------------

ADMIN_PATH = "/api/v1/admin/tsdb/clean_tombstones"  # harmless: 204, nothing deleted


def test_admin_api_has_its_own_realm(project):
    port = project.ports["prometheus"]
    status, headers, _ = request(project, port, ADMIN_PATH, method="POST",
                                 auth=project.users["prometheus"])
    assert status == 401, "a prometheus user reached the admin API"
    assert headers["www-authenticate"].startswith('Basic realm="prometheus-admin"')
    status, _, body = request(project, port, ADMIN_PATH, method="POST",
                              auth=project.users["prometheus-admin"])
    assert status == 204, body
    # ... and the admin realm opens nothing else
    status, _, _ = request(project, port, "/api/v1/query?query=up",
                           auth=project.users["prometheus-admin"])
    assert status == 401


def test_admin_api_closed_on_443(project):
    """/prometheus/api/v1/admin/ is the realm prometheus-admin's too; the
    gateway cannot strip only /prometheus from it, so Prometheus answers
    404 even to an admin: the admin API is served on 9090 only."""
    port, path = project.ports["https"], "/prometheus" + ADMIN_PATH
    status, headers, _ = request(project, port, path, method="POST",
                                 auth=project.users["prometheus"])
    assert status == 401
    assert headers["www-authenticate"].startswith('Basic realm="prometheus-admin"')
    status, _, _ = request(project, port, path, method="POST",
                           auth=project.users["prometheus-admin"])
    assert status == 404


@pytest.mark.parametrize("port_name,path", [
    ("prometheus", "/api/v1/%61dmin/tsdb/clean_tombstones"),
    ("prometheus", "/api/v1/admin%2Ftsdb/clean_tombstones"),
    ("prometheus", "/api/v1//admin/tsdb/clean_tombstones"),
    ("prometheus", "/api/v1/x/../admin/tsdb/clean_tombstones"),
    ("https", "/prometheus/api/v1/%61dmin/tsdb/clean_tombstones")],
    ids=["9090-%61dmin", "9090-admin%2F", "9090-//", "9090-dotdot",
         "443-%61dmin"])
def test_admin_api_not_reachable_by_encoding(project, port_name, path):
    """The gateway routes bytes and Prometheus decodes and cleans its path:
    a path that would read as the admin API only after that is refused with
    400 before any route is chosen, so the prometheus realm's users cannot
    reach the admin API (docs/SECURITY.md)."""
    status, _, _ = request(project, project.ports[port_name], path, method="POST",
                           auth=project.users["prometheus"])
    assert status == 400, f"{path}: {status}"


def raw_samples(p, query, at):
    """A range-vector query's raw samples at `at` through the gateway, by
    series; None while the gateway cannot reach Prometheus."""
    status, _, body = request(
        p, p.ports["https"], "/prometheus/api/v1/query?" + urllib.parse.urlencode(
            {"query": query, "time": f"{at:.3f}"}), auth=p.users["prometheus"])
    if status != 200:
        return None
    return sorted((sorted(s["metric"].items()), s["values"])
                  for s in json.loads(body)["data"]["result"])


def backup_script(p, *args):
    return stack.run([str(stack.ROOT / "scripts" / "prometheus-backup.sh"), *args,
                      "--engine", "podman", "--project", p.name],
                     check=False, timeout=600)


def test_backup_and_restore_in_compose(project, tmp_path):
    """scripts/prometheus-backup.sh on the stack: a snapshot through the
    admin API from inside the network, copied out of the volume; a restore
    that stops Prometheus, refills its volume from a one-off container,
    starts it and verifies; the same samples before and after."""
    name = project.container("prometheus")

    def sampled():
        t = time.time() - 12  # every scrape up to here is written
        r = raw_samples(project, "up[5m]", t)
        return r and (t, r)
    at, expected = eventually(sampled, 60, "up samples 12 s old")
    out = tmp_path / "backups"
    p = backup_script(project, "backup", "--out", str(out))
    assert p.returncode == 0, p.stderr
    archive = out / p.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    assert sorted(x.name for x in out.iterdir()) == [archive.name, archive.name + ".sha256"]
    left = podman("exec", name, "ls", "-A", "/prometheus/snapshots").stdout.split()
    assert left == [], "the snapshot stayed in the volume"

    # the volume is not empty: no --force, no change
    p = backup_script(project, "restore", str(archive))
    assert p.returncode == 4 and "--force" in p.stderr, p.stderr
    assert stack.inspect(name)["State"]["Status"] == "running"

    started = stack.inspect(name)["State"]["StartedAt"]
    p = backup_script(project, "restore", "--force", str(archive))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "verified" in p.stderr, p.stderr
    state = stack.inspect(name)["State"]
    assert state["Status"] == "running" and state["StartedAt"] != started
    # the restored files belong to Prometheus's user, as it wrote them
    owners = podman("exec", name, "sh", "-c",
                    "find /prometheus -mindepth 1 ! -user nobody | head -3").stdout
    assert owners == "", owners
    # the script sent the gateway a HUP, so it resolves the new address now
    got = eventually(lambda: raw_samples(project, "up[5m]", at), 20,
                     "the gateway to reach the restarted Prometheus")
    assert got == expected


# --- the gateway container ---------------------------------------------------

def test_gateway_runs_unprivileged(project):
    name = project.container("gateway")
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] == "10001"
    for cap in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, (cap, fields[cap])
    assert fields["NoNewPrivs"].strip() == "1"
    # read-only root file system
    assert podman("exec", name, "touch", "/etc/portcullis/probe", check=False).returncode != 0


def test_sigterm_drains_and_exits_0(project):
    """Last: stops the gateway."""
    name = project.container("gateway")
    # A keep-alive client connection open while it stops.
    ctx = tls_context(project)
    conn = http.client.HTTPSConnection("127.0.0.1", project.ports["https"], timeout=30,
                                       context=ctx)
    conn.request("GET", "/api/health")
    assert conn.getresponse().read()
    started = time.monotonic()
    podman("stop", "-t", "30", name, timeout=60)
    took = time.monotonic() - started
    conn.close()
    state = inspect(name)["State"]
    assert state["ExitCode"] == 0, (state, project.logs("gateway"))
    assert took < 25, f"stop took {took:.1f}s (drain_timeout is 20s)"
    assert "drained; exiting" in project.logs("gateway", tail=20)
