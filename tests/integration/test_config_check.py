"""`portcullis -t -c FILE`: exit 0 for a valid config; exit 1 with every
error on stderr, each naming its JSON path. The same config given to
`-c` alone must not start the gateway."""

import json
import os
import subprocess

import pytest

from conftest import REPO, free_port, make_config, portcullis_binary, upstream


def check(tmp_path, config):
    path = tmp_path / "config.json"
    if isinstance(config, str):
        path.write_text(config)
    else:
        path.write_text(json.dumps(config, indent=2))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, timeout=10)
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


def valid_config():
    cfg = make_config(
        free_port(), free_port(),
        {"prometheus": upstream(free_port(), keepalive=8,
                                connect_timeout="2s", read_timeout="3s"),
         "static": upstream(free_port())},
        [{"name": "prometheus", "path": "/prometheus/",
          "upstream": "prometheus"},
         {"name": "static", "path": "/static/", "upstream": "static",
          "strip_prefix": True, "max_body_size": "1k"}])
    return cfg


def test_valid_config_exits_0(tmp_path):
    rc, out, err = check(tmp_path, valid_config())
    assert rc == 0, "exit %d for a valid config; stderr:\n%s" % (rc, err)
    assert "error" not in err.lower(), err


def test_every_error_listed_by_path(tmp_path):
    cfg = valid_config()
    cfg["listeners"][0]["routes"][0]["upstream"] = "grafna"
    cfg["listeners"][0]["timeouts"]["header"] = "5 parsecs"
    cfg["listeners"][0]["max_header_size"] = "16q"
    cfg["upstreams"]["static"]["servers"] = ["127.0.0.1:99999"]
    cfg["listeners"][0]["routes"][1]["path"] = "static/"
    cfg["wrokers"] = 2
    rc, out, err = check(tmp_path, cfg)
    assert rc == 1, "exit %d; stderr:\n%s" % (rc, err)
    assert 'listeners[0].routes[0].upstream: no upstream named "grafna"' \
        in err, err
    for path in ["listeners[0].timeouts.header",
                 "listeners[0].max_header_size",
                 "upstreams.static.servers[0]",
                 "listeners[0].routes[1].path",
                 "wrokers"]:
        lines = [l for l in err.splitlines() if path + ":" in l]
        assert lines, "no error names %s; stderr:\n%s" % (path, err)
    assert len([l for l in err.splitlines() if l.strip()]) >= 6


@pytest.mark.parametrize("mutate,path", [
    (lambda c: c["listeners"][0]["routes"].append(
        dict(c["listeners"][0]["routes"][1])), "listeners[0].routes[2]"),
    (lambda c: c.update(workers=-1), "workers"),
    (lambda c: c["admin"].update(listen="127.0.0.1"), "admin.listen"),
    (lambda c: c["listeners"][0]["routes"][0].update(name="has space"),
     "listeners[0].routes[0].name"),
    (lambda c: c["listeners"][0]["routes"][1].update(max_body_size="lots"),
     "listeners[0].routes[1].max_body_size"),
    (lambda c: c["upstreams"]["prometheus"].update(read_timeout=5),
     "upstreams.prometheus.read_timeout"),
    (lambda c: c["upstreams"]["static"].update(servers=[]),
     "upstreams.static.servers"),
    (lambda c: c["listeners"][0]["routes"][1].update(stip_prefix=True),
     "listeners[0].routes[1].stip_prefix"),
], ids=["duplicate_route", "negative_workers", "listen_without_port",
        "bad_route_name", "bad_size", "duration_not_string", "no_servers",
        "unknown_key"])
def test_single_error_named(tmp_path, mutate, path):
    cfg = valid_config()
    mutate(cfg)
    rc, _, err = check(tmp_path, cfg)
    assert rc == 1, "exit %d for a config broken at %s; stderr:\n%s" % (
        rc, path, err)
    assert path in err, "stderr does not name %s:\n%s" % (path, err)


def test_not_json(tmp_path):
    rc, _, err = check(tmp_path, '{"workers": 2,,}')
    assert rc == 1
    assert err.strip(), "no error message for a file that is not JSON"


def test_missing_file(tmp_path):
    p = subprocess.run([portcullis_binary(), "-t", "-c",
                        str(tmp_path / "nope.json")],
                       capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"nope.json" in p.stderr, p.stderr


def test_invalid_config_does_not_start(tmp_path):
    cfg = valid_config()
    cfg["listeners"][0]["routes"][0]["upstream"] = "grafna"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.Popen([portcullis_binary(), "-c", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail("portcullis kept running with an invalid config")
    assert p.returncode == 1
    assert b"listeners[0].routes[0].upstream" in err, err


def test_example_config_is_valid(tmp_path):
    """The example is valid once its htpasswd file exists (its paths are
    relative to the working directory); without it, -t names the file."""
    example = REPO / "gateway" / "portcullis.example.json"
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(example)],
                       capture_output=True, timeout=10, cwd=tmp_path)
    assert p.returncode == 1
    assert b"realms.monitoring.htpasswd[0]: certs/monitoring.htpasswd: " \
        b"No such file or directory" in p.stderr, p.stderr
    (tmp_path / "certs").mkdir()
    line = subprocess.run([portcullis_binary(), "passwd", "-C", "4", "ops"],
                          input=b"a test password\n", capture_output=True,
                          timeout=10, check=True).stdout
    (tmp_path / "certs" / "monitoring.htpasswd").write_bytes(line)
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(example)],
                       capture_output=True, timeout=10, cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode(errors="replace")


def test_structure_files_and_paths_in_one_run(tmp_path):
    """Issue 16: -t named htpasswd and certificate problems only once the
    structure was right. Now one run lists a structural error beside every
    broken file of the parts that parsed: two htpasswd files of one realm,
    a missing one of another, two certificates, and the pid file's
    directory. The realm and certificate with their own structural error
    are not read (their error is already named)."""
    d = tmp_path
    (d / "plain").write_text("ops:{PLAIN}secret\n")  # no allow_plaintext
    (d / "nohash").write_text("dev:not-a-hash\n")
    (d / "notcert.pem").write_text("hello\n")
    cfg = valid_config()
    cfg["listeners"][0]["routes"][0]["upstream"] = "grafna"  # structural
    cfg["listeners"].append({
        "listen": "127.0.0.1:%d" % free_port(), "tls": True,
        "routes": [{"name": "t", "path": "/", "upstream": "static"}]})
    cfg["realms"] = {
        "two": {"htpasswd": [str(d / "plain"), str(d / "nohash")]},
        "gone": {"htpasswd": str(d / "missing")},
        "typo": {"htpasswd": str(d / "missing2"), "cache_ttl": "soon"},
    }
    cfg["tls"] = {"certificates": [
        {"cert": str(d / "absent.crt"), "key": str(d / "absent.key")},
        {"cert": str(d / "notcert.pem"), "key": str(d / "notcert.pem")},
        {"cert": str(d / "x.crt"), "key": 7},
    ]}
    cfg["pid_file"] = str(d / "no-such-dir" / "portcullis.pid")
    rc, out, err = check(tmp_path, cfg)
    assert rc == 1, err
    want = [
        'listeners[0].routes[0].upstream: no upstream named "grafna"',
        "realms.two.htpasswd[0]: %s: line 1: plain-text passwords need "
        '"allow_plaintext"' % (d / "plain"),
        "realms.two.htpasswd[1]: %s: line 1:" % (d / "nohash"),
        "realms.gone.htpasswd: %s: No such file or directory"
        % (d / "missing"),
        "realms.typo.cache_ttl: must be a duration",
        "tls.certificates[0]: %s: no such file" % (d / "absent.crt"),
        "tls.certificates[1]: %s: no certificate in the file"
        % (d / "notcert.pem"),
        "tls.certificates[2].key: must be a string",
        "pid_file: cannot make %s: directory %s: No such file or directory"
        % (d / "no-such-dir" / "portcullis.pid", d / "no-such-dir"),
    ]
    for w in want:
        assert w in err, "missing %r in:\n%s" % (w, err)
    # the realm and certificate already in error are not read as well
    assert "missing2" not in err, err
    assert "x.crt" not in err.replace("tls.certificates[2].key", ""), err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == len(want), "one line per error:\n%s" % err
    assert "configuration is valid" not in out


def test_access_log_and_pid_file_paths(tmp_path):
    for key, value, why in [
            ("pid_file", "run/portcullis.pid", "must be an absolute"),
            ("pid_file", "/tmp/", "names a directory"),
            ("access_log", "access.log", "must be an absolute"),
            ("access_log", 3, "must be true (stdout), false, or an "
                              "absolute file path")]:
        cfg = valid_config()
        cfg[key] = value
        rc, _, err = check(tmp_path, cfg)
        assert rc == 1 and "%s: %s" % (key, why) in err, (key, value, err)
    cfg = valid_config()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cfg["access_log"] = str(locked / "access.log")
    cfg["pid_file"] = str(tmp_path / "ok.pid")
    rc, out, err = check(tmp_path, cfg)
    if os.geteuid() == 0:
        # root writes anywhere: the path is fine
        assert rc == 0, err
    else:
        assert rc == 1 and "access_log: cannot make" in err, err
    cfg["access_log"] = str(tmp_path / "access.log")
    rc, out, err = check(tmp_path, cfg)
    assert rc == 0, err
    assert not (tmp_path / "access.log").exists(), "-t made the file"
    assert not (tmp_path / "ok.pid").exists(), "-t wrote the pid file"
