"""SIGTERM drains: the listener stops accepting at once, a request in flight
to a slow upstream completes with 200 and its whole body, idle keep-alive
connections are closed, and the process exits 0. drain_timeout bounds the
wait, and an exit that cut requests is status 3."""

import signal
import socket
import time

import gwtest
from conftest import SMALL_TXT, upstream

BODY = 256 * 1024


def connect_refused(port):
    """True if a connect to port is refused now (or accepted and dropped
    without an answer, which a closing SO_REUSEPORT socket can do)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
    except (ConnectionRefusedError, ConnectionResetError):
        return True  # reset: the SYN hit a listening socket being closed
    try:
        s.settimeout(0.3)
        s.sendall(b"GET /static/small.txt HTTP/1.1\r\nHost: d.test\r\n\r\n")
        data = s.recv(100)
        return data == b""
    except socket.timeout:
        return False
    except OSError:
        return True
    finally:
        s.close()


def test_sigterm_drains_in_flight_request(gateway, stub_factory, nginx):
    slow = stub_factory("slow", delay=2.0, body_size=BODY)
    gw = gateway({"slow": upstream(slow.port, read_timeout="5s"),
                  "static": upstream(nginx.port)},
                 [{"name": "slow", "path": "/slow/", "upstream": "slow"},
                  {"name": "static", "path": "/static/", "upstream": "static",
                   "strip_prefix": True}],
                 drain_timeout="10s")

    idle = gwtest.RawConn(gw.port)
    idle.send(b"GET /static/small.txt HTTP/1.1\r\nHost: d.test\r\n\r\n")
    r = idle.read_response()
    assert r.status == 200 and r.body == SMALL_TXT

    inflight = gwtest.RawConn(gw.port)
    inflight.send(b"GET /slow/drain HTTP/1.1\r\nHost: d.test\r\n"
                  b"X-Request-Id: drain-1\r\n\r\n")
    gwtest.wait_until(lambda: slow.log(), 3, what="the slow upstream to get "
                      "the request")
    t_sig = time.monotonic()
    gw.signal(signal.SIGTERM)

    gwtest.wait_until(lambda: connect_refused(gw.port), 1.5, 0.05,
                      "new connections to be refused after SIGTERM")
    refused_after = time.monotonic() - t_sig

    r = inflight.read_response()
    inflight.close()
    assert r.status == 200, r
    assert len(r.body) == BODY
    assert r.body == (bytes(range(256)) * (BODY // 256))
    assert refused_after < 1.5

    assert idle.is_closed(5), "idle keep-alive connection kept open in drain"
    idle.close()

    rc = gw.proc.popen.wait(10)
    took = time.monotonic() - t_sig
    assert rc == 0, "exit status %d after SIGTERM\n%s" % (rc, gw.diagnostics())
    assert took < 5, "exited %.1fs after SIGTERM" % took
    entry = [a for a in gw.access_log() if a.get("request_id") == "drain-1"]
    assert len(entry) == 1 and int(entry[0]["status"]) == 200, entry


def test_drain_timeout_bounds_the_wait(gateway, stub_factory):
    slow = stub_factory("slow", delay=30.0, body_size=10)
    gw = gateway({"slow": upstream(slow.port, read_timeout="60s")},
                 [{"name": "slow", "path": "/slow/", "upstream": "slow"}],
                 drain_timeout="1s")
    stuck = gwtest.RawConn(gw.port)
    stuck.send(b"GET /slow/stuck HTTP/1.1\r\nHost: d.test\r\n\r\n")
    gwtest.wait_until(lambda: slow.log(), 3, what="the request upstream")
    t_sig = time.monotonic()
    gw.signal(signal.SIGTERM)
    rc = gw.proc.popen.wait(10)
    took = time.monotonic() - t_sig
    stuck.close()
    assert 0.8 <= took < 3.0, \
        "exited %.1fs after SIGTERM with drain_timeout 1s (status %d)" % (
            took, rc)
    # requests were cut: the exit status says so
    assert rc == 3, rc
    gw.expect_failure = True
