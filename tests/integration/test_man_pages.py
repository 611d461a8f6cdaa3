"""The man pages, docs/man/portcullis.8 and portcullis.json.5: groff
formats them without a single warning (`man --warnings=w`, every warning
category, not only the default "mac"), and portcullis.json(5) has an entry
for every key the config parser accepts, so a key added to
gateway/src/config.c without its documentation fails here."""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAN_DIR = REPO / "docs" / "man"
PAGES = ["portcullis.8", "portcullis.json.5"]
CONFIG_C = REPO / "gateway" / "src" / "config.c"


def man_warnings(path):
    """groff's warnings on `path` (stderr of man), and the formatted text.
    MANWIDTH fixes the line length: line-breaking warnings do not depend
    on the terminal the tests run in."""
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    p = subprocess.run(["man", "--warnings=w", "-l", "-E", "UTF-8",
                        str(path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stderr.decode(errors="replace"), p.stdout.decode()


def config_keys():
    """Every key name of gateway/src/config.c's key tables: the members
    of `struct cfg_key` arrays are written {"name", NULL}."""
    keys = set(re.findall(r'\{"([a-z_]+)", NULL\}', CONFIG_C.read_text()))
    # The tables as they are today, so a change of their shape that this
    # pattern no longer sees fails loudly instead of checking nothing.
    for k in ("workers", "listeners", "listen", "routes", "servers",
              "htpasswd", "common_name", "check_timeout", "header"):
        assert k in keys, "config.c's key tables not found (%s)" % k
    assert len(keys) >= 40, sorted(keys)
    return keys


def documented_keys(text):
    """Names tagged as entries in a man page: the first word of the line
    after each .TP, when it is a bold key (.B key or .BR key " (...)")."""
    lines = text.split("\n")
    out = set()
    for i, line in enumerate(lines[:-1]):
        if line.strip() != ".TP":
            continue
        m = re.match(r'^\.BR? +(?:\\%)?([a-z_]+)(?: |$)', lines[i + 1])
        if m:
            out.add(m.group(1))
    return out


@pytest.mark.parametrize("page", PAGES)
def test_page_formats_without_warnings(page):
    err, text = man_warnings(MAN_DIR / page)
    assert err == "", "groff warnings in %s:\n%s" % (page, err)
    assert "SEE ALSO" in text and "NAME" in text


def test_warnings_are_seen():
    """The check of the check: a page with an unknown macro and a bad
    escape does produce warnings on stderr."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        bad = Path(d) / "bad.1"
        bad.write_text(".TH BAD 1\n.SH NAME\nbad \\- a page\n.XY z\n"
                       "an escape \\q here\n")
        err, _ = man_warnings(bad)
    assert "macro 'XY' not defined" in err, err
    assert "escape character ignored" in err, err


def test_every_config_key_is_documented():
    page = (MAN_DIR / "portcullis.json.5").read_text()
    missing = sorted(config_keys() - documented_keys(page))
    assert not missing, ("keys gateway/src/config.c accepts but "
                         "portcullis.json(5) has no entry for: %s" % missing)


def test_documented_keys_are_seen():
    """The check of the check: the tag parser finds entries, and a key
    left out of a page is missed."""
    page = (MAN_DIR / "portcullis.json.5").read_text()
    found = documented_keys(page)
    assert {"workers", "self_signed", "root_redirect", "pid_file"} <= found
    cut = page.replace(".TP\n.BR max_uri_size ", ".TP\n.BR other ")
    assert "max_uri_size" not in documented_keys(cut)


def test_command_page_names_every_subcommand_and_signal():
    """portcullis(8) covers the command line main.c and its siblings
    offer, the signals, and the environment aws.c reads."""
    page = (MAN_DIR / "portcullis.8").read_text()
    _, text = man_warnings(MAN_DIR / "portcullis.8")
    for s in ("-c file", "-t", "-s reload|reopen|stop", "--version",
              "passwd [-C cost] user", "passwd -v file user",
              "passwd -D file user", "secret get name [key]"):
        assert s in text, s
    for sig in ("SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1"):
        assert sig in text, sig
    aws_c = (REPO / "gateway" / "src" / "aws.c").read_text()
    names = set(re.findall(r'env\("(AWS_[A-Z_]+)"\)', aws_c))
    names.discard("AWS_ENDPOINT_URL_COST_EXPLORER")  # the cost exporter's
    assert len(names) >= 10, names
    for name in sorted(names) + ["NOTIFY_SOCKET", "WATCHDOG_USEC"]:
        assert name in page, "%s is not in portcullis(8)" % name


def test_example_is_a_valid_config(tmp_path):
    """The EXAMPLE of portcullis.json(5) is JSON that `portcullis -t`
    accepts (its htpasswd file made beside it), every key in it is one
    the page documents."""
    import json
    from conftest import portcullis_binary
    page = (MAN_DIR / "portcullis.json.5").read_text()
    m = re.search(r"^\.SH EXAMPLE\n.*?^\.EX\n(.*?)^\.EE\n", page,
                  re.S | re.M)
    assert m, "no .EX/.EE block in the EXAMPLE section"
    text = m.group(1).replace("\\-", "-").replace("\\e", "\\")
    cfg = json.loads(text)

    def keys(v):
        if isinstance(v, dict):
            for k, x in v.items():
                yield k
                yield from keys(x)
        elif isinstance(v, list):
            for x in v:
                yield from keys(x)
    named = {k for k in keys(cfg)} - set(cfg.get("realms", {})) \
        - set(cfg.get("upstreams", {}))
    assert named <= documented_keys(page), named - documented_keys(page)

    # the files it writes go to this test's directory, not /run and /var
    for key in ("pid_file", "access_log"):
        if isinstance(cfg.get(key), str):
            cfg[key] = str(tmp_path / os.path.basename(cfg[key]))
    (tmp_path / "portcullis.json").write_text(json.dumps(cfg))
    line = subprocess.run([portcullis_binary(), "passwd", "-C", "4",
                           "alice"], input=b"man-page-example\n",
                          stdout=subprocess.PIPE, check=True,
                          timeout=60).stdout
    (tmp_path / "monitoring.htpasswd").write_bytes(line)
    p = subprocess.run([portcullis_binary(), "-t", "-c", "portcullis.json"],
                       cwd=tmp_path, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    assert "configuration is valid" in p.stdout.decode()
