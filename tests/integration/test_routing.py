"""Routing: prefix routes to real Prometheus and Alertmanager (served under
/prometheus/ and /alertmanager/ by --web.external-url) and to nginx;
longest prefix wins, strip_prefix, 301 to the slash, 404 without a route;
the headers the upstream receives, as nginx logged them."""

import hashlib
import json
import re

import pytest

import gwtest
from conftest import SMALL_TXT, upstream

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@pytest.fixture
def gw(gateway, prometheus, alertmanager, nginx):
    g = gateway(
        {"prometheus": upstream(prometheus.port, keepalive=8,
                                connect_timeout="2s", read_timeout="3s"),
         "alertmanager": upstream(alertmanager.port),
         "static": upstream(nginx.port)},
        [{"name": "prometheus", "path": "/prometheus/",
          "upstream": "prometheus"},
         {"name": "alertmanager", "path": "/alertmanager/",
          "upstream": "alertmanager"},
         {"name": "static", "path": "/static/", "upstream": "static",
          "strip_prefix": True, "max_body_size": "1k"},
         # longer prefix listed after the shorter one: length decides
         {"name": "keep", "path": "/static/keep/", "upstream": "static"}])
    g.nginx = nginx
    return g


def test_prometheus_query(gw):
    st, h, body = gwtest.get(gw.port,
                             "/prometheus/api/v1/query?query=vector(42)")
    assert st == 200, body
    assert h["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["status"] == "success"
    assert doc["data"]["resultType"] == "vector"
    assert doc["data"]["result"][0]["value"][1] == "42"

    # real data: Prometheus scrapes itself every second
    def up_series():
        st, _, body = gwtest.get(gw.port, "/prometheus/api/v1/query?query=up%7Bjob%3D%22prometheus%22%7D")
        assert st == 200, body
        doc = json.loads(body)
        assert doc["status"] == "success"
        return doc["data"]["result"]
    result = gwtest.wait_until(up_series, 10, 0.25, "up{job=prometheus}")
    assert result[0]["metric"]["job"] == "prometheus"
    assert result[0]["value"][1] == "1"

    st, _, body = gwtest.get(gw.port, "/prometheus/-/ready")
    assert st == 200, body


def test_alertmanager_status(gw):
    st, h, body = gwtest.get(gw.port, "/alertmanager/api/v2/status")
    assert st == 200, body
    assert h["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["cluster"]["status"] == "disabled"
    assert "blackhole" in doc["config"]["original"]
    st, _, _ = gwtest.get(gw.port, "/alertmanager/-/ready")
    assert st == 200


@pytest.mark.parametrize("prefix", ["/prometheus", "/alertmanager",
                                    "/static"])
def test_prefix_without_slash_redirects(gw, prefix):
    before = gw.nginx.count()
    r = gwtest.raw_exchange(
        gw.port, b"GET %s HTTP/1.1\r\nHost: gw.test\r\n\r\n" % prefix.encode())
    assert r.status == 301, r
    assert r.header("location") == prefix + "/"
    marker = "/small.txt?marker=" + prefix[1:]
    st, _, _ = gwtest.get(gw.port, "/static" + marker)
    assert st == 200
    gw.nginx.wait_for_uri(marker)
    assert gw.nginx.count() == before + 1


@pytest.mark.parametrize("path", ["/", "/nothing", "/prometheusx/api",
                                  "/Static/small.txt", "/stati"])
def test_no_route_is_404(gw, path):
    before = gw.nginx.count()
    r = gwtest.raw_exchange(
        gw.port, b"GET %s HTTP/1.1\r\nHost: gw.test\r\n\r\n" % path.encode())
    assert r.status == 404, r
    # the gateway answered itself: a marker request shows nginx got
    # nothing in between
    st, _, _ = gwtest.get(gw.port, "/static/small.txt?marker=404")
    assert st == 200
    gw.nginx.wait_for_uri("/small.txt?marker=404")
    assert gw.nginx.count() == before + 1


def test_strip_prefix_and_longest_prefix(gw):
    st, _, body = gwtest.get(gw.port, "/static/small.txt")
    assert st == 200
    assert body == SMALL_TXT
    e = gw.nginx.wait_for_uri("/small.txt")
    assert e["request"] == "GET /small.txt HTTP/1.1"

    # the query string passes untouched, percent-encoding included
    st, _, body = gwtest.get(gw.port, "/static/small.txt?a=1&b=%2F%20x")
    assert st == 200 and body == SMALL_TXT
    gw.nginx.wait_for_uri("/small.txt?a=1&b=%2F%20x")

    # /static/keep/ is longer than /static/ and keeps its prefix
    st, _, _ = gwtest.get(gw.port, "/static/keep/small.txt")
    assert st == 404  # nginx's answer: it has no /static/keep/small.txt
    e = gw.nginx.wait_for_uri("/static/keep/small.txt")
    assert e["request"] == "GET /static/keep/small.txt HTTP/1.1"
    assert e["status"] == "404"

    # the prefix itself strips to "/"
    gwtest.get(gw.port, "/static/")
    gw.nginx.wait_for_uri("/")

    uris = [e["request_uri"] for e in gw.nginx.access_log()]
    assert uris == ["/small.txt", "/small.txt?a=1&b=%2F%20x",
                    "/static/keep/small.txt", "/"]


def test_forwarded_headers(gw):
    st, _, body = gwtest.get(gw.port, "/static/small.txt?fwd=1",
                             headers={"Host": "example.test:8443",
                                      "Origin": "https://grafana.example.test"})
    assert st == 200 and body == SMALL_TXT
    e = gw.nginx.wait_for_uri("/small.txt?fwd=1")
    assert e["x_forwarded_for"] == "127.0.0.1"
    assert e["x_real_ip"] == "127.0.0.1"
    assert e["x_forwarded_proto"] == "http"
    assert e["x_forwarded_host"] == "example.test:8443"
    assert e["host"] == "example.test:8443"  # Host kept
    assert e["origin"] == "https://grafana.example.test"  # Origin kept


def test_forwarded_headers_not_spoofable(gw):
    st, _, _ = gwtest.get(gw.port, "/static/small.txt?spoof=1",
                          headers={"Host": "real.test",
                                   "X-Real-IP": "203.0.113.9",
                                   "X-Forwarded-Proto": "https",
                                   "X-Forwarded-Host": "evil.test",
                                   "X-Forwarded-For": "203.0.113.7"})
    assert st == 200
    e = gw.nginx.wait_for_uri("/small.txt?spoof=1")
    assert e["x_real_ip"] == "127.0.0.1"
    assert e["x_forwarded_proto"] == "http"
    assert e["x_forwarded_host"] == "real.test"
    # appending (nginx's $proxy_add_x_forwarded_for) or replacing are both
    # fine; the last hop must be the real client
    assert e["x_forwarded_for"].split(",")[-1].strip() == "127.0.0.1"


def test_hop_by_hop_headers_removed(gw):
    r = gwtest.raw_exchange(gw.port, (
        b"GET /static/small.txt?hop=1 HTTP/1.1\r\n"
        b"Host: hop.test\r\n"
        b"Connection: keep-alive, X-Hop\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"TE: trailers\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"Upgrade: foo/1.0\r\n"
        b"X-Hop: must-not-pass\r\n"
        b"X-End-To-End: must-pass\r\n"
        b"\r\n"))
    assert r.status == 200 and r.body == SMALL_TXT
    e = gw.nginx.wait_for_uri("/small.txt?hop=1")
    assert e["x_end_to_end"] == "must-pass"
    assert e["keep_alive"] == ""
    assert e["te"] == ""
    assert e["proxy_connection"] == ""
    assert e["upgrade"] == ""
    assert e["x_hop"] == ""
    conn = e["http_connection"].lower()
    assert "x-hop" not in conn and "upgrade" not in conn, conn


def test_request_id_kept(gw):
    for rid in ["Abc.123_-xyz", "x" * 128]:
        uri = "/small.txt?rid=%d" % len(rid)
        st, _, _ = gwtest.get(gw.port, "/static" + uri,
                              headers={"X-Request-Id": rid})
        assert st == 200
        assert gw.nginx.wait_for_uri(uri)["x_request_id"] == rid
        entry = gwtest.wait_until(
            lambda: [a for a in gw.access_log() if a.get("path") == "/static" + uri],
            5, what="access log entry for %s" % uri)[0]
        assert entry["request_id"] == rid


@pytest.mark.parametrize("sent", [None, "has space", "x" * 129, "a/b",
                                  "semi;colon", ""])
def test_request_id_generated_when_missing_or_invalid(gw, sent):
    ids = []
    for i in range(2):
        uri = "/small.txt?gen=%d" % i
        headers = {} if sent is None else {"X-Request-Id": sent}
        st, _, _ = gwtest.get(gw.port, "/static" + uri, headers=headers)
        assert st == 200
        rid = gw.nginx.wait_for_uri(uri)["x_request_id"]
        assert REQUEST_ID.match(rid), "generated id %r" % rid
        assert rid != sent
        ids.append(rid)
    assert ids[0] != ids[1], "two requests got the same generated id"


def test_access_log_entry(gw):
    rid = "access-log-1"
    st, _, body = gwtest.get(gw.port, "/static/64k.bin?al=1",
                             headers={"X-Request-Id": rid})
    assert st == 200 and len(body) == 65536
    entries = gwtest.wait_until(
        lambda: [a for a in gw.access_log() if a.get("request_id") == rid],
        5, what="the access log entry")
    assert len(entries) == 1
    a = entries[0]
    for key in ["time", "request_id", "client", "method", "path", "status",
                "bytes_in", "bytes_out", "duration", "upstream_duration",
                "route"]:
        assert key in a, "access log entry lacks %r: %r" % (key, a)
    assert a["method"] == "GET"
    assert a["path"] in ("/static/64k.bin?al=1", "/static/64k.bin")
    assert int(a["status"]) == 200
    assert a["route"] == "static"
    assert "127.0.0.1" in str(a["client"])
    assert 65536 <= int(a["bytes_out"]) < 65536 + 2048
    assert float(a["duration"]) >= 0

    # the gateway's own 404 is logged too
    gwtest.get(gw.port, "/nothing-here", headers={"X-Request-Id": "al-404"})
    e404 = gwtest.wait_until(
        lambda: [a for a in gw.access_log() if a.get("request_id") == "al-404"],
        5, what="the 404's access log entry")[0]
    assert int(e404["status"]) == 404
    assert e404["path"] == "/nothing-here"


def test_head_and_304_keep_framing(gw, docroot):
    with gwtest.RawConn(gw.port) as c:
        c.send(b"GET /static/small.txt HTTP/1.1\r\nHost: f.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == SMALL_TXT
        etag = r.header("etag")
        assert etag

        c.send(b"HEAD /static/64k.bin HTTP/1.1\r\nHost: f.test\r\n\r\n")
        r = c.read_response("HEAD")
        assert r.status == 200
        assert r.header("content-length") == "65536"

        c.send(b"GET /static/small.txt HTTP/1.1\r\nHost: f.test\r\n"
               b"If-None-Match: " + etag.encode() + b"\r\n\r\n")
        r = c.read_response()
        assert r.status == 304

        # had the gateway sent a body after HEAD or 304, it would show here
        c.send(b"GET /static/64k.bin HTTP/1.1\r\nHost: f.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert hashlib.sha256(r.body).hexdigest() == docroot.sha256["64k.bin"]
        c.sock.settimeout(0.3)
        try:
            extra = c.sock.recv(100)
        except OSError:
            extra = b""
        assert extra == b"" and c.buf == b""
