"""Fixtures for portcullis's integration tests.

Every server listens on 127.0.0.1 with a port chosen at run time, keeps its
files in the test's temporary directory, and is stopped by its PID at
teardown (SIGTERM, wait, SIGKILL). Nothing is ever killed by name.

Real peers: Prometheus and Alertmanager (Debian packages, session scope,
served under /prometheus/ and /alertmanager/ through --web.external-url),
nginx as a static upstream whose JSON access log records what it received,
tests/tools/stub_upstream.py for upstreams that must misbehave, and
tests/tools/h11_upstream.py, an upstream whose parser is h11 (strict,
independent) and whose log holds every byte the gateway sent.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gwtest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("PORTCULLIS_BIN",
                         REPO / "build" / "bin" / "portcullis")).absolute()
COST_EXPORTER_BIN = Path(os.environ.get(
    "PORTCULLIS_COST_EXPORTER_BIN",
    REPO / "build" / "bin" / "portcullis-cost-exporter")).absolute()
TOOLS = REPO / "tests" / "tools"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
NGINX = "/usr/sbin/nginx"
PYTHON = sys.executable

TEST_TIMEOUT = 120  # seconds, per test, setup and teardown included


# ------------------------------------------------------------------ basics


@pytest.fixture(autouse=True)
def _deadline():
    """No test may hang the suite: SIGALRM fails it after TEST_TIMEOUT."""

    def expired(signum, frame):
        raise TimeoutError("test exceeded %ds" % TEST_TIMEOUT)

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


_given_ports = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago and has not been
    handed out before in this session."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def portcullis_binary():
    """The gateway binary; FAILS the calling test if it is not built."""
    if not (BIN.is_file() and os.access(BIN, os.X_OK)):
        pytest.fail("portcullis binary not found at %s; build it with "
                    "`cmake -S %s -B %s/build && cmake --build %s/build -j2`"
                    % (BIN, REPO, REPO, REPO), pytrace=False)
    return str(BIN)


def tail(path, n=3000):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no %s)" % path


class Proc:
    """A child process with stdout/stderr in files, stopped by its PID."""

    def __init__(self, name, argv, workdir, cwd=None, env=None,
                 preexec_fn=None):
        self.name = name
        self.workdir = Path(workdir)
        self.stdout_path = self.workdir / ("%s.stdout" % name)
        self.stderr_path = self.workdir / ("%s.stderr" % name)
        self.argv = argv
        with open(self.stdout_path, "wb") as out, \
                open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL,
                                          cwd=cwd, env=env,
                                          preexec_fn=preexec_fn)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns
        (exit status, True if it had to be killed)."""
        if self.popen.poll() is not None:
            return self.popen.returncode, False
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout), False
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(10), True

    def diagnostics(self):
        return "%s (pid %d) %s\n--- stderr ---\n%s\n--- stdout ---\n%s" % (
            self.name, self.pid, " ".join(self.argv),
            tail(self.stderr_path), tail(self.stdout_path, 1500))


def wait_http(proc, port, path, timeout=30.0, want_body=None):
    """Polls GET http://127.0.0.1:port/path until it answers 200 (and the
    body, stripped, equals want_body if given). Fails the test with the
    process's output if it exits or never gets ready."""
    import http.client
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            pytest.fail("%s exited with %s before it was ready\n%s"
                        % (proc.name, proc.popen.returncode,
                           proc.diagnostics()), pytrace=False)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and (want_body is None
                                    or body.strip() == want_body):
                return
            last = "%d %r" % (r.status, body[:100])
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    pytest.fail("%s not ready on port %d%s after %.0fs (last: %s)\n%s"
                % (proc.name, port, path, timeout, last, proc.diagnostics()),
                pytrace=False)


# ------------------------------------------------------------------ nginx

SMALL_TXT = b"portcullis small file\n"


def _pattern_file(path, size, seed):
    """Writes `size` pseudo-random bytes (deterministic per seed) and
    returns their sha256."""
    h = hashlib.sha256()
    block = hashlib.sha256(seed).digest() * 2048  # 64 KiB
    # vary every block so a misplaced block cannot go unnoticed
    with open(path, "wb") as f:
        i = 0
        left = size
        while left:
            b = (i.to_bytes(8, "big") + block[8:])[:min(left, len(block))]
            f.write(b)
            h.update(b)
            left -= len(b)
            i += 1
    return h.hexdigest()


class Docroot:
    def __init__(self, path):
        self.path = Path(path)
        self.sha256 = {}
        self.size = {}

    def add(self, name, size):
        self.sha256[name] = _pattern_file(self.path / name, size,
                                          name.encode())
        self.size[name] = size

    def read(self, name):
        return (self.path / name).read_bytes()


@pytest.fixture(scope="session")
def docroot(tmp_path_factory):
    """Files nginx serves: small.txt, 64k.bin, 1m.bin, 50m.bin."""
    d = Docroot(tmp_path_factory.mktemp("docroot"))
    (d.path / "small.txt").write_bytes(SMALL_TXT)
    d.sha256["small.txt"] = hashlib.sha256(SMALL_TXT).hexdigest()
    d.size["small.txt"] = len(SMALL_TXT)
    d.add("64k.bin", 64 * 1024)
    d.add("1m.bin", 1024 * 1024)
    d.add("50m.bin", 50 * 1024 * 1024)
    return d


# Everything the tests may want to know about what nginx received.
_NGINX_LOG_FIELDS = {
    "request": "$request",
    "request_uri": "$request_uri",
    "status": "$status",
    "body_bytes_sent": "$body_bytes_sent",
    "remote_addr": "$remote_addr",
    "connection": "$connection",
    "connection_requests": "$connection_requests",
    "x_forwarded_for": "$http_x_forwarded_for",
    "x_real_ip": "$http_x_real_ip",
    "x_request_id": "$http_x_request_id",
    "x_forwarded_host": "$http_x_forwarded_host",
    "x_forwarded_proto": "$http_x_forwarded_proto",
    "http_connection": "$http_connection",
    "upgrade": "$http_upgrade",
    "http2_settings": "$http_http2_settings",
    "keep_alive": "$http_keep_alive",
    "te": "$http_te",
    "proxy_connection": "$http_proxy_connection",
    "transfer_encoding": "$http_transfer_encoding",
    "x_hop": "$http_x_hop",
    "x_end_to_end": "$http_x_end_to_end",
    "host": "$http_host",
    "origin": "$http_origin",
    "content_length": "$content_length",
    "request_length": "$request_length",
}

_NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    log_format probe escape=json '{fmt}';
    access_log {tmp}/access.log probe;
    keepalive_timeout 60s;
    keepalive_requests 10000;
    large_client_header_buffers 8 64k;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /__ready {{ access_log off; return 200 "ready\\n"; }}
        location = /__status/503 {{ return 503 "unavailable\\n"; }}
        location = /__status/502 {{ return 502 "bad gateway\\n"; }}
        location / {{ }}
    }}
}}
"""


class Nginx:
    """nginx serving the docroot; access_log() tells what it received.
    Values of absent request headers are "" (escape=json).
    GET /__status/503 answers 503 and /__status/502 502 (an upstream
    failing a request)."""

    def __init__(self, workdir, docroot, port):
        self.port = port
        self.tmp = Path(workdir)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.access_log_path = self.tmp / "access.log"
        fmt = "{" + ",".join('"%s":"%s"' % kv
                             for kv in _NGINX_LOG_FIELDS.items()) + "}"
        conf = self.tmp / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(tmp=self.tmp, port=port,
                                           root=docroot.path, fmt=fmt))
        self.proc = Proc("nginx", [NGINX, "-p", str(self.tmp) + "/",
                                   "-e", str(self.tmp / "error.log"),
                                   "-c", str(conf)], self.tmp)
        self.pid = self.proc.pid
        wait_http(self.proc, port, "/__ready", timeout=10)

    def access_log(self):
        """Every request nginx has logged so far, oldest first."""
        return gwtest.read_json_lines(self.access_log_path) \
            if self.access_log_path.exists() else []

    def count(self):
        return len(self.access_log())

    def wait_for(self, pred, timeout=5.0, what="an nginx log entry"):
        """Waits for a log entry matching pred(entry); returns it."""
        def find():
            for e in self.access_log():
                if pred(e):
                    return e
            return None
        return gwtest.wait_until(find, timeout, what=what)

    def wait_for_uri(self, uri, timeout=5.0):
        return self.wait_for(lambda e: e["request_uri"] == uri, timeout,
                             what="nginx to log %s" % uri)

    def stop(self):
        return self.proc.stop()


@pytest.fixture
def nginx_factory(tmp_path, docroot):
    """nginx_factory(port=None) starts an nginx on `port` (a free one if
    None) and returns it; every one is stopped at teardown."""
    started = []

    def start(port=None):
        n = Nginx(tmp_path / ("nginx%d" % len(started)), docroot,
                  port or free_port())
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop()


@pytest.fixture
def nginx(nginx_factory):
    return nginx_factory()


# ------------------------------------------------- Prometheus, Alertmanager


@pytest.fixture(scope="session")
def public_port():
    """The gateway port written into --web.external-url. The external URL's
    host:port only shapes links Prometheus and Alertmanager print; its path
    is what matters: they serve under /prometheus/ and /alertmanager/."""
    return free_port()


class Service:
    def __init__(self, proc, port, prefix):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.prefix = prefix


def start_prometheus(tmp, public_port, extra_jobs=(), rule_files=(),
                     admin_api=False):
    """Starts Prometheus under /prometheus/, scraping itself every second
    and each (job, "host:port", metrics_path) in extra_jobs; returns a
    Service once /prometheus/-/ready answers. The caller stops .proc.
    rule_files: rule files copied next to the config (under their own
    names, which must differ) and loaded; evaluated every second unless a
    group sets its own interval. Its data is tmp/data (which may hold
    blocks already); admin_api adds --web.enable-admin-api."""
    port = free_port()
    jobs = [("prometheus", "127.0.0.1:%d" % port, "/prometheus/metrics")]
    jobs += list(extra_jobs)
    conf = ("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
    names = [Path(f).name for f in rule_files]
    assert len(set(names)) == len(names), "rule files share a name: %r" % (
        list(rule_files),)
    if rule_files:
        conf += "rule_files:\n"
        for f in rule_files:
            (tmp / Path(f).name).write_bytes(Path(f).read_bytes())
            conf += "  - %s\n" % Path(f).name  # relative to the config
    conf += "scrape_configs:\n"
    for job, target, path in jobs:
        conf += ("  - job_name: %s\n    metrics_path: %s\n"
                 "    static_configs:\n      - targets: ['%s']\n"
                 % (job, path, target))
    (tmp / "prometheus.yml").write_text(conf)
    proc = Proc("prometheus", [
        PROMETHEUS,
        "--web.listen-address=127.0.0.1:%d" % port,
        "--web.external-url=http://127.0.0.1:%d/prometheus/" % public_port,
        "--storage.tsdb.path=%s" % (tmp / "data"),
        "--config.file=%s" % (tmp / "prometheus.yml"),
    ] + (["--web.enable-admin-api"] if admin_api else []), tmp, cwd=tmp)
    try:
        wait_http(proc, port, "/prometheus/-/ready", timeout=60)
    except BaseException:
        proc.stop()
        raise
    return Service(proc, port, "/prometheus/")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, public_port):
    svc = start_prometheus(tmp_path_factory.mktemp("prometheus"), public_port)
    yield svc
    svc.proc.stop()


def each_in_own_dir(tmp_path, prefix, start_in):
    """The body of a factory fixture (yield from it): start(*args) calls
    start_in(directory, *args) in a new tmp_path/PREFIXn and keeps the
    Service it returns; every one is stopped at teardown."""
    started = []

    def start(*args, **kwargs):
        d = tmp_path / ("%s%d" % (prefix, len(started)))
        d.mkdir()
        svc = start_in(d, *args, **kwargs)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.proc.stop()


@pytest.fixture
def prometheus_factory(tmp_path, public_port):
    """prometheus_factory(extra_jobs, rule_files=(), admin_api=False)
    starts a Prometheus of the test's own that also scrapes extra_jobs
    [(job, "host:port", path)] and evaluates the rules of rule_files
    (paths, copied); admin_api: with --web.enable-admin-api."""
    def start_in(d, extra_jobs, rule_files=(), admin_api=False):
        return start_prometheus(d, public_port, extra_jobs, rule_files,
                                admin_api)
    yield from each_in_own_dir(tmp_path, "prometheus", start_in)


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory, public_port):
    tmp = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    (tmp / "alertmanager.yml").write_text(
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    proc = Proc("alertmanager", [
        ALERTMANAGER,
        "--web.listen-address=127.0.0.1:%d" % port,
        "--web.external-url=http://127.0.0.1:%d/alertmanager/" % public_port,
        "--storage.path=%s" % (tmp / "data"),
        "--config.file=%s" % (tmp / "alertmanager.yml"),
        "--cluster.listen-address=",
    ], tmp, cwd=tmp)
    try:
        wait_http(proc, port, "/alertmanager/-/ready", timeout=60)
        yield Service(proc, port, "/alertmanager/")
    finally:
        proc.stop()


# ------------------------------------------------------------ stand-ins


class Stub:
    """tests/tools/stub_upstream.py in one mode; log() lists the request
    heads it received as {"request_line", "headers": [[n, v]...]}."""

    def __init__(self, workdir, mode, **opts):
        self.mode = mode
        self.log_path = Path(workdir) / ("stub-%s.log" % mode)
        argv = [PYTHON, str(TOOLS / "stub_upstream.py"), mode,
                "--log", str(self.log_path)]
        response = opts.pop("response", None)
        if response is not None:  # raw mode: the bytes to answer with
            rf = Path(workdir) / "response.bin"
            rf.write_bytes(response)
            opts["response_file"] = rf
        for k, v in opts.items():
            if v is True:
                argv.append("--" + k.replace("_", "-"))
            elif v is not False:
                argv += ["--" + k.replace("_", "-"), str(v)]
        self.proc = Proc("stub-%s" % mode, argv, workdir)
        self.pid = self.proc.pid

        def listening():
            if not self.proc.alive():
                pytest.fail("stub exited\n" + self.proc.diagnostics())
            text = self.proc.stdout_path.read_text()
            return text.startswith("LISTENING ") and "\n" in text and text
        text = gwtest.wait_until(listening, 10, what="stub to listen")
        self.port = int(text.split()[1])

    def log(self):
        return gwtest.read_json_lines(self.log_path) \
            if self.log_path.exists() else []

    @staticmethod
    def header(entry, name):
        for n, v in entry["headers"]:
            if n.lower() == name.lower():
                return v
        return None

    def stop(self):
        return self.proc.stop()


@pytest.fixture
def stub_factory(tmp_path):
    """stub_factory(mode, delay=..., body_size=..., read_rate=...,
    response=b"...", hold=True) starts tests/tools/stub_upstream.py."""
    started = []

    def start(mode, **opts):
        d = tmp_path / ("stub%d" % len(started))
        d.mkdir()
        s = Stub(d, mode, **opts)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class H11Upstream:
    """tests/tools/h11_upstream.py: an upstream whose parser is h11. log()
    lists its events (see the tool's docstring); mark() and since(mark)
    cut out what came after a point; wait_quiet() waits until nothing the
    gateway sent is still unread or unlogged; add_raw(name, data) stores a
    response that a request selects with "X-Test-Response: raw:NAME"."""

    def __init__(self, workdir, response_mode="length"):
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "h11-upstream.log"
        self.raw_dir = self.workdir / "raw"
        self.raw_dir.mkdir()
        self.proc = Proc("h11-upstream", [
            PYTHON, str(TOOLS / "h11_upstream.py"), "--log",
            str(self.log_path), "--response-mode", response_mode,
            "--raw-dir", str(self.raw_dir)], self.workdir)
        self.pid = self.proc.pid

        def listening():
            if not self.proc.alive():
                pytest.fail("h11_upstream exited\n" + self.proc.diagnostics(),
                            pytrace=False)
            lines = self.proc.stdout_path.read_text().split("\n")
            return len(lines) >= 3 and lines[:2]
        lines = gwtest.wait_until(listening, 10, what="h11_upstream to listen")
        assert lines[0].startswith("LISTENING ") and \
            lines[1].startswith("CONTROL "), lines
        self.port = int(lines[0].split()[1])
        self.control_port = int(lines[1].split()[1])

    def log(self):
        return gwtest.read_json_lines(self.log_path) \
            if self.log_path.exists() else []

    def mark(self):
        """A point in the log: since(mark) lists the events after it."""
        return len(self.log())

    def since(self, mark, event=None):
        return [e for e in self.log()[mark:]
                if event is None or e["event"] == event]

    def quiet(self):
        with socket.create_connection(("127.0.0.1", self.control_port),
                                      timeout=10) as s:
            s.sendall(b"quiet\n")
            f = s.makefile("rb")
            return json.loads(f.readline())

    def wait_quiet(self, timeout=15.0):
        """Waits until every byte the gateway sent so far was parsed and
        logged (or refused and logged): no connection in the accept queue,
        none with unread bytes or in the middle of a request."""
        last = {}

        def check():
            last.update(self.quiet())
            return last["quiet"]
        try:
            gwtest.wait_until(check, timeout, interval=0.01,
                              what="h11_upstream to be quiet")
        except AssertionError as e:
            raise AssertionError("%s: %s" % (e, last.get("busy")))

    def add_raw(self, name, data):
        (self.raw_dir / name).write_bytes(data)
        return name

    @staticmethod
    def raw(event):
        """The raw bytes of a request or error event."""
        import base64
        return base64.b64decode(event["raw"])

    def stop(self):
        return self.proc.stop()


@pytest.fixture
def h11_upstream_factory(tmp_path):
    """h11_upstream_factory(response_mode="length") starts
    tests/tools/h11_upstream.py and returns an H11Upstream."""
    started = []

    def start(response_mode="length"):
        d = tmp_path / ("h11up%d" % len(started))
        d.mkdir()
        u = H11Upstream(d, response_mode)
        started.append(u)
        return u

    yield start
    for u in started:
        u.stop()


@pytest.fixture
def h11_upstream(h11_upstream_factory):
    return h11_upstream_factory()


# ------------------------------------------------------------------ gateway


def upstream(port, **kw):
    """An upstreams entry for one server on 127.0.0.1:port."""
    u = {"servers": ["127.0.0.1:%d" % port]}
    u.update(kw)
    return u


def config_check(tmp_path, listener=None, route=None, **top):
    """`portcullis -t` on a config of one route ("u", path "/", upstream
    "u") with `listener` and `route` merged into the listener and the route
    and `top` into the top level: the CompletedProcess (text). For the
    config-error tests, which assert on its return code and stderr."""
    r = {"name": "u", "path": "/", "upstream": "u"}
    r.update(route or {})
    cfg = make_config(1, 2, {"u": upstream(3)}, [r], listener=listener, **top)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    return subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                          capture_output=True, text=True, timeout=10)


def make_config(gw_port, admin_port, upstreams, routes, listener=None,
                **top):
    cfg = {
        "workers": 2,
        "access_log": True,
        "drain_timeout": "10s",
        "admin": {"listen": "127.0.0.1:%d" % admin_port},
        "upstreams": upstreams,
        "listeners": [{
            "listen": "127.0.0.1:%d" % gw_port,
            "timeouts": {"header": "2s", "body": "5s", "keepalive": "10s"},
            "max_header_size": "16k",
            "max_uri_size": "8k",
            "routes": routes,
        }],
    }
    cfg["listeners"][0].update(listener or {})
    cfg.update(top)
    return cfg


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "ThreadSanitizer")


def gateway_env(env):
    """The environment of a gateway started with env=...: None (inherit
    this process's) stays None; a dict is merged over os.environ without
    any of its AWS_* variables, so only the test decides what the
    gateway's AWS client sees."""
    if env is None:
        return None
    full = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full.update(env)
    return full


class Gateway:
    """A running portcullis. access_log() parses its stdout, error_log()
    is its stderr, metrics() scrapes the admin listener."""

    def __init__(self, workdir, config, env=None):
        self.tmp = Path(workdir)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.port = int(config["listeners"][0]["listen"].rsplit(":", 1)[1])
        self.admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])
        self.config_path = self.tmp / "portcullis.json"
        self._write(config)
        self.proc = Proc("portcullis", [portcullis_binary(), "-c",
                                        str(self.config_path)], self.tmp,
                         env=gateway_env(env))
        self.pid = self.proc.pid
        self.access_log_path = self.proc.stdout_path
        self.error_log_path = self.proc.stderr_path
        self.returncode = None
        # Readiness is /healthz alone: no probe connection on the listener,
        # so connection counters start at zero.
        wait_http(self.proc, self.admin_port, "/healthz", timeout=10,
                  want_body=b"ok")

    def _write(self, config):
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        os.replace(tmp, self.config_path)  # never a half-written file

    def reload(self, config):
        """Rewrites the config file and sends SIGHUP."""
        self.config = config
        self._write(config)
        os.kill(self.pid, signal.SIGHUP)

    def signal(self, sig):
        os.kill(self.pid, sig)

    def access_log(self):
        return gwtest.read_json_lines(self.access_log_path)

    def error_log(self):
        return self.error_log_path.read_text(errors="replace")

    def metrics_text(self):
        st, _, body = gwtest.get(self.admin_port, "/metrics")
        assert st == 200, "GET /metrics on the admin listener: %d" % st
        return body.decode()

    def metrics(self):
        return gwtest.parse_metrics(self.metrics_text())

    def vm_kb(self, field):
        """VmRSS, VmHWM, ... of the gateway in kB, from /proc/PID/status."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError("%s not in /proc/%d/status" % (field, self.pid))

    def stop(self, timeout=15.0):
        rc, killed = self.proc.stop(timeout)
        self.returncode = rc
        return rc, killed

    def diagnostics(self):
        return self.proc.diagnostics()


@pytest.fixture
def gateway(tmp_path):
    """gateway(upstreams, routes, listener=None, env=None, **top) writes a
    config (see make_config), starts portcullis, waits for /healthz and
    returns a Gateway. gateway.start_config(cfg, env=None) starts one from
    a whole dict. env: variables merged over os.environ minus its AWS_*
    ones (see gateway_env); None inherits os.environ as it is.
    Teardown: SIGTERM, 15 s, then SIGKILL and the test fails; a sanitizer
    report in the error log fails it too."""
    started = []

    def start_config(config, env=None):
        g = Gateway(tmp_path / ("gw%d" % len(started)), config, env)
        started.append(g)
        return g

    def start(upstreams, routes, listener=None, env=None, **top):
        return start_config(make_config(free_port(), free_port(), upstreams,
                                        routes, listener, **top), env)

    start.start_config = start_config
    start.free_port = free_port
    yield start
    problems = []
    for g in started:
        if g.proc.alive():
            rc, killed = g.stop(15.0)
            if killed:
                problems.append("portcullis pid %d did not exit within 15s "
                                "of SIGTERM and was killed\n%s"
                                % (g.pid, g.diagnostics()))
        rc = g.proc.popen.returncode
        if rc not in (0, None) and not getattr(g, "expect_failure", False):
            problems.append("portcullis pid %d exited with status %d\n%s"
                            % (g.pid, rc, tail(g.error_log_path, 3000)))
        err = g.error_log()
        for mark in SANITIZER_MARKS:
            if mark in err:
                problems.append("sanitizer report in portcullis's error "
                                "log:\n%s" % tail(g.error_log_path, 6000))
                break
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# ------------------------------------------------------------------ TLS


class Certs:
    """Certificates made at run time under one directory (never
    committed): a small CA and server pairs it signed, cached by what they
    hold. A test that rewrites a pair copies it first."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.ca_crt, self.ca_key = gwtest.make_ca(self.dir)
        self._made = {}

    def pair(self, cn, key_type="ecdsa", sans=None, subject=None):
        """(cert path, key path) for CN=cn (or the whole `subject`, e.g.
        "/O=Org/CN=cn"), SANs `sans` (default [cn]), signed by the CA."""
        subject = subject or "/CN=" + cn
        sans = list(sans or [cn])
        k = (subject, tuple(sans), key_type)
        if k not in self._made:
            stem = "c%d-%s-%s" % (len(self._made), cn, key_type)
            self._made[k] = gwtest.make_cert(self.dir, stem, subject, sans,
                                             key_type, (self.ca_crt,
                                                        self.ca_key))
        return self._made[k]


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


def tls_entry(pair, **self_signed):
    """A tls.certificates entry for (cert, key); self_signed=... adds that
    block."""
    e = {"cert": str(pair[0]), "key": str(pair[1])}
    if self_signed:
        e["self_signed"] = self_signed
    return e


@pytest.fixture
def tls_gateway(gateway, nginx):
    """tls_gateway(certs, tls=None, listener=None, redirect=None, **top)
    starts portcullis with one TLS listener (the first; route /static/ to
    nginx, prefix stripped) whose tls block is {"certificates": certs} plus
    `tls`; with redirect (a dict), a second, plain listener made of it and
    {"listen": ...}. The Gateway gets .nginx, .tls_port and .plain_port."""

    def start(certs, tls=None, listener=None, redirect=None, **top):
        lst = {"tls": True}
        lst.update(listener or {})
        cfg = make_config(free_port(), free_port(),
                          {"static": upstream(nginx.port, keepalive=8)},
                          [{"name": "static", "path": "/static/",
                            "upstream": "static", "strip_prefix": True}],
                          lst, **top)
        block = {"certificates": [c if isinstance(c, dict) else tls_entry(c)
                                  for c in certs]}
        block.update(tls or {})
        cfg["tls"] = block
        plain_port = None
        if redirect is not None:
            plain_port = free_port()
            red = {"listen": "127.0.0.1:%d" % plain_port}
            red.update(redirect)
            cfg["listeners"].append(red)
        g = gateway.start_config(cfg)
        g.nginx = nginx
        g.tls_port = g.port
        g.plain_port = plain_port
        return g

    return start


# ------------------------------------------------------------ fake AWS


class FakeAws:
    """tests/tools/fake_aws.py with a state of the test's (see its
    docstring): IMDSv2, ECS credentials, Secrets Manager and Cost Explorer
    on .port, every signature checked with botocore. .url is the endpoint
    for all of them, .control(method, path, body) calls its unsigned
    /_fake/ API and returns (status, parsed JSON), .log() lists its JSON
    log lines."""

    def __init__(self, workdir, state):
        self.workdir = Path(workdir)
        self.state_path = self.workdir / "fake_aws_state.json"
        self.state_path.write_text(json.dumps(state))
        self.log_path = self.workdir / "fake_aws.log"
        self.proc = Proc("fake_aws", [
            PYTHON, str(TOOLS / "fake_aws.py"), "--state",
            str(self.state_path), "--log", str(self.log_path)], self.workdir)
        self.pid = self.proc.pid

        def listening():
            if not self.proc.alive():
                pytest.fail("fake_aws exited\n" + self.proc.diagnostics(),
                            pytrace=False)
            text = self.proc.stdout_path.read_text()
            return text.startswith("LISTENING ") and "\n" in text and text
        text = gwtest.wait_until(listening, 10, what="fake_aws to listen")
        self.port = int(text.split()[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def log(self):
        return gwtest.read_json_lines(self.log_path) \
            if self.log_path.exists() else []

    def control(self, method, path, body=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        st, _, data = gwtest.request(self.port, method, "/_fake/" + path,
                                     body=body)
        return st, json.loads(data)

    def _ok(self, method, path, body=None):
        st, out = self.control(method, path, body)
        assert st == 200, "fake_aws %s /_fake/%s: %d %r" % (method, path,
                                                            st, out)
        return out

    def state(self):
        return self._ok("GET", "state")

    def put_secret(self, name, value):
        from urllib.parse import quote
        return self._ok("PUT", "secrets/" + quote(name), value)["VersionId"]

    def delete_secret(self, name):
        from urllib.parse import quote
        return self._ok("DELETE", "secrets/" + quote(name))

    def fault(self, target, mode, count=1, delay=None):
        f = {"target": target, "mode": mode, "count": count}
        if delay is not None:
            f["delay"] = delay
        return self._ok("POST", "faults", f)

    def clear_faults(self):
        return self._ok("DELETE", "faults")

    def expire_credentials(self):
        return self._ok("POST", "credentials/expire")

    def skew(self, seconds):
        return self._ok("POST", "clock", {"skew": seconds})

    def stop(self):
        return self.proc.stop()


@pytest.fixture
def fake_aws(tmp_path):
    """fake_aws(state=None) starts tests/tools/fake_aws.py with that state
    (a dict, format in its docstring) and returns a FakeAws; each one is
    stopped by its PID at teardown, and the test fails if it did not exit
    0 on SIGTERM or wrote anything to stderr (a handler's traceback)."""
    started = []

    def start(state=None):
        d = tmp_path / ("fake_aws%d" % len(started))
        d.mkdir()
        f = FakeAws(d, state or {})
        started.append(f)
        return f

    yield start
    problems = []
    for f in started:
        rc, killed = f.stop()
        err = f.proc.stderr_path.read_text(errors="replace")
        if killed or rc != 0 or err:
            problems.append("fake_aws pid %d: exit status %s%s\n%s"
                            % (f.pid, rc, " (killed)" if killed else "",
                               f.proc.diagnostics()))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# ------------------------------------------------------- cost exporter


def cost_exporter_binary():
    """The cost exporter binary; FAILS the calling test if it is not
    built."""
    if not (COST_EXPORTER_BIN.is_file()
            and os.access(COST_EXPORTER_BIN, os.X_OK)):
        pytest.fail("portcullis-cost-exporter not found at %s; build it "
                    "with `make build`" % COST_EXPORTER_BIN, pytrace=False)
    return str(COST_EXPORTER_BIN)


class CostExporter:
    """A running portcullis-cost-exporter listening on 127.0.0.1:.port;
    metrics() scrapes it, error_log() is its stderr."""

    def __init__(self, workdir, args, env):
        self.tmp = Path(workdir)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = Proc("cost-exporter", [
            cost_exporter_binary(), "--listen", "127.0.0.1:%d" % self.port,
            *args], self.tmp, env=gateway_env(env))
        self.pid = self.proc.pid
        self.error_log_path = self.proc.stderr_path
        wait_http(self.proc, self.port, "/health", timeout=10,
                  want_body=b"ok")

    def metrics_text(self):
        st, _, body = gwtest.get(self.port, "/metrics")
        assert st == 200, "GET /metrics: %d" % st
        return body.decode()

    def metrics(self):
        return gwtest.parse_metrics(self.metrics_text())

    def error_log(self):
        return self.error_log_path.read_text(errors="replace")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, timeout=15.0):
        return self.proc.stop(timeout)


@pytest.fixture
def cost_exporter(tmp_path):
    """cost_exporter(*args, env=None) starts portcullis-cost-exporter
    (binary: $PORTCULLIS_COST_EXPORTER_BIN, else build/bin/) on a free
    loopback port with the extra command-line args, waits for /health and
    returns a CostExporter. env as for the gateway fixture (see
    gateway_env). Teardown: SIGTERM; the test fails unless it exited 0
    within 15 s with no sanitizer report on stderr."""
    started = []

    def start(*args, env=None):
        c = CostExporter(tmp_path / ("cost%d" % len(started)), list(args),
                         env)
        started.append(c)
        return c

    yield start
    problems = []
    for c in started:
        rc, killed = c.stop()
        err = c.error_log()
        if killed or rc != 0:
            problems.append("cost exporter pid %d: exit status %s%s\n%s"
                            % (c.pid, rc, " (killed)" if killed else "",
                               c.proc.diagnostics()))
        if any(mark in err for mark in SANITIZER_MARKS):
            problems.append("sanitizer report from the cost exporter:\n"
                            + tail(c.error_log_path, 6000))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
