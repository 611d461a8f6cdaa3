"""Runs the varnishtest scripts in vtc/: a scripted upstream (varnishtest's
server) checks the exact request the gateway forwards, a scripted client
checks the exact response. Every .vtc gets the binary and two free ports;
the gateway's pid is checked afterwards so none is left running."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port, portcullis_binary

VTC_DIR = Path(__file__).resolve().parent / "vtc"
SCRIPTS = sorted(p.name for p in VTC_DIR.glob("*.vtc"))


def alive_portcullis(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"portcullis" in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("script", SCRIPTS)
def test_vtc(tmp_path, script):
    binary = portcullis_binary()
    pidfile = tmp_path / "portcullis.pid"
    argv = ["/usr/bin/varnishtest", "-v", "-t", "60",
            "-D", "portcullis=%s" % binary,
            "-D", "gwport=%d" % free_port(),
            "-D", "adminport=%d" % free_port(),
            "-D", "pidfile=%s" % pidfile,
            str(VTC_DIR / script)]
    p = subprocess.run(argv, capture_output=True, timeout=90,
                       cwd=tmp_path)
    leftover = None
    if pidfile.exists():
        pid = int(pidfile.read_text().strip() or 0)
        if pid and alive_portcullis(pid):
            leftover = pid
            os.kill(pid, signal.SIGTERM)
            for _ in range(150):
                if not alive_portcullis(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, "varnishtest %s failed:\n%s" % (
        script, out[-8000:])
    assert leftover is None, "portcullis pid %d still running after %s" % (
        leftover, script)
