"""One gateway per address: a second portcullis given a listener (or the
admin address) that another process listens on refuses to start, names
the address and the holder's pid, exits non-zero and binds nothing, while
the first keeps every connection. SO_REUSEPORT alone would have let it
bind and take a share of them. A SIGHUP reload, a restart after a stop, a
start while the old gateway drains (its listeners closed at SIGTERM) and
`-t` are unaffected."""

import copy
import json
import signal
import socket
import subprocess
import time

import gwtest
from conftest import SANITIZER_MARKS, SMALL_TXT, portcullis_binary, upstream


def static_gateway(gateway, nginx, **top):
    return gateway({"static": upstream(nginx.port)},
                   [{"name": "static", "path": "/static/",
                     "upstream": "static", "strip_prefix": True}], **top)


def config_file(tmp_path, name, cfg):
    path = tmp_path / ("%s.json" % name)
    path.write_text(json.dumps(cfg, indent=2))
    return path


def start(path):
    """A second gateway on `path`, in the background: its Popen."""
    return subprocess.Popen([portcullis_binary(), "-c", str(path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def refused(p, timeout=10.0):
    """Waits for a gateway that must refuse to start: exit status 1 and no
    sanitizer report; returns (exit status, stderr, seconds it ran). A
    gateway still running after `timeout` is stopped by its PID and fails
    the test."""
    t0 = time.monotonic()
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
        raise AssertionError("the second gateway (pid %d) did not refuse to "
                             "start within %.0fs:\n%s" % (
                                 p.pid, timeout, err.decode(errors="replace")))
    text = err.decode(errors="replace")
    for mark in SANITIZER_MARKS:
        assert mark not in text, "sanitizer report:\n" + text
    assert p.returncode == 1, "exit status %d\n%s" % (p.returncode, text)
    return p.returncode, text, time.monotonic() - t0


def listening(port):
    """True if something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def accepted(gw):
    return gwtest.metric(gw.metrics(), "portcullis_connections_accepted_total",
                         listener=gw.config["listeners"][0]["listen"])


def test_second_gateway_on_the_same_listener_is_refused(gateway, nginx,
                                                        tmp_path):
    a = static_gateway(gateway, nginx)
    assert accepted(a) == 0
    cfg = copy.deepcopy(a.config)
    b_admin = gateway.free_port()
    cfg["admin"]["listen"] = "127.0.0.1:%d" % b_admin
    b = start(config_file(tmp_path, "b", cfg))

    # Twenty new connections while B tries (it waits up to a second for
    # the holder to go): every one is A's, none lost to B.
    for i in range(20):
        r = gwtest.raw_request(a.port, "GET", "/static/small.txt",
                               headers=[("X-Request-Id", "single-%d" % i)])
        assert r.status == 200 and r.body == SMALL_TXT, (i, r)

    rc, err, took = refused(b)
    assert rc != 0, err
    assert took < 5, "refused after %.1fs" % took
    line = [l for l in err.splitlines() if "listeners[0].listen" in l]
    assert line, err
    assert "127.0.0.1:%d" % a.port in line[0], line[0]
    assert "Address already in use" in line[0], line[0]
    assert "pid %d (portcullis)" % a.pid in line[0], line[0]
    # nothing else bound, nothing started
    assert not listening(b_admin), "the refused gateway's admin listener"
    assert "worker(s)" not in err, err

    ids = {e.get("request_id") for e in a.access_log()}
    assert {"single-%d" % i for i in range(20)} <= ids
    assert accepted(a) == 20
    assert a.proc.alive()


def test_second_gateway_on_the_same_admin_address_is_refused(
        gateway, nginx, tmp_path):
    a = static_gateway(gateway, nginx)
    cfg = copy.deepcopy(a.config)
    b_port = gateway.free_port()
    cfg["listeners"][0]["listen"] = "127.0.0.1:%d" % b_port
    rc, err, took = refused(start(config_file(tmp_path, "b", cfg)))
    assert rc != 0, err
    line = [l for l in err.splitlines() if "admin.listen" in l]
    assert line, err
    assert "127.0.0.1:%d" % a.admin_port in line[0], line[0]
    assert "pid %d (portcullis)" % a.pid in line[0], line[0]
    assert "listeners[0]" not in err, err
    assert not listening(b_port), "the refused gateway bound its listener"
    st, _, body = gwtest.get(a.port, "/static/small.txt")
    assert st == 200 and body == SMALL_TXT


def test_another_program_on_the_listener_is_named(gateway, nginx,
                                                  tmp_path):
    """Whatever holds the address: here nginx (no SO_REUSEPORT)."""
    admin = gateway.free_port()
    cfg = {"workers": 1, "admin": {"listen": "127.0.0.1:%d" % admin},
           "upstreams": {"u": upstream(nginx.port)},
           "listeners": [{"listen": "127.0.0.1:%d" % nginx.port,
                          "routes": [{"name": "u", "path": "/",
                                      "upstream": "u"}]}]}
    rc, err, _ = refused(start(config_file(tmp_path, "b", cfg)))
    assert rc != 0, err
    assert ("listeners[0].listen: cannot listen on 127.0.0.1:%d: Address "
            "already in use: pid %d (nginx) listens there"
            % (nginx.port, nginx.pid)) in err, err
    assert not listening(admin)


def test_reload_is_unaffected(gateway, nginx):
    a = static_gateway(gateway, nginx)
    cfg = copy.deepcopy(a.config)
    cfg["listeners"][0]["routes"].append(
        {"name": "again", "path": "/again/", "upstream": "static",
         "strip_prefix": True})
    a.reload(cfg)

    def routed():
        st, _, body = gwtest.get(a.port, "/again/small.txt")
        return st == 200 and body == SMALL_TXT
    gwtest.wait_until(routed, 5, 0.1, "/again/ to be routed after SIGHUP")
    assert "reload: %s loaded" % a.config_path in a.error_log()
    assert "not starting" not in a.error_log()
    assert a.proc.alive()


def test_restart_after_stop(gateway, nginx):
    a = static_gateway(gateway, nginx)
    rc, killed = a.stop()
    assert rc == 0 and not killed
    b = gateway.start_config(copy.deepcopy(a.config))  # same addresses
    st, _, body = gwtest.get(b.port, "/static/small.txt")
    assert st == 200 and body == SMALL_TXT
    assert b.admin_port == a.admin_port and b.port == a.port


def test_start_while_the_old_one_drains(gateway, nginx, stub_factory,
                                        tmp_path):
    """SIGTERM closes A's listeners at once; B may take them while A
    finishes its request. A keeps its admin listener until it exits
    (/readyz answers 503 while draining), so a B on the same admin
    address is refused until then, naming A."""
    slow = stub_factory("slow", delay=6.0, body_size=1000)
    a = gateway({"slow": upstream(slow.port, read_timeout="10s"),
                 "static": upstream(nginx.port)},
                [{"name": "slow", "path": "/slow/", "upstream": "slow"},
                 {"name": "static", "path": "/static/", "upstream": "static",
                  "strip_prefix": True}],
                drain_timeout="20s")
    inflight = gwtest.RawConn(a.port, timeout=20)
    inflight.send(b"GET /slow/x HTTP/1.1\r\nHost: d.test\r\n"
                  b"X-Request-Id: draining-1\r\n\r\n")
    gwtest.wait_until(lambda: slow.log(), 3, what="the slow upstream to get "
                      "the request")
    a.signal(signal.SIGTERM)

    same_admin = copy.deepcopy(a.config)
    rc, err, _ = refused(start(config_file(tmp_path, "same-admin",
                                           same_admin)))
    assert rc != 0, err
    assert "admin.listen" in err and "pid %d" % a.pid in err, err
    assert "listeners[0]" not in err, err  # the listener itself was free

    cfg = copy.deepcopy(a.config)
    cfg["admin"]["listen"] = "127.0.0.1:%d" % gateway.free_port()
    b = gateway.start_config(cfg)
    assert a.proc.alive(), "A finished draining before B started"
    st, _, body = gwtest.get(b.port, "/static/small.txt")
    assert st == 200 and body == SMALL_TXT
    assert accepted(b) == 1

    r = inflight.read_response()
    inflight.close()
    assert r.status == 200 and len(r.body) == 1000, r
    assert a.proc.popen.wait(15) == 0
    st, _, body = gwtest.get(b.port, "/static/small.txt")
    assert st == 200 and body == SMALL_TXT


def test_config_check_is_unaffected(gateway, nginx):
    a = static_gateway(gateway, nginx)
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(a.config_path)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert b"configuration is valid" in p.stdout
    assert a.proc.alive()
