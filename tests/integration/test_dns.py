"""Upstream names resolve asynchronously, through a real DNS server:
Debian's dnsmasq on loopback, named in the config's "resolvers". The gateway
starts while a name does not resolve, answers 502 for that route meanwhile,
serves once the name resolves, and follows a change of address (idle pooled
connections to the old address are dropped)."""
import signal
import time

import pytest

import gwtest
from conftest import PYTHON, SMALL_TXT, Proc, free_port

DNSMASQ = "/usr/sbin/dnsmasq"


class Dnsmasq:
    """dnsmasq answering for *.test from a hosts file, on 127.0.0.1:port
    (UDP), with 1 s TTLs; nothing is forwarded anywhere."""

    def __init__(self, workdir):
        self.port = free_port()
        self.hosts = workdir / "hosts"
        self.hosts.write_text("")
        self.proc = Proc("dnsmasq", [
            DNSMASQ, "--keep-in-foreground", "--log-facility=-",
            "--conf-file=/dev/null", "--pid-file=", "--user=root",
            "--port=%d" % self.port, "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--local=/test/", "--addn-hosts=%s" % self.hosts,
            "--local-ttl=1", "--log-queries"], workdir)
        gwtest.wait_until(
            lambda: b"started" in self.proc.stderr_path.read_bytes(), 10,
            0.05, "dnsmasq to start")

    def set(self, line):
        """Replaces the hosts file and makes dnsmasq re-read it."""
        self.hosts.write_text(line + "\n")
        self.proc.popen.send_signal(signal.SIGHUP)

    def stop(self):
        self.proc.stop()


@pytest.fixture
def dnsmasq(tmp_path):
    d = tmp_path / "dns"
    d.mkdir()
    server = Dnsmasq(d)
    yield server
    server.stop()


def get_small(gw):
    try:
        return gwtest.get(gw.port, "/app/small.txt", timeout=5)
    except OSError as e:
        return (None, None, repr(e))


def test_name_resolves_late_then_moves(gateway, dnsmasq, nginx, tmp_path):
    gw = gateway({"app": {"servers": ["app.test:%d" % nginx.port],
                          "resolve_interval": "1s", "keepalive": 4}},
                 [{"name": "app", "path": "/app/", "upstream": "app",
                   "strip_prefix": True}],
                 resolvers=["127.0.0.1:%d" % dnsmasq.port])

    # started although the name does not resolve; its route answers 502
    st, _, _ = get_small(gw)
    assert st == 502
    gwtest.wait_until(lambda: 'cannot resolve "app.test"' in gw.error_log(),
                      3, 0.05, "the resolution failure in the error log")
    assert gwtest.metric(gw.metrics(), "portcullis_upstream_errors_total",
                         route="app", reason="dns") >= 1
    # and /readyz says which upstream has no address
    st, _, body = gwtest.get(gw.admin_port, "/readyz")
    assert st == 503 and b'upstream "app": no server name has resolved ' \
        b'yet (DNS)' in body, (st, body)

    # the name appears: served within a few resolve intervals
    dnsmasq.set("127.0.0.1 app.test")
    st, _, body = gwtest.wait_until(
        lambda: (lambda r: r if r[0] == 200 else None)(get_small(gw)), 8,
        0.2, "app.test to resolve and serve")
    assert body == SMALL_TXT
    assert gwtest.get(gw.admin_port, "/readyz")[0] == 200
    # evdns randomises the case of its queries (the 0x20 anti-spoofing bit)
    assert "query[a] app.test" in \
        dnsmasq.proc.stderr_path.read_text().lower()

    # the name moves to 127.0.0.2, where another server answers: the
    # gateway follows, although its pool holds a connection to the old one
    www = tmp_path / "www2"
    www.mkdir()
    (www / "small.txt").write_bytes(b"second server\n")
    second = Proc("http2", [PYTHON, "-m", "http.server", str(nginx.port),
                            "--bind", "127.0.0.2", "-d", str(www)], tmp_path)
    try:
        gwtest.wait_until(
            lambda: b"Serving" in second.stdout_path.read_bytes()
            or b"Serving" in second.stderr_path.read_bytes(), 10, 0.05,
            "the second server to listen")
        dnsmasq.set("127.0.0.2 app.test")
        st, _, body = gwtest.wait_until(
            lambda: (lambda r: r if r[2] == b"second server\n" else None)(
                get_small(gw)), 8, 0.2, "the gateway to follow the move")
        assert st == 200
        gwtest.wait_until(
            lambda: gw.error_log().count("resolved to 1 address(es)") >= 2,
            3, 0.05, "both resolutions in the error log")
    finally:
        second.stop()
