"""A start that fails at each stage after the config parsed -- a listener
or admin address taken, a pid_file or access_log that cannot be written,
a certificate or an htpasswd file missing -- exits 1 with one line naming
what was wrong, and frees what it had made: in the ASan+UBSan phase of
`make test` (PORTCULLIS_BIN is that build) LeakSanitizer reports any
allocation the teardown missed, and this test fails on it (issue 24,
item 8)."""

import json
import socket
import subprocess

import pytest

from conftest import SANITIZER_MARKS, free_port, portcullis_binary

import gwtest


@pytest.fixture
def taken():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def config(tmp_path, taken, case):
    users = tmp_path / "users"
    users.write_text(gwtest.htpasswd_line("u", "pw", "-B", "-C", "4") + "\n")
    cfg = {
        "workers": 2,
        "admin": {"listen": "127.0.0.1:%d" % free_port()},
        "upstreams": {"u": {"servers": ["127.0.0.1:9"]}},
        "listeners": [{"listen": "127.0.0.1:%d" % free_port(),
                       "routes": [{"name": "u", "path": "/",
                                   "upstream": "u", "realm": "r"}]}],
        "realms": {"r": {"htpasswd": str(users)}},
    }
    if case == "listener":
        cfg["listeners"][0]["listen"] = "127.0.0.1:%d" % taken
    elif case == "admin":
        cfg["admin"]["listen"] = "127.0.0.1:%d" % taken
    elif case == "pid_file":
        cfg["pid_file"] = str(tmp_path / "no" / "such" / "p.pid")
    elif case == "access_log":
        cfg["access_log"] = str(tmp_path / "no" / "such" / "a.log")
    elif case == "certificate":
        cfg["tls"] = {"certificates": [
            {"cert": str(tmp_path / "c.pem"), "key": str(tmp_path / "k.pem")}]}
        cfg["listeners"][0]["tls"] = True
    elif case == "htpasswd":
        cfg["realms"]["r"]["htpasswd"] = str(tmp_path / "missing")
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("case,want", [
    ("listener", "listeners[0].listen: cannot listen on"),
    ("admin", "admin.listen: cannot listen on"),
    ("pid_file", "pid_file: cannot write"),
    ("access_log", "access_log: cannot open"),
    ("certificate", "c.pem: no such file"),
    ("htpasswd", "realms.r.htpasswd:"),
])
def test_a_failed_start_says_why_and_leaks_nothing(tmp_path, taken, case,
                                                   want):
    r = subprocess.run([portcullis_binary(), "-c",
                        str(config(tmp_path, taken, case))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert want in r.stderr, r.stderr
    assert not [m for m in SANITIZER_MARKS if m in r.stderr], r.stderr
