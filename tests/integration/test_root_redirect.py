"""A listener's `root_redirect`: GET and HEAD of "/" answer 302 to it, so
a person who types the gateway's address lands somewhere useful instead of
a bare 404. Only "/" itself, only GET and HEAD; everything else is routed
as before. Responses are read with h11, a parser that is not ours."""

import json
import socket
import subprocess

import h11
import pytest

from conftest import make_config, portcullis_binary, upstream

import gwtest


def h11_exchange(port, method, target, body=b"", headers=()):
    """One request; returns (h11.Response, body bytes), parsed by h11."""
    client = h11.Connection(h11.CLIENT)
    headers = [("Host", "gw.test"), ("Connection", "close")] + list(headers)
    if body:
        headers.append(("Content-Length", str(len(body))))
    data = client.send(h11.Request(method=method, target=target,
                                   headers=headers))
    if body:
        data += client.send(h11.Data(data=body))
    data += client.send(h11.EndOfMessage())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        resp, out = None, b""
        while True:
            ev = client.next_event()
            if ev is h11.NEED_DATA:
                client.receive_data(s.recv(65536))
                continue
            if isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                out += ev.data
            elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                return resp, out


def field(resp, name):
    vals = [v.decode() for n, v in resp.headers if n == name.encode()]
    assert len(vals) <= 1, resp.headers
    return vals[0] if vals else None


@pytest.fixture
def gw(gateway, nginx):
    return gateway({"web": upstream(nginx.port)},
                   [{"name": "web", "path": "/web/", "upstream": "web",
                     "strip_prefix": True}],
                   listener={"root_redirect": "/grafana/"})


def test_get_and_head_of_root_redirect(gw, nginx):
    for method, target in [("GET", "/"), ("HEAD", "/"), ("GET", "/?a=1")]:
        resp, body = h11_exchange(gw.port, method, target)
        assert resp.status_code == 302, (method, target, resp)
        assert field(resp, "location") == "/grafana/"
        if method == "HEAD":
            assert body == b""
    # the access log's lines are written when the answers are: once they
    # are in, nginx would have logged a request that had reached it
    log = gwtest.wait_until(lambda: (lambda l: l if len(l) >= 3 else None)(
        gw.access_log()), 10, what="three access log lines")
    # two workers: lines of separate connections come in either order
    assert sorted((e["path"], e["status"], e["route"] or "") for e in log) \
        == [("/", 302, ""), ("/", 302, ""), ("/?a=1", 302, "")]
    assert nginx.count() == 0, "the redirect reached the upstream"


def test_other_requests_are_routed_as_before(gw, nginx):
    resp, _ = h11_exchange(gw.port, "POST", "/", body=b"x=1")
    assert resp.status_code == 404 and field(resp, "location") is None
    resp, _ = h11_exchange(gw.port, "GET", "/other")
    assert resp.status_code == 404
    resp, _ = h11_exchange(gw.port, "GET", "/web/nothing-here")
    assert resp.status_code == 404 and "nginx" in \
        (field(resp, "server") or ""), resp.headers
    nginx.wait_for_uri("/nothing-here")
    assert nginx.count() == 1


def test_without_it_root_is_routed(gateway, nginx):
    g = gateway({"web": upstream(nginx.port)},
                [{"name": "web", "path": "/", "upstream": "web"}])
    resp, _ = h11_exchange(g.port, "GET", "/")
    assert resp.status_code != 302 and field(resp, "location") is None
    nginx.wait_for_uri("/")


@pytest.mark.parametrize("value,why", [
    ("grafana/", "must be a path on this host"),
    ("//evil.example/", "must be a path on this host"),
    ("/", "\"/\" would send \"/\" to itself"),
    ("/a b", "must be 1 to 1024 visible ASCII"),
    ("", "must be 1 to 1024 visible ASCII"),
    ("ftp://x/", "must be a path on this host"),
    (5, "must be a string"),
])
def test_bad_values_are_named(tmp_path, value, why):
    cfg = make_config(1, 2, {"u": upstream(3)},
                      [{"name": "u", "path": "/", "upstream": "u"}],
                      listener={"root_redirect": value})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "listeners[0].root_redirect: " + why in p.stderr, p.stderr


def test_absolute_url_and_redirect_https_listener(tmp_path):
    cfg = make_config(1, 2, {"u": upstream(3)},
                      [{"name": "u", "path": "/", "upstream": "u"}],
                      listener={"root_redirect":
                                "https://grafana.example/d/slo"})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    cfg["listeners"][0] = {"listen": "127.0.0.1:1", "redirect_https": True,
                           "root_redirect": "/grafana/"}
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "listeners[0].root_redirect: a redirect_https listener" \
        in p.stderr, p.stderr
