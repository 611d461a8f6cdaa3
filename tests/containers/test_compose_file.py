"""Static checks of compose/docker-compose.yml, its test override and the
gateway's compose config; no container is started. The real images
(prom/*, grafana/grafana-oss) cannot be pulled here, so these checks, and
podman-compose's own parse, are what the production file gets without them.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import compose_stack as stack
from compose_stack import COMPOSE, COMPOSE_TEST, ROOT

PUBLISHED = {"80", "443", "9090", "9093"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def gateway_config():
    return json.loads((ROOT / "gateway" / "portcullis.json").read_text())


def services(compose):
    return compose["services"]


def test_compose_spec_without_version(compose):
    assert "version" not in compose
    assert set(services(compose)) >= {"gateway", "prometheus", "alertmanager",
                                      "grafana", "node-exporter", "cost-exporter"}


def test_only_gateway_publishes(compose):
    for name, svc in services(compose).items():
        if name == "gateway":
            targets = {str(p).rsplit(":", 1)[-1] for p in svc["ports"]}
            assert targets == PUBLISHED, svc["ports"]
        else:
            assert "ports" not in svc, name
            assert "network_mode" not in svc, name


def test_one_network(compose):
    assert list(compose["networks"]) == ["monitoring"]
    for name, svc in services(compose).items():
        assert svc.get("networks") == ["monitoring"], name


def test_healthcheck_everywhere(compose):
    for name, svc in services(compose).items():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    assert "/healthz" in " ".join(services(compose)["gateway"]["healthcheck"]["test"])


def test_gateway_waits_for_healthy_upstreams(compose):
    deps = services(compose)["gateway"]["depends_on"]
    for upstream in ("prometheus", "alertmanager", "grafana"):
        assert deps[upstream] == {"condition": "service_healthy"}, upstream


def test_images_pinned(compose):
    for name, svc in services(compose).items():
        if "build" in svc:
            continue
        image = svc["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), (name, image)


def test_least_privilege(compose):
    for name, svc in services(compose).items():
        assert svc.get("cap_drop") == ["ALL"], name
        assert "cap_add" not in svc, name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert not svc.get("privileged"), name
    gw = services(compose)["gateway"]
    assert gw["read_only"] is True
    assert "net.ipv4.ip_unprivileged_port_start=0" in gw["sysctls"]
    assert gw["stop_signal"] == "SIGTERM"


def test_cost_exporter_service(compose):
    svc = services(compose)["cost-exporter"]
    assert svc["build"] == {"context": "..", "dockerfile": "cost-exporter/Dockerfile"}
    assert (COMPOSE.parent / ".." / "cost-exporter" / "Dockerfile").exists()
    # reachable on the stack's network only
    assert "ports" not in svc and "expose" not in svc and "network_mode" not in svc
    assert svc["networks"] == ["monitoring"]
    assert svc["read_only"] is True
    assert svc["cap_drop"] == ["ALL"] and "cap_add" not in svc
    assert "no-new-privileges:true" in svc["security_opt"]
    assert "user" not in svc  # the image's 10002, never root
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD" and "--healthcheck" in test, test
    cmd = svc["command"]
    assert "--listen=:9091" in cmd and "--listen=:9091" in test
    assert any(c.startswith("--environment=${ENVIRONMENT") for c in cmd), cmd
    env = svc["environment"]
    assert env["AWS_REGION"] == "${AWS_REGION:-us-east-1}"
    # production credentials come from the instance role, never from here
    for key in env:
        assert not key.startswith(("AWS_ACCESS_KEY", "AWS_SECRET", "AWS_SESSION",
                                   "AWS_ENDPOINT_URL", "AWS_EC2_METADATA")), key
    text = COMPOSE.read_text()
    section = text[text.index("\n  cost-exporter:"):text.index("\n  node-exporter:")]
    assert "IMDSv2" in section and "hop-limit 2" in section


def test_cost_exporter_is_prometheus_target():
    prom = ROOT / "prometheus" / "prometheus.yml"
    jobs = {j["job_name"]: j for j in yaml.safe_load(prom.read_text())["scrape_configs"]}
    targets = [t for sc in jobs["cost-exporter"]["static_configs"] for t in sc["targets"]]
    assert targets == ["cost-exporter:9091"], targets
    # the test's copy differs from it in the scrape interval and timeout only
    rendered = yaml.safe_load(stack.render_prometheus_config(prom.read_text()))
    original = yaml.safe_load(prom.read_text())
    for cfg in (rendered, original):
        for job in cfg["scrape_configs"]:
            if job["job_name"] == "cost-exporter":
                job.pop("scrape_interval", None)
                job.pop("scrape_timeout", None)
    assert rendered == original


def test_blackbox_exporter_service(compose):
    """The probe SLI's exporter: on the stack's network only, its config
    and both of its secrets mounted, never the gateway's key volume; the
    probe user's password only as a file."""
    svc = services(compose)["blackbox-exporter"]
    assert svc["image"].startswith("prom/blackbox-exporter:v0.")
    assert "ports" not in svc and "expose" not in svc
    assert svc["networks"] == ["monitoring"]
    assert svc["read_only"] is True and "user" not in svc
    assert "../blackbox/blackbox.yml:/etc/blackbox_exporter/config.yml:ro" in svc["volumes"]
    assert not any("gateway-certs" in v for v in svc["volumes"])
    assert set(svc["secrets"]) == {"blackbox_probe_password", "blackbox_gateway_ca"}
    assert "--config.file=/etc/blackbox_exporter/config.yml" in svc["command"]
    assert "/-/healthy" in " ".join(svc["healthcheck"]["test"])
    bb = yaml.safe_load((ROOT / "blackbox" / "blackbox.yml").read_text())
    for name, module in bb["modules"].items():
        http = module["http"]
        assert module["prober"] == "http" and http["fail_if_not_ssl"] is True, name
        assert http["valid_status_codes"] == [200], name
        assert http["valid_http_versions"] == ["HTTP/1.1"], name
        assert http["tls_config"]["ca_file"] == "/run/secrets/blackbox_gateway_ca", name
        auth = http.get("basic_auth")
        if auth:
            assert auth == {"username": "probe",
                            "password_file": "/run/secrets/blackbox_probe_password"}, name


def test_probe_job_covers_the_public_routes(compose, gateway_config):
    """prometheus.yml's job probe: one target per route of the gateway's 443
    listener but the admin API's, through https://gateway/, labelled with
    the route's name, the module by whether the route has a realm, and
    the scrape sent to the exporter."""
    bb = yaml.safe_load((ROOT / "blackbox" / "blackbox.yml").read_text())
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    job = jobs["probe"]
    assert job["metrics_path"] == "/probe"
    default_module = job["params"]["module"][0]
    routes = {r["name"]: r for lst in gateway_config["listeners"]
              if lst["listen"] == ":443" for r in lst["routes"]}
    probed = {}
    for group in job["static_configs"]:
        (target,) = group["targets"]
        name = group["labels"]["route"]
        module = group["labels"].get("__param_module", default_module)
        assert module in bb["modules"], module
        assert target.startswith("https://gateway/"), target
        path = target[len("https://gateway"):]
        assert path.startswith(routes[name]["path"]), (name, target)
        assert ("basic_auth" in bb["modules"][module]["http"]) == \
            ("realm" in routes[name]), (name, module)
        probed[name] = target
    assert set(probed) == set(routes) - {"prometheus-admin"}, probed
    relabel = job["relabel_configs"]
    assert relabel[0] == {"source_labels": ["__address__"],
                          "target_label": "__param_target"}
    assert relabel[-1] == {"target_label": "__address__",
                           "replacement": "blackbox-exporter:9115"}
    assert jobs["blackbox"]["static_configs"] == [{"targets": ["blackbox-exporter:9115"]}]


def test_fake_aws_only_in_test_override(compose):
    assert "fake-aws" not in services(compose)
    assert "fake-aws" not in COMPOSE.read_text()
    test = yaml.safe_load(COMPOSE_TEST.read_text())["services"]
    fake = test["fake-aws"]
    assert "ports" not in fake and fake["networks"] == ["monitoring"]
    env = test["cost-exporter"]["environment"]
    assert env["AWS_ENDPOINT_URL_COST_EXPLORER"] == "http://fake-aws:4566"
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"


def test_prometheus_flags(compose):
    cmd = services(compose)["prometheus"]["command"]
    assert "--web.route-prefix=/" in cmd
    assert any(c.startswith("--web.external-url=https://${DOMAIN") and
               c.endswith("/prometheus/") for c in cmd), cmd
    assert any(c.startswith("--storage.tsdb.retention.time=") and "35d" in c for c in cmd)
    # the lifecycle API stays off (/-/quit through the gateway); the admin
    # API is on for backups, behind the realm prometheus-admin
    assert not any("enable-lifecycle" in c for c in cmd)
    assert "--web.enable-admin-api" in cmd
    am = services(compose)["alertmanager"]["command"]
    assert "--web.route-prefix=/" in am
    assert any(c.endswith("/alertmanager/") for c in am if "external-url" in c)


def test_named_volumes_declared(compose):
    declared = set(compose["volumes"])
    for name, svc in services(compose).items():
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if not src.startswith(("/", ".", "$")):
                assert src in declared, (name, v)


def test_bind_sources_exist(compose):
    for name, svc in services(compose).items():
        for v in svc.get("volumes", []):
            src = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", v.split(":", 1)[0])
            if src.startswith("."):
                assert (COMPOSE.parent / src).exists(), (name, src)


def test_secrets_are_files_in_gitignored_dir(compose):
    for name, s in compose["secrets"].items():
        assert s["file"].startswith("./secrets/"), name
    if shutil.which("git") and (ROOT / ".git").exists():
        for path in ("compose/secrets/prometheus_htpasswd", "compose/.env"):
            p = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path],
                               capture_output=True)
            assert p.returncode == 0, f"{path} must be ignored by git"


def test_alertmanager_secret_files_provided(compose):
    """Every *_file path alertmanager.yml reads is a secret target."""
    am = ROOT / "alertmanager" / "alertmanager.yml"
    if not am.exists():
        pytest.skip("no alertmanager/alertmanager.yml yet")
    wanted = set(re.findall(r"_file:\s*(/etc/alertmanager/secrets/\S+)", am.read_text()))
    given = {s["target"] for s in services(compose)["alertmanager"]["secrets"]}
    assert wanted <= given, wanted - given


def test_gateway_secrets_match_config(compose, gateway_config):
    given = {f"/run/secrets/{s}" for s in services(compose)["gateway"]["secrets"]}
    for realm, r in gateway_config["realms"].items():
        files = r["htpasswd"] if isinstance(r["htpasswd"], list) else [r["htpasswd"]]
        assert set(files) <= given, realm


def test_gateway_config_shape(gateway_config):
    cfg = gateway_config
    assert cfg["admin"]["listen"] == "0.0.0.0:9145"
    assert "resolvers" not in cfg  # /etc/resolv.conf: Docker's and podman's DNS alike
    by_port = {lst["listen"]: lst for lst in cfg["listeners"]}
    assert by_port[":80"]["redirect_https"] is True
    routes = {r["name"]: r for r in by_port[":443"]["routes"]}
    assert routes["prometheus"]["path"] == "/prometheus/" and routes["prometheus"]["strip_prefix"]
    assert routes["alertmanager"]["path"] == "/alertmanager/"
    assert routes["alertmanager"]["strip_prefix"]
    assert routes["prometheus"]["realm"] == "prometheus"
    assert routes["alertmanager"]["realm"] == "alertmanager"
    assert routes["grafana"]["path"] == "/" and "realm" not in routes["grafana"]
    (route,) = by_port[":9093"]["routes"]
    assert (route["name"], route["path"], route["realm"]) == ("alertmanager", "/", "alertmanager")
    on_9090 = {r["path"]: r for r in by_port[":9090"]["routes"]}
    assert set(on_9090) == {"/", "/api/v1/admin/"}
    assert (on_9090["/"]["name"], on_9090["/"]["realm"]) == ("prometheus", "prometheus")
    for port in (":9090", ":9093"):
        assert by_port[port]["tls"] is True
    # Prometheus's admin API: a realm of its own on every listener that
    # reaches Prometheus, and the longer prefix wins over the prometheus
    # route. On 443 strip_prefix would cut the whole route path, so that
    # route forwards /prometheus/api/v1/admin/... as it is and Prometheus
    # (route prefix /) answers 404: closed there, served on 9090.
    admin = [on_9090["/api/v1/admin/"], routes["prometheus-admin"]]
    assert admin[1]["path"] == "/prometheus/api/v1/admin/"
    assert not admin[1].get("strip_prefix")
    for r in admin:
        assert (r["name"], r["upstream"], r["realm"]) == \
            ("prometheus-admin", "prometheus", "prometheus-admin")
    assert cfg["realms"]["prometheus-admin"]["htpasswd"] == \
        "/run/secrets/prometheus_admin_htpasswd"
    for lst in cfg["listeners"]:
        if any(r["upstream"] == "prometheus" for r in lst.get("routes", [])):
            assert any(r["realm"] == "prometheus-admin" for r in lst["routes"]), lst["listen"]
    for lst in cfg["listeners"]:
        assert lst.get("tls") or lst.get("redirect_https"), lst["listen"]


def test_gateway_config_checks():
    """portcullis -t on the compose config, with throw-away htpasswd files at
    its container paths (/run/secrets) in a private mount namespace."""
    binary = os.environ.get("PORTCULLIS_BIN", str(ROOT / "build" / "bin" / "portcullis"))
    if not os.access(binary, os.X_OK):
        pytest.skip(f"no {binary}; make build")
    p = subprocess.run([str(ROOT / "tests" / "containers" / "check-gateway-config.sh"),
                        binary], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "configuration is valid" in p.stdout


@pytest.mark.skipif(shutil.which("podman-compose") is None, reason="no podman-compose")
@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, COMPOSE_TEST]],
                         ids=["main", "main+test"])
def test_podman_compose_parses(files):
    """podman-compose 1.0.3 has no `config`: `--dry-run ps` loads, merges
    and interpolates the files and only prints the podman command."""
    env = dict(os.environ, DOMAIN="monitoring.example.com", ENVIRONMENT="prod",
               PORTCULLIS_TEST_SECRETS="/nonexistent",
               PORTCULLIS_TEST_AWS_ACCESS_KEY_ID="AKIDPARSE",
               PORTCULLIS_TEST_AWS_SECRET_ACCESS_KEY="parse-secret")
    args = [a for f in files for a in ("-f", str(f))]
    p = subprocess.run(["podman-compose", "--dry-run", "-p", "pcparse", *args, "ps"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    if len(files) == 1:
        assert "AWS_ACCESS_KEY_ID" not in p.stdout
        return
    # With two files it prints the merged, interpolated config.
    text = p.stdout[p.stdout.index("{"):p.stdout.rindex("}") + 1]
    merged = json.loads(text)
    svc = merged["services"]
    assert "--web.external-url=https://monitoring.example.com/prometheus/" in \
        svc["prometheus"]["command"]
    base = services(yaml.safe_load(COMPOSE.read_text()))
    assert set(svc) == set(base) | {"fake-aws"}
    for name, s in svc.items():
        assert s["image"].startswith("localhost/portcullis-test/"), name
        assert s["ulimits"]["nofile"] == {"soft": 16384, "hard": 16384}, name
        # podman-compose extends lists: the override must leave these alone
        for key in ("command", "ports", "volumes"):
            if name in base:
                assert len(s.get(key, [])) == len(base[name].get(key, [])), (name, key)
    assert "--environment=prod" in svc["cost-exporter"]["command"]
    env = svc["cost-exporter"]["environment"]
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] == "AKIDPARSE"
    for name, s in merged["secrets"].items():
        assert s["file"].startswith("/nonexistent/"), name


def test_dockerignore_is_an_allow_list():
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    assert lines[0] == "*"
    for entry in lines[1:]:
        assert entry.startswith("!"), entry
        assert not entry.lstrip("!").startswith(("build", "run", ".git", "certs",
                                                  "compose")), entry
    # what gateway/Dockerfile and cost-exporter/Dockerfile copy is allowed
    for path in ("gateway/Dockerfile", "cost-exporter/Dockerfile"):
        dockerfile = (ROOT / path).read_text()
        for src in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
            src = src.rstrip("/") + "/"
            assert any(src.startswith(e.lstrip("!").rstrip("/") + "/")
                       for e in lines[1:]), (path, src)


def test_env_example_has_no_secrets():
    text = (COMPOSE.parent / ".env.example").read_text()
    keys = re.findall(r"^#?([A-Z_]+)=", text, re.M)
    assert "DOMAIN" in keys and "ENVIRONMENT" in keys
    for k in keys:
        assert not re.search(r"PASSWORD|SECRET_ACCESS|TOKEN|API_KEY|ROUTING_KEY", k), k


def test_check_config_helper_is_executable():
    assert os.access(Path(stack.__file__).with_name("check-gateway-config.sh"), os.X_OK)
