"""The peers themselves, without the gateway: if one of these fails, the
other tests' failures say nothing about portcullis."""

import hashlib
import json
import socket
import time

import websocket

import gwtest


def test_nginx_serves_docroot_and_logs_headers(nginx, docroot):
    st, h, body = gwtest.get(nginx.port, "/64k.bin",
                             headers={"X-Request-Id": "fixture-1",
                                      "X-Forwarded-For": "10.1.2.3",
                                      "Origin": "http://o.example"})
    assert st == 200
    assert hashlib.sha256(body).hexdigest() == docroot.sha256["64k.bin"]
    e = nginx.wait_for_uri("/64k.bin")
    assert e["request"] == "GET /64k.bin HTTP/1.1"
    assert e["x_request_id"] == "fixture-1"
    assert e["x_forwarded_for"] == "10.1.2.3"
    assert e["origin"] == "http://o.example"
    assert e["x_real_ip"] == ""
    assert e["status"] == "200"
    st, _, _ = gwtest.get(nginx.port, "/nope")
    assert st == 404
    nginx.wait_for_uri("/nope")
    assert nginx.count() == 2  # the readiness probe is not logged


def test_prometheus_and_alertmanager_direct(prometheus, alertmanager):
    st, _, body = gwtest.get(prometheus.port,
                             "/prometheus/api/v1/query?query=vector(42)")
    assert st == 200
    doc = json.loads(body)
    assert doc["status"] == "success"
    assert doc["data"]["result"][0]["value"][1] == "42"
    st, _, body = gwtest.get(alertmanager.port, "/alertmanager/api/v2/status")
    assert st == 200
    assert json.loads(body)["cluster"]["status"] == "disabled"


def test_stub_modes(stub_factory):
    slow = stub_factory("slow", delay=0.3, body_size=1000)
    t0 = time.monotonic()
    st, _, body = gwtest.get(slow.port, "/x")
    assert st == 200 and len(body) == 1000 and body[:3] == b"\x00\x01\x02"
    assert time.monotonic() - t0 >= 0.3
    assert slow.log()[0]["request_line"] == "GET /x HTTP/1.1"

    silent = stub_factory("silent")
    with gwtest.RawConn(silent.port, timeout=0.5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            c.sock.recv(10)
            raise AssertionError("silent stub answered")
        except socket.timeout:
            pass

    reset = stub_factory("reset")
    with gwtest.RawConn(reset.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = c.sock.recv(10)
            assert data == b""
        except ConnectionResetError:
            pass

    sink = stub_factory("sink")
    payload = bytes(range(256)) * 100
    st, _, body = gwtest.request(sink.port, "POST", "/up", body=payload)
    assert st == 200
    assert json.loads(body) == {"length": len(payload),
                                "sha256": hashlib.sha256(payload).hexdigest()}

    ws = stub_factory("ws")
    conn = websocket.create_connection("ws://127.0.0.1:%d/ws" % ws.port,
                                       timeout=5)
    conn.send("hello")
    assert conn.recv() == "hello"
    conn.send_binary(b"\x00" * 70000)
    assert conn.recv() == b"\x00" * 70000
    conn.close()
