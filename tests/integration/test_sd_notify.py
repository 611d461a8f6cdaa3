"""systemd's notification protocol (sd_notify(3), a Type=notify unit): the
real gateway started with NOTIFY_SOCKET pointing at a datagram socket of
the test, as systemd would. READY=1 comes only once the listener answers,
a SIGHUP is wrapped in RELOADING=1 (with MONOTONIC_USEC) and READY=1
(also when the new config is refused), WATCHDOG=1 repeats while
WATCHDOG_USEC is set, and SIGTERM says STOPPING=1 before the drain.

WATCHDOG_PID is left unset: sd_watchdog_enabled(3) then applies the
watchdog to whichever process reads it, and the child's pid is not known
before it is started anyway."""

import json
import os
import signal
import socket
import time

import pytest

import gwtest
from conftest import (Proc, SANITIZER_MARKS, free_port, gateway_env,
                      make_config, portcullis_binary, upstream, wait_http)

WAIT = 30.0  # seconds for any one notification; generous for a busy host


class Notifications:
    """The AF_UNIX datagram socket systemd would listen on; every message
    received is kept, parsed into {KEY: VALUE}, in order."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def _drain(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return False
        msg = {}
        for line in data.decode("utf-8").split("\n"):
            if line:
                k, sep, v = line.partition("=")
                assert sep, "not KEY=VALUE: %r in %r" % (line, data)
                msg[k] = v
        self.messages.append(msg)
        return True

    def wait_for(self, pred, after=0, what="a notification", proc=None):
        """The first message from index `after` on with pred(msg) true,
        and its index; waits up to WAIT seconds for it."""
        deadline = time.monotonic() + WAIT
        i = after
        while True:
            while i < len(self.messages):
                if pred(self.messages[i]):
                    return i, self.messages[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    "no %s within %.0fs; got %r%s" % (
                        what, WAIT, self.messages,
                        "\n" + proc.diagnostics() if proc else ""))
            self._drain(min(left, 0.5))

    def close(self):
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    n = Notifications(tmp_path / "notify.sock")
    yield n
    n.close()


def start_gateway(tmp_path, cfg, env):
    path = tmp_path / "portcullis.json"
    path.write_text(json.dumps(cfg, indent=2))
    return Proc("portcullis", [portcullis_binary(), "-c", str(path)],
                tmp_path, env=gateway_env(env)), path


def stop(proc):
    rc, killed = proc.stop()
    err = proc.stderr_path.read_text(errors="replace")
    for mark in SANITIZER_MARKS:
        assert mark not in err, "sanitizer report:\n" + err
    assert not killed, "gateway ignored SIGTERM\n" + proc.diagnostics()
    return rc, err


def answers(port):
    """The status of GET /nothing-routed-here on the listener: the gateway
    itself answers 404, so a worker is accepting and serving."""
    st, _, _ = gwtest.get(port, "/nothing-routed-here", timeout=5)
    return st


def test_ready_reload_watchdog_stopping(tmp_path, notify_socket):
    port, admin = free_port(), free_port()
    cfg = make_config(port, admin, {"up": upstream(free_port())},
                      [{"name": "app", "path": "/app/", "upstream": "up"}],
                      drain_timeout="5s")
    gw, path = start_gateway(tmp_path, cfg, {
        "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000"})
    try:
        i, ready = notify_socket.wait_for(lambda m: "READY" in m,
                                          what="READY=1", proc=gw)
        # Checked as soon as READY=1 is read: the listener is bound and a
        # worker answers, with no wait in between.
        assert answers(port) == 404
        assert ready["READY"] == "1"
        assert ready.get("STATUS", "").startswith("Serving"), ready
        assert not any("RELOADING" in m or "STOPPING" in m
                       for m in notify_socket.messages[:i + 1])

        # The watchdog pings repeatedly, before and after READY=1.
        w1, _ = notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1",
                                       what="WATCHDOG=1", proc=gw)
        w2, _ = notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1",
                                       after=max(w1, i) + 1,
                                       what="a WATCHDOG=1 after READY=1",
                                       proc=gw)
        notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1",
                               after=w2 + 1, what="a third WATCHDOG=1",
                               proc=gw)

        # A good reload: RELOADING=1 with the monotonic clock, then READY=1.
        mark = len(notify_socket.messages)
        before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        cfg["listeners"][0]["routes"][0]["path"] = "/app2/"
        path.write_text(json.dumps(cfg, indent=2))
        os.kill(gw.pid, signal.SIGHUP)
        r, reloading = notify_socket.wait_for(
            lambda m: "RELOADING" in m, after=mark, what="RELOADING=1",
            proc=gw)
        after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert reloading["RELOADING"] == "1"
        assert before_us <= int(reloading["MONOTONIC_USEC"]) <= after_us, \
            reloading
        _, done = notify_socket.wait_for(lambda m: "READY" in m, after=r + 1,
                                         what="READY=1 after the reload",
                                         proc=gw)
        assert done["STATUS"] == "Serving: config reloaded", done
        assert "reload: %s loaded" % path in gw.stderr_path.read_text()

        # A refused reload keeps serving and still ends with READY=1.
        mark = len(notify_socket.messages)
        path.write_text("{ not json")
        os.kill(gw.pid, signal.SIGHUP)
        r, _ = notify_socket.wait_for(lambda m: "RELOADING" in m, after=mark,
                                      what="RELOADING=1 (bad config)",
                                      proc=gw)
        _, done = notify_socket.wait_for(lambda m: "READY" in m, after=r + 1,
                                         what="READY=1 after a refused "
                                         "reload", proc=gw)
        assert "previous config" in done["STATUS"], done
        assert answers(port) == 404

        # SIGTERM: STOPPING=1, with the stop timeout stretched over the
        # drain (5 s and a second, in microseconds), then exit 0.
        mark = len(notify_socket.messages)
        os.kill(gw.pid, signal.SIGTERM)
        _, stopping = notify_socket.wait_for(lambda m: "STOPPING" in m,
                                             after=mark, what="STOPPING=1",
                                             proc=gw)
        assert stopping["STOPPING"] == "1"
        assert stopping["EXTEND_TIMEOUT_USEC"] == "6000000", stopping
        assert gw.popen.wait(WAIT) == 0, gw.diagnostics()
    finally:
        rc, err = stop(gw)
    assert rc == 0, err
    assert "sd_notify" not in err, err


def test_no_watchdog_for_another_pid(tmp_path, notify_socket):
    """WATCHDOG_PID naming another process: the watchdog is that one's,
    so READY=1 and STOPPING=1 come but never WATCHDOG=1."""
    port, admin = free_port(), free_port()
    cfg = make_config(port, admin, {"up": upstream(free_port())},
                      [{"name": "app", "path": "/app/", "upstream": "up"}])
    gw, _ = start_gateway(tmp_path, cfg, {
        "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000",
        "WATCHDOG_PID": "1"})
    try:
        notify_socket.wait_for(lambda m: "READY" in m, what="READY=1",
                               proc=gw)
        os.kill(gw.pid, signal.SIGTERM)
        notify_socket.wait_for(lambda m: "STOPPING" in m, what="STOPPING=1",
                               proc=gw)
        assert gw.popen.wait(WAIT) == 0, gw.diagnostics()
        # Whatever is still queued on the socket, then nothing else.
        while notify_socket._drain(0.2):
            pass
    finally:
        stop(gw)
    assert not any("WATCHDOG" in m for m in notify_socket.messages), \
        notify_socket.messages


def test_unreachable_notify_socket_is_harmless(tmp_path):
    """A NOTIFY_SOCKET nobody listens on: the gateway serves anyway and
    logs the failure once, not once per watchdog ping."""
    port, admin = free_port(), free_port()
    cfg = make_config(port, admin, {"up": upstream(free_port())},
                      [{"name": "app", "path": "/app/", "upstream": "up"}])
    gw, _ = start_gateway(tmp_path, cfg, {
        "NOTIFY_SOCKET": str(tmp_path / "nobody.sock"),
        "WATCHDOG_USEC": "200000"})
    try:
        wait_http(gw, admin, "/healthz", timeout=WAIT)
        assert answers(port) == 404
        # Several pings (every 100 ms) have failed by the time the log
        # has its line; wait for the reload's line as a later landmark.
        os.kill(gw.pid, signal.SIGHUP)
        gwtest.wait_until(lambda: "reload: " in gw.stderr_path.read_text(),
                          WAIT, what="the reload's log line")
    finally:
        rc, err = stop(gw)
    assert rc == 0, err
    assert err.count("sd_notify: cannot tell systemd") == 1, err


PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
WALL = 0x40000000  # __WALL: wait for a thread (a clone child)


def thread_named(pid, name):
    """The TID of the gateway's thread called `name` (pthread_setname_np
    names the workers pc-worker-N)."""
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() == name:
                return int(tid)
    raise AssertionError("no thread %s in pid %d" % (name, pid))


def test_watchdog_stops_when_a_worker_hangs(tmp_path, notify_socket):
    """The watchdog vouches for the workers, not only the main loop: one
    worker thread stopped (ptrace stops that thread alone, the rest of the
    process runs on) and WATCHDOG=1 stops coming, with an error naming
    the worker; let it go and the pings come back."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                            ctypes.c_void_p]
    port, admin = free_port(), free_port()
    cfg = make_config(port, admin, {"up": upstream(free_port())},
                      [{"name": "app", "path": "/app/", "upstream": "up"}])
    gw, _ = start_gateway(tmp_path, cfg, {
        "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000"})
    tid = None
    try:
        i, _ = notify_socket.wait_for(lambda m: "READY" in m,
                                      what="READY=1", proc=gw)
        notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1",
                               after=i + 1, what="WATCHDOG=1", proc=gw)
        tid = thread_named(gw.pid, "pc-worker-1")
        if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
            tid = None
            pytest.fail("ptrace(PTRACE_SEIZE) of a worker thread: %s"
                        % os.strerror(ctypes.get_errno()))
        assert libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0
        assert os.waitpid(tid, WALL)[0] == tid  # it has stopped
        gwtest.wait_until(
            lambda: "watchdog: worker 1 has not answered" in
            gw.stderr_path.read_text(errors="replace"), WAIT,
            what="the watchdog's error about worker 1")
        # From the first complaint on, no ping can be sent: each needs an
        # answer the stopped worker cannot give. Anything queued before it
        # is read first; then ten checks' worth of time passes (a check
        # every 200 ms) and nothing new may arrive.
        while notify_socket._drain(0.2):
            pass
        mark = len(notify_socket.messages)
        complaints = gw.stderr_path.read_text().count("has not answered")
        gwtest.wait_until(
            lambda: gw.stderr_path.read_text().count("has not answered")
            >= complaints + 10, WAIT, what="ten more failed checks")
        while notify_socket._drain(0.2):
            pass
        assert not any("WATCHDOG" in m
                       for m in notify_socket.messages[mark:]), \
            notify_socket.messages[mark:]
        # the process as a whole still serves (worker 0 answers)
        assert gw.alive()
    finally:
        if tid is not None:
            libc.ptrace(PTRACE_DETACH, tid, None, None)
    mark = len(notify_socket.messages)
    notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", after=mark,
                           what="WATCHDOG=1 once the worker runs again",
                           proc=gw)
    rc, err = stop(gw)
    assert rc == 0, err
