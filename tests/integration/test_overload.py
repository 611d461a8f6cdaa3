"""Connections the gateway cannot take in (issue 24, items 2 and 5): over
max_connections, and out of file descriptors. Either way the client gets
503 "too busy" rather than a hang, the refusal is counted in
portcullis_connections_rejected_total{listener,reason} and logged once
per interval with a count, never once per connection -- and running out
of descriptors costs no CPU, on the traffic listeners and the admin
listener alike."""

import json
import os
import resource
import select
import socket
import time

from conftest import Proc, free_port, make_config, portcullis_binary, \
    upstream, wait_http

import gwtest

BUSY = b"503 Service Unavailable (too busy)\n"


def rejected(admin_port, listener, reason):
    st, _, body = gwtest.get(admin_port, "/metrics", timeout=5)
    assert st == 200
    return gwtest.metric(gwtest.parse_metrics(body.decode()),
                         "portcullis_connections_rejected_total",
                         listener=listener, reason=reason)


def answered_busy(sock):
    """Whether the gateway answered this connection 503 and closed it."""
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return False
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data.startswith(b"HTTP/1.1 503 ") and data.endswith(BUSY)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / \
        os.sysconf("SC_CLK_TCK")


def test_over_max_connections(gateway, stub_factory):
    stub = stub_factory("slow", delay=0, body_size=16)
    gw = gateway({"app": upstream(stub.port)},
                 [{"name": "app", "path": "/", "upstream": "app"}],
                 listener={"timeouts": {"header": "60s", "body": "5s",
                                        "keepalive": "60s"}},
                 max_connections=3, workers=1)
    held = [socket.create_connection(("127.0.0.1", gw.port), 10)
            for _ in range(3)]
    try:
        # the three are in (an answered request proves each was accepted)
        for s in held:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: gw\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200 ")
        extra = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", gw.port), 10)
            s.settimeout(10)
            data = b""
            while not data.endswith(BUSY):
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 503 "), data
            extra.append(s)
        for s in extra:
            s.close()
        listener = gw.config["listeners"][0]["listen"]
        assert rejected(gw.admin_port, listener, "max_connections") == 4
        assert rejected(gw.admin_port, listener, "no_fd") == 0
        # one line for the four, with its count and the limit
        lines = gwtest.wait_until(
            lambda: [l for l in gw.error_log().splitlines()
                     if "max_connections" in l], 10,
            what="the log line about max_connections")
        assert len(lines) == 1, lines
        assert "answered 503: max_connections (3) reached" in lines[0]
    finally:
        for s in held:
            s.close()


def low_fd_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_out_of_descriptors(tmp_path, stub_factory):
    """ulimit -n 64 and 100 idle clients: the ones past the limit are
    answered 503 with the spare descriptor; the admin listener, asked
    while none is left, answers 503 too; meanwhile the gateway uses next
    to no CPU and writes a handful of lines, not one per attempt."""
    stub = stub_factory("slow", delay=0, body_size=16)
    port, admin = free_port(), free_port()
    cfg = make_config(port, admin, {"app": upstream(stub.port)},
                      [{"name": "app", "path": "/", "upstream": "app"}],
                      listener={"timeouts": {"header": "60s", "body": "5s",
                                             "keepalive": "60s"}},
                      workers=1, max_connections=1000)
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(cfg))
    proc = Proc("portcullis", [portcullis_binary(), "-c", str(path)],
                tmp_path, preexec_fn=low_fd_limit)
    clients = []
    try:
        wait_http(proc, admin, "/healthz", timeout=10)
        for _ in range(100):
            clients.append(socket.create_connection(("127.0.0.1", port),
                                                    10))
        busy = gwtest.wait_until(
            lambda: [c for c in clients if answered_busy(c)] or None, 10,
            what="a connection answered 503 for want of descriptors")
        # every pending client answered: the worker sheds no more, so no
        # descriptor comes free for a moment while the admin is asked
        def settled():
            more = [c for c in clients if c not in busy and answered_busy(c)]
            busy.extend(more)
            return not more
        gwtest.wait_until(lambda: settled() and (time.sleep(0.5) or
                                                 settled()), 10,
                          what="the shedding to end")
        assert len(os.listdir("/proc/%d/fd" % proc.pid)) == 64
        # the admin listener, out of descriptors too, answers at once
        with socket.create_connection(("127.0.0.1", admin), 10) as a:
            a.settimeout(10)
            a.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            data = b""
            while True:
                chunk = a.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 503 ") and \
                data.endswith(BUSY), data
        # two seconds of it cost next to no CPU (the bug: a whole core)
        c0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        time.sleep(2)
        used = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
        assert used < 0.5, "%.0f %% of a core while out of descriptors" \
            % (used * 100)
        assert proc.alive()
        for c in clients:
            c.close()
        clients = []
        wait_http(proc, admin, "/healthz", timeout=10)
        assert rejected(admin, cfg["listeners"][0]["listen"], "no_fd") \
            >= len(busy)
        assert rejected(admin, cfg["admin"]["listen"], "no_fd") >= 1
        err = proc.stderr_path.read_text()
        noisy = [l for l in err.splitlines()
                 if "Too many open files" in l]
        assert 1 <= len(noisy) <= 10, noisy[:20]
    finally:
        for c in clients:
            c.close()
        rc, killed = proc.stop()
        assert not killed
