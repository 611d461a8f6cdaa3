"""`portcullis -t -c FILE`: exit 0 for a valid config; exit 1 with every
error on stderr, each naming its JSON path. The same config given to
`-c` alone must not start the gateway."""

import json
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
