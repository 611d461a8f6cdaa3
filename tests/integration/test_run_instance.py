"""One `make run` at a time: scripts/local/instance.sh, which
scripts/run-local.sh sources and calls before it writes anything in run/.

A second claim on the same run directory, while the first holder lives,
fails: it names the running services with their PIDs and ports and leaves
every file in the directory as it was (the first `make run`'s logs
included). A port another process listens on fails the claim too, naming
the port and that process. Ports are chosen at run time; the holder is
stopped by its PID."""

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO

LIB = REPO / "scripts" / "local" / "instance.sh"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def claim(run, *ports):
    """(exit status, stderr) of instance_claim RUN PORTS... in a bash."""
    p = subprocess.run(
        ["bash", "-c", '. "$0"; instance_claim "$@"', str(LIB), str(run)]
        + [str(x) for x in ports], capture_output=True, text=True,
        timeout=30)
    return p.returncode, p.stderr


def snapshot(d):
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns)
            for f in sorted(d.iterdir()) if f.is_file()}


@pytest.fixture
def holder(tmp_path):
    """A first `make run` stand-in: claims tmp_path/run, records itself and
    a service, writes a log, and waits."""
    run = tmp_path / "run"
    run.mkdir()
    port = free_port()
    script = ('. "$0"; instance_claim "$1" "$2" || exit 1; '
              'instance_record "$1" make-run $$ -; '
              'instance_record "$1" prometheus 4242 127.0.0.1:19090; '
              'echo "keep me" > "$1/prometheus.log"; echo READY; '
              'exec sleep 120')
    proc = subprocess.Popen(["bash", "-c", script, str(LIB), str(run),
                             str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        yield run, proc.pid, port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_second_claim_refused_and_nothing_touched(holder):
    run, pid, port = holder
    before = snapshot(run)
    assert set(before) >= {"instance", "prometheus.log", ".instance.lock"}
    time.sleep(0.01)  # an mtime that changed would show
    rc, err = claim(run, free_port())
    assert rc == 1, err
    assert "another 'make run' is running" in err, err
    assert "nothing was started or changed" in err, err
    # what runs: the first run's own PID first, then its services
    assert "make-run" in err and str(pid) in err, err
    assert "prometheus" in err and "4242" in err and "19090" in err, err
    assert "kill %d" % pid in err, err
    assert snapshot(run) == before


def test_taken_port_refused_with_its_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, err = claim(run, free_port(), port)
    assert rc == 1, err
    assert "port %d is taken" % port in err, err
    assert "pid=%d" % os.getpid() in err, err
    assert not (run / "instance").exists()


def test_free_claim_succeeds_and_is_released(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rc, err = claim(run, free_port())
    assert rc == 0 and err == "", err
    assert (run / "instance").read_text() == ""
    # the lock went with the process that held it
    rc, err = claim(run, free_port())
    assert rc == 0, err


def test_run_local_claims_before_it_writes():
    """scripts/run-local.sh sources the library and claims every port it
    binds before it makes a password, a directory or a log."""
    text = (REPO / "scripts" / "run-local.sh").read_text()
    claim_at = text.index("instance_claim ")
    for first_write in ('mkdir -p "$run/prometheus"', '>"$run/admin.password"',
                        '>"$run/prometheus.log"', '>"$run/portcullis.json"',
                        '>"$run/portcullis.log"'):
        assert text.index(first_write) > claim_at, first_write
    line = text[claim_at:text.index("\n", claim_at)]
    for port in ("8443", "8080", "9145", "19090", "19093", "19100",
                 "19115"):
        assert port in line, (port, line)
