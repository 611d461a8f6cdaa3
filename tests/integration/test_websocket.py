"""WebSocket: "Upgrade: websocket" reaches the upstream with its handshake
headers, Host and Origin intact; after 101 the connection is a tunnel that
echoes byte-exact. "Upgrade: h2c" is never forwarded: the request goes on
as plain HTTP/1.1."""

import os

import pytest
import websocket

import gwtest
from conftest import SMALL_TXT, upstream

H2C = (b"Connection: Upgrade, HTTP2-Settings\r\n"
       b"Upgrade: h2c\r\n"
       b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")


@pytest.fixture
def setup(gateway, stub_factory, nginx):
    ws = stub_factory("ws")
    gw = gateway({"ws": upstream(ws.port, read_timeout="5s"),
                  "static": upstream(nginx.port)},
                 [{"name": "live", "path": "/ws/", "upstream": "ws"},
                  {"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}])
    return gw, ws, nginx


def test_websocket_echo(setup):
    gw, ws, _ = setup
    conn = websocket.create_connection(
        "ws://127.0.0.1:%d/ws/echo?x=1" % gw.port, timeout=5,
        host="grafana.example.test", origin="https://grafana.example.test",
        header=["X-Request-Id: ws-echo-1"])
    try:
        assert conn.getstatus() == 101
        conn.send("hello")
        assert conn.recv() == "hello"
        big = os.urandom(200 * 1024)
        conn.send_binary(big)
        assert conn.recv() == big
        for i in range(100):
            conn.send("msg %d" % i)
        assert [conn.recv() for _ in range(100)] == \
            ["msg %d" % i for i in range(100)]
        conn.ping(b"are-you-there")
        op, frame = conn.recv_data_frame(control_frame=True)
        assert op == websocket.ABNF.OPCODE_PONG
        assert frame.data == b"are-you-there"
    finally:
        conn.close()

    heads = ws.log()
    assert len(heads) == 1
    e = heads[0]
    assert e["request_line"] == "GET /ws/echo?x=1 HTTP/1.1"
    assert (ws.header(e, "upgrade") or "").lower() == "websocket"
    assert "upgrade" in (ws.header(e, "connection") or "").lower()
    assert ws.header(e, "host") == "grafana.example.test"
    assert ws.header(e, "origin") == "https://grafana.example.test"
    assert ws.header(e, "sec-websocket-version") == "13"
    assert ws.header(e, "sec-websocket-key")
    assert ws.header(e, "x-request-id") == "ws-echo-1"
    assert ws.header(e, "x-forwarded-for") == "127.0.0.1"


def test_websocket_tunnel_raw_bytes(setup):
    """Frames split at odd places, several in one segment: the tunnel
    forwards bytes, it does not parse frames."""
    gw, ws, _ = setup
    with gwtest.RawConn(gw.port) as c:
        c.send(b"GET /ws/raw HTTP/1.1\r\nHost: raw.test\r\n"
               b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_response()
        assert r.status == 101
        assert r.header("sec-websocket-accept") == \
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3's example
        mask = b"\x11\x22\x33\x44"

        def frame(payload):
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            return bytes([0x81, 0x80 | len(payload)]) + mask + masked

        frames = frame(b"one") + frame(b"two") + frame(b"three")
        for i in range(len(frames)):  # one byte per write
            c.send(frames[i:i + 1])
        want = b"\x81\x03one\x81\x03two\x81\x05three"
        while len(c.buf) < len(want):
            c._fill()
        assert c.buf == want
        c.buf = b""
        c.send(bytes([0x88, 0x82]) + mask
               + bytes(b ^ mask[i] for i, b in enumerate(b"\x03\xe8")))
        while len(c.buf) < 4:
            c._fill()
        assert c.buf == b"\x88\x02\x03\xe8"
        assert c.is_closed(5), "tunnel still open after the upstream closed"


def test_websocket_access_log(setup):
    gw, _, _ = setup
    conn = websocket.create_connection("ws://127.0.0.1:%d/ws/logged" % gw.port,
                                       timeout=5,
                                       header=["X-Request-Id: ws-logged"])
    conn.send("x")
    assert conn.recv() == "x"
    conn.close()
    entry = gwtest.wait_until(
        lambda: [a for a in gw.access_log() if a.get("request_id") == "ws-logged"],
        5, what="the websocket's access log entry")[0]
    assert int(entry["status"]) == 101
    assert entry["route"] == "live"


def test_h2c_upgrade_not_forwarded_to_nginx(setup):
    gw, _, nginx = setup
    with gwtest.RawConn(gw.port) as c:
        c.send(b"GET /static/small.txt?h2c=1 HTTP/1.1\r\nHost: h2c.test\r\n"
               + H2C + b"\r\n")
        r = c.read_response()
        assert r.version == "HTTP/1.1"
        assert r.status == 200, r
        assert r.body == SMALL_TXT
        # still plain HTTP/1.1 on the same connection
        c.send(b"GET /static/small.txt?h2c=2 HTTP/1.1\r\nHost: h2c.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == SMALL_TXT
    e = nginx.wait_for_uri("/small.txt?h2c=1")
    assert e["request"] == "GET /small.txt?h2c=1 HTTP/1.1"
    assert e["upgrade"] == ""
    assert e["http2_settings"] == ""
    conn = e["http_connection"].lower()
    assert "upgrade" not in conn and "http2-settings" not in conn, conn


def test_h2c_upgrade_not_forwarded_to_ws_upstream(setup):
    """Same, seen by the stand-in, which logs every header it gets."""
    gw, ws, _ = setup
    r = gwtest.raw_exchange(gw.port, b"GET /ws/h2c HTTP/1.1\r\nHost: h.test\r\n"
                            + H2C + b"\r\n")
    assert r.status == 200, r
    assert r.body == b"not a websocket\n"
    e = ws.log()[-1]
    assert e["request_line"] == "GET /ws/h2c HTTP/1.1"
    names = [n.lower() for n, _ in e["headers"]]
    assert "upgrade" not in names and "http2-settings" not in names, names
    assert "upgrade" not in (ws.header(e, "connection") or "").lower()
