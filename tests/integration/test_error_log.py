"""The error log of a running gateway: every line starts with its time,
RFC 3339 in UTC with milliseconds, then "portcullis: LEVEL: ". Command-line
output (-t) stays plain: it is read by a person at a terminal, not
collected."""

import datetime
import re
import subprocess

from conftest import BIN, upstream

import gwtest

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z "
                  r"portcullis: (error|warn|info|debug): \S")


def test_every_line_has_its_time(gateway, nginx):
    before = datetime.datetime.now(datetime.timezone.utc)
    gw = gateway({"web": upstream(nginx.port)},
                 [{"name": "web", "path": "/", "upstream": "web"}])
    # a reload adds lines from the running daemon, not only start-up ones
    gw.reload(gw.config)
    text = gwtest.wait_until(
        lambda: (lambda t: t if "loaded" in t else None)(gw.error_log()),
        10, what="the reload's log line")
    lines = text.splitlines()
    assert len(lines) >= 2, lines
    after = datetime.datetime.now(datetime.timezone.utc)
    for line in lines:
        m = LINE.match(line)
        assert m, "no RFC 3339 time at the start: %r" % line
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f") \
            .replace(tzinfo=datetime.timezone.utc)
        slack = datetime.timedelta(seconds=1)
        assert before - slack <= t <= after + slack, (line, before, after)


def test_config_check_output_is_plain(tmp_path, nginx):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"listeners": 3}')
    p = subprocess.run([str(BIN), "-t", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0
    assert p.stderr.startswith("portcullis: "), p.stderr


def test_request_lines_carry_the_request_id(gateway):
    """An error-log line about a request names it as the access log does:
    "request ID: " after the level, and the upstream and server by name."""
    dead = gateway.free_port()  # nothing listens there
    gw = gateway({"dead": upstream(dead)},
                 [{"name": "r", "path": "/", "upstream": "dead"}])
    st, _, _ = gwtest.get(gw.port, "/mine", headers={
        "X-Request-Id": "ops-4711.a_b"})
    assert st == 502
    st, _, _ = gwtest.get(gw.port, "/theirs")
    assert st == 502
    log = gwtest.wait_until(lambda: (lambda l: l if len(l) == 2 else None)(
        gw.access_log()), 10, what="two access log lines")
    ids = {e["path"]: e["request_id"] for e in log}
    assert ids["/mine"] == "ops-4711.a_b"
    assert re.fullmatch(r"[0-9a-f]{32}", ids["/theirs"]), ids
    for path, rid in ids.items():
        want = re.compile(
            r"^\S+Z portcullis: warn: request %s: upstream dead server "
            r"127\.0\.0\.1:%d: connection refused before answering GET %s$"
            % (re.escape(rid), dead, re.escape(path)), re.M)
        gwtest.wait_until(lambda: want.search(gw.error_log()), 10,
                          what="the error line of %s" % path)
    # lines that are not about a request have no id
    start = [l for l in gw.error_log().splitlines() if "worker(s)" in l]
    assert start and "request " not in start[0], start
