"""What an operator used to nginx does without hunting for a PID: a
`pid_file`, `portcullis -s reload|reopen|stop -c FILE`, and an access log
in a file that logrotate can move (SIGUSR1 reopens it)."""

import json
import os
import signal
import subprocess

from conftest import make_config, portcullis_binary, upstream

import gwtest


def start(gateway, nginx, tmp_path, **top):
    cfg = make_config(gateway.free_port(), gateway.free_port(),
                      {"web": upstream(nginx.port)},
                      [{"name": "web", "path": "/", "upstream": "web"}],
                      pid_file=str(tmp_path / "run" / "portcullis.pid"),
                      **top)
    (tmp_path / "run").mkdir(exist_ok=True)
    return gateway.start_config(cfg)


def ctl(gw, what, timeout=60):
    """portcullis -s WHAT -c <the gateway's config>."""
    return subprocess.run([portcullis_binary(), "-s", what, "-c",
                           str(gw.config_path)], capture_output=True,
                          text=True, timeout=timeout)


def hit(gw, path):
    """A request through the gateway, answered by nginx (404 for a file
    its docroot does not have)."""
    st, headers, _ = gwtest.get(gw.port, path)
    assert st == 404 and "nginx" in str(headers).lower(), (st, headers)


def pid_path(gw):
    return gw.config["pid_file"]


def test_pid_file_holds_the_pid_and_goes_at_exit(gateway, nginx, tmp_path):
    gw = start(gateway, nginx, tmp_path)
    assert open(pid_path(gw)).read() == "%d\n" % gw.pid
    assert "pid %d," % gw.pid in gw.error_log()
    rc, killed = gw.stop()
    assert (rc, killed) == (0, False)
    assert not os.path.exists(pid_path(gw)), "pid file left behind"


def test_s_reload_checks_first_then_signals(gateway, nginx, tmp_path):
    gw = start(gateway, nginx, tmp_path)
    # a broken config is refused here; the gateway is not signalled
    good = dict(gw.config)
    bad = dict(gw.config, workers="many")
    gw._write(bad)
    p = ctl(gw, "reload")
    assert p.returncode == 1, p
    assert "workers: must be" in p.stderr
    assert "not reloading pid %d" % gw.pid in p.stderr, p.stderr
    assert "SIGHUP" not in gw.error_log()
    # a good one is sent, and the gateway loads it
    good["listeners"] = json.loads(json.dumps(gw.config["listeners"]))
    good["listeners"][0]["routes"][0]["name"] = "renamed"
    gw._write(good)
    p = ctl(gw, "reload")
    assert p.returncode == 0, p.stderr
    assert "sent SIGHUP (reload) to pid %d" % gw.pid in p.stderr
    gwtest.wait_until(lambda: "reload: " in gw.error_log()
                      and "loaded" in gw.error_log(), 10,
                      what="the reload in the gateway's log")
    hit(gw, "/x")
    gwtest.wait_until(
        lambda: any(e.get("route") == "renamed" for e in gw.access_log()),
        10, what="a request on the renamed route")


def test_s_stop_drains_and_waits(gateway, nginx, tmp_path):
    gw = start(gateway, nginx, tmp_path)
    p = ctl(gw, "stop")
    assert p.returncode == 0, p.stderr
    assert "pid %d has stopped" % gw.pid in p.stderr
    # -s stop returned after the exit: the process is gone already
    assert gw.proc.popen.poll() == 0, "not exited when -s stop returned"
    assert not os.path.exists(pid_path(gw))
    assert "SIGTERM: draining" in gw.error_log()


def test_s_refuses_a_stale_or_foreign_pid(gateway, nginx, tmp_path):
    gw = start(gateway, nginx, tmp_path)
    real = open(pid_path(gw)).read()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open(pid_path(gw), "w") as f:
            f.write("%d\n" % sleeper.pid)
        p = ctl(gw, "stop")
        assert p.returncode == 1
        assert 'which is "sleep", not portcullis' in p.stderr, p.stderr
        assert sleeper.poll() is None, "-s signalled a process not ours"
    finally:
        sleeper.kill()
        sleeper.wait()
    # a PID nobody has: reaped above, so it is free now
    with open(pid_path(gw), "w") as f:
        f.write("%d\n" % sleeper.pid)
    p = ctl(gw, "reopen")
    assert p.returncode == 1 and "is not running (the file is stale)" \
        in p.stderr, p.stderr
    with open(pid_path(gw), "w") as f:
        f.write("junk\n")
    p = ctl(gw, "reopen")
    assert p.returncode == 1 and "holds no process id" in p.stderr
    os.unlink(pid_path(gw))
    p = ctl(gw, "reload")
    assert p.returncode == 1 and "No such file or directory (is the " \
        "gateway running?)" in p.stderr, p.stderr
    with open(pid_path(gw), "w") as f:
        f.write(real)
    assert gw.proc.alive()


def test_s_without_pid_file_or_with_a_bad_word(tmp_path, gateway, nginx):
    gw = gateway({"web": upstream(nginx.port)},
                 [{"name": "web", "path": "/", "upstream": "web"}])
    p = ctl(gw, "reload")
    assert p.returncode == 1 and "no pid_file in the config" in p.stderr
    p = ctl(gw, "restart")
    assert p.returncode == 2
    assert "the signals are reload, reopen and stop" in p.stderr
    p = subprocess.run([portcullis_binary(), "-t", "-s", "stop", "-c",
                        str(gw.config_path)], capture_output=True,
                       timeout=10)
    assert p.returncode == 2


def test_access_log_file_reopened_on_sigusr1(gateway, nginx, tmp_path):
    log = tmp_path / "logs" / "access.log"
    log.parent.mkdir()
    gw = start(gateway, nginx, tmp_path, access_log=str(log))
    hit(gw, "/one")
    gwtest.wait_until(lambda: gwtest.count_lines(log) == 1, 10,
                      what="the first line in the file")
    assert oct(os.stat(log).st_mode & 0o777) == "0o640"
    assert gw.access_log() == [], "access lines on stdout as well"
    # logrotate: move the file away, then ask for a new one
    rotated = log.with_name("access.log.1")
    os.rename(log, rotated)
    hit(gw, "/two")
    gwtest.wait_until(lambda: gwtest.count_lines(rotated) == 2, 10,
                      what="the second line (still the moved file)")
    p = ctl(gw, "reopen")
    assert p.returncode == 0, p.stderr
    gwtest.wait_until(
        lambda: "access log: writing to %s" % log in gw.error_log(), 10,
        what="the reopen in the error log")
    hit(gw, "/three")
    gwtest.wait_until(lambda: log.exists() and gwtest.count_lines(log) == 1,
                      10, what="the third line in the new file")
    assert [e["path"] for e in gwtest.read_json_lines(rotated)] == \
        ["/one", "/two"]
    assert [e["path"] for e in gwtest.read_json_lines(log)] == ["/three"]
    # a reload may name another file; an unopenable one keeps the old
    other = tmp_path / "logs" / "other.log"
    gw.reload(dict(gw.config, access_log=str(other)))
    gwtest.wait_until(
        lambda: "access log: writing to %s" % other in gw.error_log(), 10,
        what="the reload's new access log")
    hit(gw, "/four")
    gwtest.wait_until(lambda: other.exists() and
                      gwtest.count_lines(other) == 1, 10,
                      what="a line in the reloaded path")
    # the file moved and a directory in its place: the reopen fails, is
    # logged, and the lines go on to the old (moved) file
    moved = other.with_name("other.log.1")
    os.rename(other, moved)
    other.mkdir()
    gw.signal(signal.SIGUSR1)
    gwtest.wait_until(
        lambda: "access log: cannot open %s: Is a directory; still writing "
        "to the old file" % other in gw.error_log(), 10,
        what="the failed reopen")
    hit(gw, "/five")
    gwtest.wait_until(lambda: gwtest.count_lines(moved) == 2, 10,
                      what="the fifth line in the old file")
    assert gw.proc.alive()


def test_access_log_file_that_cannot_be_opened(gateway, nginx, tmp_path):
    cfg = make_config(gateway.free_port(), gateway.free_port(),
                      {"web": upstream(nginx.port)},
                      [{"name": "web", "path": "/", "upstream": "web"}],
                      access_log=str(tmp_path / "nodir" / "access.log"))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-c", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "access_log: cannot open %s: No such file or directory" \
        % (tmp_path / "nodir" / "access.log") in p.stderr, p.stderr
