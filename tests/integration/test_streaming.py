"""Streaming: big bodies pass byte-exact in both directions, and with a slow
reader on the far side the gateway's memory stays flat (backpressure): it
does not buffer what the slow side has not taken yet."""

import hashlib
import json
import socket
import threading
import time
import urllib.parse

import gwtest
from conftest import upstream

MB = 1024 * 1024
RATE = 16 * MB           # bytes/s the slow side takes
MAX_GROWTH_KB = 24 * 1024  # a 50 MB transfer may not grow the RSS more


def test_download_50m_slow_reader(gateway, nginx, docroot):
    gw = gateway({"static": upstream(nginx.port)},
                 [{"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}])
    rss0 = gw.vm_kb("VmRSS")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", gw.port))
    sock.sendall(b"GET /static/50m.bin HTTP/1.1\r\nHost: s.test\r\n\r\n")

    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "closed before the response head"
        buf += data
    head, body_start = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"\r\ncontent-length: 52428800" in head.lower(), head

    h = hashlib.sha256(body_start)
    got = len(body_start)
    max_rss = rss0
    t0 = time.monotonic()
    while got < 50 * MB:
        data = sock.recv(min(65536, 50 * MB - got))
        assert data, "closed after %d of %d body bytes" % (got, 50 * MB)
        h.update(data)
        got += len(data)
        max_rss = max(max_rss, gw.vm_kb("VmRSS"))
        ahead = got / RATE - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    sock.close()
    hwm = gw.vm_kb("VmHWM")
    print("RSS before %d kB, max %d kB, HWM %d kB" % (rss0, max_rss, hwm))

    assert h.hexdigest() == docroot.sha256["50m.bin"]
    assert max_rss - rss0 < MAX_GROWTH_KB, (
        "VmRSS grew from %d kB to %d kB while a slow client read 50 MB"
        % (rss0, max_rss))
    assert hwm - rss0 < MAX_GROWTH_KB, (
        "VmHWM %d kB, VmRSS before the transfer %d kB" % (hwm, rss0))
    e = nginx.wait_for_uri("/50m.bin")
    assert e["status"] == "200" and e["body_bytes_sent"] == str(50 * MB)


def test_upload_50m_slow_upstream(gateway, stub_factory, docroot):
    sink = stub_factory("sink", read_rate=RATE)
    gw = gateway({"sink": upstream(sink.port, read_timeout="10s")},
                 [{"name": "sink", "path": "/up/", "upstream": "sink",
                   "max_body_size": "64m"}],
                 listener={"timeouts": {"header": "2s", "body": "10s",
                                        "keepalive": "10s"}})
    payload = docroot.read("50m.bin")
    rss0 = gw.vm_kb("VmRSS")
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    errors = []

    def send():
        try:
            sock.sendall(b"PUT /up/50m HTTP/1.1\r\nHost: s.test\r\n"
                         b"Content-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(payload))
            view = memoryview(payload)
            for i in range(0, len(payload), 256 * 1024):
                sock.sendall(view[i:i + 256 * 1024])
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=send)
    t.start()
    max_rss = rss0
    while t.is_alive():
        max_rss = max(max_rss, gw.vm_kb("VmRSS"))
        time.sleep(0.02)
    t.join()
    assert not errors, errors
    r = gwtest.RawConn.wrap(sock).read_response()
    sock.close()
    hwm = gw.vm_kb("VmHWM")
    print("RSS before %d kB, max %d kB, HWM %d kB" % (rss0, max_rss, hwm))

    assert r.status == 200, r
    assert json.loads(r.body) == {"length": len(payload),
                                  "sha256": docroot.sha256["50m.bin"]}
    assert max_rss - rss0 < MAX_GROWTH_KB, (
        "VmRSS grew from %d kB to %d kB while a slow upstream read 50 MB"
        % (rss0, max_rss))
    assert hwm - rss0 < MAX_GROWTH_KB, (
        "VmHWM %d kB, VmRSS before the transfer %d kB" % (hwm, rss0))


def test_chunked_upload_byte_exact(gateway, stub_factory, docroot):
    sink = stub_factory("sink")
    gw = gateway({"sink": upstream(sink.port)},
                 [{"name": "sink", "path": "/up/", "upstream": "sink",
                   "max_body_size": "4m"}])
    payload = docroot.read("1m.bin")
    sizes = [1, 2, 7, 4096, 65536, 100000, 3, 1 << 19]
    chunks, pos, i = [], 0, 0
    while pos < len(payload):
        n = sizes[i % len(sizes)]
        chunks.append(payload[pos:pos + n])
        pos += n
        i += 1
    body = b"".join(b"%x\r\n%s\r\n" % (len(ch), ch) for ch in chunks)
    body += b"0\r\n\r\n"
    with gwtest.RawConn(gw.port) as c:
        c.send(b"POST /up/chunked HTTP/1.1\r\nHost: s.test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        # odd segment boundaries: the framing must not depend on them
        for j in range(0, len(body), 9973):
            c.send(body[j:j + 9973])
        r = c.read_response()
    assert r.status == 200, r
    assert json.loads(r.body) == {"length": len(payload),
                                  "sha256": docroot.sha256["1m.bin"]}


def test_large_prometheus_response(gateway, prometheus):
    gw = gateway({"prometheus": upstream(prometheus.port, keepalive=8,
                                         read_timeout="10s")},
                 [{"name": "prometheus", "path": "/prometheus/",
                   "upstream": "prometheus"}])
    # 30 series x 11000 points, the most a range query returns: ~6 MB of
    # JSON that depends on nothing but the query
    expr = " or ".join('label_replace(vector(time()), "s", "%d", "", "")' % i
                       for i in range(30))
    path = ("/prometheus/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": expr, "start": "1000000", "end": "1010999", "step": "1"}))
    st, _, direct = gwtest.get(prometheus.port, path, timeout=30)
    assert st == 200, direct[:300]
    assert len(direct) > 5 * MB
    st, h, via = gwtest.get(gw.port, path, timeout=30)
    assert st == 200, via[:300]
    assert h["content-type"].startswith("application/json")
    assert hashlib.sha256(via).hexdigest() == hashlib.sha256(direct).hexdigest()
    doc = json.loads(via)
    assert doc["status"] == "success"
    assert len(doc["data"]["result"]) == 30
    assert all(len(s["values"]) == 11000 for s in doc["data"]["result"])


def test_client_that_stops_reading_is_closed(gateway, nginx):
    """A client takes 1 MB of a 50 MB response and then reads nothing: once
    nothing could be written for timeouts.body (2 s here), the gateway
    closes the connection, logs why, and frees the session (the connection
    gauge drops back to 0)."""
    gw = gateway({"static": upstream(nginx.port)},
                 [{"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}],
                 listener={"timeouts": {"header": "2s", "body": "2s",
                                        "keepalive": "10s"}})
    listen = gw.config["listeners"][0]["listen"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", gw.port))
    sock.sendall(b"GET /static/50m.bin HTTP/1.1\r\nHost: s.test\r\n\r\n")
    got = 0
    while got < MB:
        data = sock.recv(65536)
        assert data
        got += len(data)
    assert gwtest.metric(gw.metrics(), "portcullis_connections_active",
                         listener=listen) == 1

    time.sleep(4.5)  # read nothing: longer than timeouts.body, with margin
    gwtest.wait_until(
        lambda: gwtest.metric(gw.metrics(), "portcullis_connections_active",
                              listener=listen) == 0, 5, 0.1,
        "the stalled client's session to be freed")
    assert "stopped reading the response to GET /static/50m.bin" in \
        gw.error_log()
    # what was in flight arrives, then the close: far less than 50 MB
    while True:
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not data:
            break
        got += len(data)
    sock.close()
    assert got < 20 * MB, got
