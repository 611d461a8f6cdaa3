"""The admin listener: /metrics in plain text or gzip as asked, /healthz,
/readyz with its reasons, and nothing else."""
import gzip
import signal
import time

import gwtest
from conftest import SMALL_TXT, upstream


def start(gateway, nginx, **top):
    return gateway({"static": upstream(nginx.port)},
                   [{"name": "static", "path": "/static/",
                     "upstream": "static", "strip_prefix": True}], **top)


def test_metrics_gzip_when_asked(gateway, nginx):
    gw = start(gateway, nginx)
    assert gwtest.get(gw.port, "/static/small.txt")[2] == SMALL_TXT
    st, h, plain = gwtest.get(gw.admin_port, "/metrics")
    assert st == 200 and "content-encoding" not in h
    assert h["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert h["vary"] == "Accept-Encoding"

    st, h, body = gwtest.get(gw.admin_port, "/metrics",
                             headers={"Accept-Encoding": "deflate, gzip"})
    assert st == 200 and h["content-encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert len(body) < len(plain)  # compressed, and decodes below
    samples = gwtest.parse_metrics(text)
    assert gwtest.metric(samples, "portcullis_http_requests_total",
                         route="static", method="GET", code="200") == 1

    # q=0 refuses gzip; identity only
    st, h, body = gwtest.get(gw.admin_port, "/metrics",
                             headers={"Accept-Encoding": "gzip;q=0, br"})
    assert st == 200 and "content-encoding" not in h
    assert body.startswith(b"# HELP ")


def test_health_and_readiness(gateway, nginx, stub_factory):
    slow = stub_factory("slow", delay=2)
    gw = gateway({"slow": upstream(slow.port)},
                 [{"name": "slow", "path": "/slow/", "upstream": "slow"}])
    assert gwtest.get(gw.admin_port, "/healthz")[::2] == (200, b"ok\n")
    assert gwtest.get(gw.admin_port, "/readyz")[::2] == (200, b"ready\n")
    assert gwtest.get(gw.admin_port, "/nope")[0] == 404

    # draining: alive, not ready, and says why
    with gwtest.RawConn(gw.port) as c:
        c.send(b"GET /slow/x HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        gw.proc.popen.send_signal(signal.SIGTERM)
        st, _, body = gwtest.wait_until(
            lambda: (lambda r: r if r[0] == 503 else None)(
                gwtest.get(gw.admin_port, "/readyz")), 2, 0.05,
            "/readyz to turn 503 while draining")
        assert body == (b"not ready: draining: SIGTERM received, finishing "
                        b"in-flight requests\n")
        assert gwtest.get(gw.admin_port, "/healthz")[0] == 200
        assert c.read_response().status == 200
    assert gw.proc.popen.wait(10) == 0
