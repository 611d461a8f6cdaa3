"""Helpers shared by the container tests: paths, podman, the compose project."""

import datetime
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "docker-compose.yml"
COMPOSE_TEST = ROOT / "compose" / "docker-compose.test.yml"
ULIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"]
SERVICES = ["prometheus", "alertmanager", "grafana", "node-exporter", "gateway",
            "cost-exporter", "fake-aws", "blackbox-exporter"]
# The realms the blackbox exporter's user "probe" belongs to (compose's
# prometheus.yml probes a route of each; grafana's has no realm).
PROBE_REALMS = ["prometheus", "alertmanager"]
# Tags the test override names; tests/containers/run.sh builds them.
IMAGES = {s: f"localhost/portcullis-test/{s}:latest" for s in SERVICES}
# Variables the test sets for the base file's ports. podman-compose 1.0.3
# lets compose/.env override the environment, so they must not be set there.
PORT_VARS = ["PORTCULLIS_HTTP_PORT", "PORTCULLIS_HTTPS_PORT",
             "PORTCULLIS_PROMETHEUS_PORT", "PORTCULLIS_ALERTMANAGER_PORT"]
TEST_VARS = ["PORTCULLIS_BIND", "PORTCULLIS_TEST_SECRETS", "PROMETHEUS_CONFIG",
             "PORTCULLIS_TEST_AWS_ACCESS_KEY_ID", "PORTCULLIS_TEST_AWS_SECRET_ACCESS_KEY"]
# The cost-exporter job's scrape interval in the test's copy of
# prometheus.yml (production: 5m, which could hold the first scrape back
# for up to 5 minutes).
COST_SCRAPE_INTERVAL = "10s"
# The fake's forecast: Cost Explorer's figure for tomorrow to the month's end.
FORECAST_REST = Decimal("9.87")
# GetCostAndUsage pages of 7 days: a refresh asks for at least 8 days, so
# always 2 pages or more.
COST_PAGE_SIZE = 7


def run(cmd, check=True, timeout=300, **kw):
    """Runs cmd; returns the CompletedProcess (text)."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {p.returncode}\n"
            f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{quiet(p.stderr)[-4000:]}")
    return p


def quiet(stderr):
    """podman without systemd logs a timer error per healthcheck: drop it."""
    return "\n".join(line for line in stderr.splitlines()
                     if "unable to get systemd connection" not in line)


def podman(*args, check=True, timeout=300):
    return run(["podman", *args], check=check, timeout=timeout)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def dotenv_conflicts():
    """Names the test must set that compose/.env sets (and would win)."""
    env = ROOT / "compose" / ".env"
    if not env.exists():
        return []
    names = set()
    for line in env.read_text().splitlines():
        m = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if m:
            names.add(m.group(1))
    return sorted(names & set(PORT_VARS + TEST_VARS))


def cost_table(today):
    """[(day, service, amount)] from 40 days before today to tomorrow (never
    asked for: End is exclusive), in cents, with a credit."""
    rows = []
    for i in range(-40, 2):
        day = today + datetime.timedelta(days=i)
        rows.append((day, "Amazon Elastic Compute Cloud - Compute",
                     Decimal("0.31") + Decimal(abs(i) % 7) / 100))
        rows.append((day, "Amazon Simple Storage Service", Decimal("0.02")))
        if i % 2:
            rows.append((day, "AmazonCloudWatch", Decimal("0.05")))
        if day.day == 1:
            rows.append((day, "Tax", Decimal("0.12")))
        if i == -3:
            rows.append((day, "AWS Secrets Manager", Decimal("-0.04")))
    return rows


def cost_fixture(key_id, secret_key, today=None):
    """The fake's state and the figures the exporter must show for it:
    {"mtd": month to date, "forecast": the whole month or None}."""
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    rows = cost_table(today)
    first = today.replace(day=1)
    next_first = (first + datetime.timedelta(days=32)).replace(day=1)
    mtd = sum((a for d, _, a in rows if first <= d <= today), Decimal(0))
    last_day = today + datetime.timedelta(days=1) == next_first
    state = {
        "static_keys": {key_id: secret_key},
        "imds": {"role": None},
        "costs": [{"start": d.isoformat(), "service": s, "amount": str(a)}
                  for d, s, a in rows],
        "forecast": {"total": str(FORECAST_REST),
                     "periods": [{"start": (today + datetime.timedelta(days=1)).isoformat(),
                                  "end": next_first.isoformat(),
                                  "mean": str(FORECAST_REST)}]},
        "page_size": COST_PAGE_SIZE,
    }
    # On a month's last day nothing is left to forecast: forecast == mtd.
    expected = {"today": today, "mtd": mtd,
                "forecast": mtd if last_day else mtd + FORECAST_REST}
    return state, expected


def render_prometheus_config(text):
    """prometheus/prometheus.yml with the cost-exporter job scraped every
    COST_SCRAPE_INTERVAL; all else as in production."""
    cfg = yaml.safe_load(text)
    jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == "cost-exporter"]
    assert len(jobs) == 1, "prometheus.yml has no (or more than one) job cost-exporter"
    jobs[0]["scrape_interval"] = COST_SCRAPE_INTERVAL
    jobs[0]["scrape_timeout"] = COST_SCRAPE_INTERVAL
    return yaml.safe_dump(cfg, sort_keys=False)


class Project:
    """One compose project of the stack, under a unique name."""

    def __init__(self, name=None):
        self.name = name or os.environ.get("PORTCULLIS_TEST_PROJECT") or \
            f"pctest{os.getpid()}{secrets.token_hex(2)}"
        self.dir = Path(tempfile.mkdtemp(prefix="portcullis-compose-"))
        self.secrets = self.dir / "secrets"
        self.secrets.mkdir(mode=0o700)
        ports = free_ports(4)
        self.ports = dict(zip(["http", "https", "prometheus", "alertmanager"], ports))
        self.users = {"prometheus": ("prom-test", secrets.token_urlsafe(18)),
                      "prometheus-admin": ("prom-admin-test", secrets.token_urlsafe(18)),
                      "alertmanager": ("am-test", secrets.token_urlsafe(18))}
        self.probe_password = secrets.token_urlsafe(18)
        self.aws_keys = ("AKIDPCTEST" + secrets.token_hex(5).upper(),
                         secrets.token_urlsafe(30))
        self.fake_aws_state, self.cost = cost_fixture(*self.aws_keys)
        self.prometheus_config = self.dir / "prometheus.yml"
        self.env = dict(os.environ)
        self.env.update({
            "DOMAIN": "localhost",
            "ENVIRONMENT": "dev",
            "PORTCULLIS_BIND": "127.0.0.1",
            "PORTCULLIS_TEST_SECRETS": str(self.secrets),
            "PROMETHEUS_CONFIG": str(self.prometheus_config),
            "PORTCULLIS_TEST_AWS_ACCESS_KEY_ID": self.aws_keys[0],
            "PORTCULLIS_TEST_AWS_SECRET_ACCESS_KEY": self.aws_keys[1],
            **{var: str(p) for var, p in zip(PORT_VARS, ports)},
        })
        self.log = self.dir / "compose.log"

    def container(self, service):
        return f"{self.name}_{service}_1"

    def compose(self, *args, check=True, timeout=600):
        cmd = ["podman-compose", "-p", self.name, "-f", str(COMPOSE),
               "-f", str(COMPOSE_TEST), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                           timeout=timeout, cwd=ROOT)
        with open(self.log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{p.stdout}\n{quiet(p.stderr)}\n")
        if check and p.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)} exited "
                                 f"{p.returncode}; log in {self.log}:\n"
                                 f"{quiet(p.stderr)[-3000:]}")
        return p

    def write_secrets(self):
        """The run's credentials, made the way secrets/README.md says."""
        probe_line = self._passwd("probe", self.probe_password)
        for realm, (user, password) in self.users.items():
            lines = self._passwd(user, password)
            if realm in PROBE_REALMS:
                lines += probe_line
            self._write(f"{realm.replace('-', '_')}_htpasswd", lines)
        self._write("blackbox_probe_password", self.probe_password)
        # Filled once the gateway has made its certificate (trust_gateway).
        self._write("gateway_ca.crt", "")
        self._write("grafana_admin_password", secrets.token_urlsafe(18))
        self._write("pagerduty_routing_key", secrets.token_hex(16))
        # Receivers point at a closed port on the container's own loopback.
        self._write("slack_api_url", "http://127.0.0.1:9/slack")
        self._write("smtp_password", secrets.token_urlsafe(12))
        self._write("deadmansswitch_url", "http://127.0.0.1:9/heartbeat")
        self._write("fake_aws_state.json", json.dumps(self.fake_aws_state))

    @staticmethod
    def _passwd(user, password):
        p = subprocess.run(
            ["podman", "run", "--rm", "-i", *ULIMITS, IMAGES["gateway"],
             "passwd", user],
            input=password + "\n", capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"portcullis passwd: {quiet(p.stderr)}"
        return p.stdout

    def trust_gateway(self, cert):
        """Writes the gateway's self-made certificate into the secret the
        blackbox exporter trusts, in place (the same inode, which the
        container sees through its bind mount), as secrets/README.md says."""
        with open(self.secrets / "gateway_ca.crt", "r+") as f:
            f.write(cert)
            f.truncate()

    def write_prometheus_config(self):
        self.prometheus_config.write_text(
            render_prometheus_config((ROOT / "prometheus" / "prometheus.yml").read_text()))
        self.prometheus_config.chmod(0o644)

    def _write(self, name, text):
        path = self.secrets / name
        path.write_text(text)
        path.chmod(0o644)

    def up(self):
        self.write_secrets()
        self.write_prometheus_config()
        self.compose("up", "-d", "--no-build")

    def state(self, service):
        out = podman("inspect", self.container(service), "--format",
                     "{{.State.Status}} {{.State.ExitCode}}", check=False)
        return out.stdout.strip() if out.returncode == 0 else "missing"

    def logs(self, service, tail=60):
        p = podman("logs", "--tail", str(tail), self.container(service), check=False)
        return (p.stdout + quiet(p.stderr))[-6000:]

    def last_check(self, service):
        """The exit code and output of the last healthcheck run."""
        try:
            log = inspect(self.container(service))["State"]["Health"]["Log"] or []
        except (AssertionError, KeyError, TypeError):
            return "none"
        if not log:
            return "none"
        return f"exit {log[-1].get('ExitCode')}: {log[-1].get('Output', '').strip()!r}"

    def wait_healthy(self, timeout=180):
        """Runs each healthcheck until it passes (podman without systemd
        never runs them by itself)."""
        pending = list(SERVICES)
        deadline = time.monotonic() + timeout
        while pending:
            for service in list(pending):
                state = self.state(service)
                if not state.startswith("running"):
                    raise AssertionError(
                        f"{service} is not running ({state}); its log:\n"
                        f"{self.logs(service)}")
                hc = podman("healthcheck", "run", self.container(service),
                            check=False, timeout=60)
                if hc.returncode == 0:
                    pending.remove(service)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not healthy after {timeout}s: {', '.join(pending)}\n" +
                    "\n".join(f"--- {s}: last healthcheck: {self.last_check(s)}\n"
                              f"--- {s} log:\n{self.logs(s, 30)}" for s in pending))
            time.sleep(2)

    def down(self):
        """Removes every container, volume and network of the project, also
        when podman-compose cannot (a half-started project)."""
        try:
            self.compose("down", "-v", "-t", "10", check=False, timeout=300)
        except subprocess.TimeoutExpired:
            pass
        label = f"label=io.podman.compose.project={self.name}"
        ids = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
        if ids:
            podman("rm", "-f", "-t", "5", *ids, check=False)
        vols = podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
        if vols:
            podman("volume", "rm", "-f", *vols, check=False)
        nets = podman("network", "ls", "-q", "--filter", label, check=False).stdout.split()
        if nets:
            podman("network", "rm", "-f", *nets, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def inspect(name, kind="container"):
    out = podman(kind, "inspect", name).stdout
    data = json.loads(out)
    return data[0] if isinstance(data, list) else data
