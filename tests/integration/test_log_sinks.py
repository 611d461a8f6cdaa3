"""Log sinks that do not read (issue 24, items 3 and 4): a stdout or a
stderr that is a FIFO nobody reads must hold up neither the traffic, nor
the admin listener, nor a reload, nor the shutdown; what cannot be written
is dropped and counted in portcullis_log_dropped_total; the other sink
keeps every line. The FIFOs are real: the test holds the read end open and
never reads it, as `sleep 900 < fifo` would."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import (free_port, make_config, portcullis_binary, upstream,
                      wait_http)

import gwtest


class Stuck:
    """A FIFO whose read end this test holds and never reads."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        self.rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def close(self):
        os.close(self.rfd)


class Started:
    """portcullis with stdout and stderr where the test says."""

    def __init__(self, tmp_path, cfg, stdout, stderr):
        self.cfg_path = tmp_path / "gw.json"
        self.cfg_path.write_text(json.dumps(cfg))
        self.port = int(cfg["listeners"][0]["listen"].rsplit(":", 1)[1])
        self.admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
        out = open(stdout, "wb")
        err = open(stderr, "wb")
        try:
            self.popen = subprocess.Popen(
                [portcullis_binary(), "-c", str(self.cfg_path)],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        finally:
            out.close()
            err.close()
        self.pid = self.popen.pid
        self.name = "portcullis"
        self.stderr = stderr

    def alive(self):
        return self.popen.poll() is None

    def diagnostics(self):
        return "portcullis pid %d (stderr: %s)" % (self.pid, self.stderr)

    def kill(self):
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)


def dropped(port):
    st, _, body = gwtest.get(port, "/metrics", timeout=5)
    assert st == 200
    return gwtest.metric(gwtest.parse_metrics(body.decode()),
                         "portcullis_log_dropped_total")


def many_requests(port, path, n):
    """n requests on few kept-alive connections; the statuses seen."""
    seen = {}
    with gwtest.RawConn(port) as c:
        for i in range(n):
            c.send(("GET %s?n=%d HTTP/1.1\r\nHost: gw.test\r\n\r\n"
                    % (path, i)).encode())
            r = c.read_response("GET")
            seen[r.status] = seen.get(r.status, 0) + 1
    return seen


def stop_within(gw, seconds):
    """SIGTERM; the exit status, or a failure when it is not done in
    `seconds` (a generous bound: the point is that it ends at all)."""
    t0 = time.monotonic()
    gw.popen.send_signal(signal.SIGTERM)
    try:
        rc = gw.popen.wait(seconds)
    except subprocess.TimeoutExpired:
        gw.kill()
        pytest.fail("still running %.0f s after SIGTERM" % seconds)
    return rc, time.monotonic() - t0


@pytest.fixture
def cfg(stub_factory):
    stub = stub_factory("slow", delay=0, body_size=16)
    return make_config(free_port(), free_port(),
                       {"app": upstream(stub.port)},
                       [{"name": "app", "path": "/", "upstream": "app"}],
                       drain_timeout="5s")


def test_stdout_nobody_reads(tmp_path, cfg):
    """The access log on stdout, a FIFO nobody reads: 3,000 lines are
    about 1 MiB, far past the pipe and what the writer may owe."""
    fifo = Stuck(tmp_path / "stdout.fifo")
    err = tmp_path / "stderr.log"
    gw = Started(tmp_path, cfg, fifo.path, err)
    try:
        wait_http(gw, gw.admin, "/healthz", timeout=10)
        assert many_requests(gw.port, "/a", 3000) == {200: 3000}
        gwtest.wait_until(lambda: dropped(gw.admin) > 0, 10,
                          what="dropped access lines to be counted")
        # the error log is not held up by stdout: a reload's lines arrive
        os.kill(gw.pid, signal.SIGHUP)
        gwtest.wait_until(lambda: "reload" in err.read_text(), 10,
                          what="the reload's line in the error log")
        assert many_requests(gw.port, "/b", 10) == {200: 10}
        rc, _ = stop_within(gw, 20)
        assert rc == 0
        assert "drained; exiting" in err.read_text()
    finally:
        gw.kill()
        fifo.close()


def test_stderr_nobody_reads(tmp_path, cfg):
    """The error log on stderr, a FIFO nobody reads, filled by the line
    each bad request costs: the admin listener, reloads and the shutdown
    go on (the main thread writes through the writer, never itself)."""
    fifo = Stuck(tmp_path / "stderr.fifo")
    cfg["access_log"] = str(tmp_path / "access.log")
    gw = Started(tmp_path, cfg, tmp_path / "stdout.log", fifo.path)
    try:
        wait_http(gw, gw.admin, "/healthz", timeout=10)
        for i in range(3000):
            with socket.create_connection(("127.0.0.1", gw.port), 10) as s:
                s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                assert s.recv(100).startswith(b"HTTP/1.1 400 ")
        for _ in range(5):
            os.kill(gw.pid, signal.SIGHUP)
            st, _, body = gwtest.get(gw.admin, "/healthz", timeout=5)
            assert st == 200
        gwtest.wait_until(lambda: dropped(gw.admin) > 0, 10,
                          what="dropped error lines to be counted")
        assert many_requests(gw.port, "/c", 10) == {200: 10}
        # the access log, a file, kept every line
        gwtest.wait_until(
            lambda: sum(1 for e in gwtest.read_json_lines(
                tmp_path / "access.log") if e["status"] == 400) == 3000,
            10, what="3000 lines of 400 in the access log")
        rc, _ = stop_within(gw, 20)
        assert rc == 0
    finally:
        gw.kill()
        fifo.close()


def test_stdout_nobody_reads_while_draining(tmp_path, cfg, stub_factory):
    """SIGTERM with requests in flight and stdout stuck: it ends within
    drain_timeout (5 s) and a small constant."""
    slow = stub_factory("slow", delay=30, body_size=16)
    cfg["upstreams"]["slow"] = upstream(slow.port)
    cfg["listeners"][0]["routes"].append(
        {"name": "slow", "path": "/slow/", "upstream": "slow"})
    fifo = Stuck(tmp_path / "stdout.fifo")
    gw = Started(tmp_path, cfg, fifo.path, tmp_path / "stderr.log")
    held = []
    try:
        wait_http(gw, gw.admin, "/healthz", timeout=10)
        assert many_requests(gw.port, "/a", 2000) == {200: 2000}
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", gw.port), 10)
            s.sendall(b"GET /slow/x HTTP/1.1\r\nHost: a\r\n\r\n")
            held.append(s)
        gwtest.wait_until(lambda: len(slow.log()) >= 3, 10,
                          what="the slow requests at the upstream")
        rc, took = stop_within(gw, 5 + 15)
        assert took < 5 + 15
        assert rc == 3  # the slow requests were cut
    finally:
        for s in held:
            s.close()
        gw.kill()
        fifo.close()
