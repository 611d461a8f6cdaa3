"""`make install DESTDIR=... PREFIX=...` into a temporary directory: the
exact files and modes for a package's layout (PREFIX=/usr) and for the
default /usr/local; binaries installed as built (nothing stripped) that
run; the installed example config passing `-t` with the installed binary
once the htpasswd file it names exists (and failing on it before); a unit
whose paths are the installed binary and config, that `systemd-analyze
verify` accepts (with its Documentation= man pages found in the tree),
with an exposure level of OK or better; man pages without groff warnings;
a sysusers.d line systemd-sysusers reads; a second install that keeps a
changed config; and `make uninstall` taking everything but the config.

The build is the one the suite tests (build/, or the tree of
PORTCULLIS_BIN), never reconfigured: make install only builds it."""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, REPO, portcullis_binary

LAYOUTS = {
    # PREFIX: (sbindir, bindir, sysconfdir, unitdir, mandir, docdir,
    #          sysusersdir)
    "/usr": ("usr/sbin", "usr/bin", "etc", "lib/systemd/system",
             "usr/share/man", "usr/share/doc/portcullis",
             "usr/lib/sysusers.d"),
    None: ("usr/local/sbin", "usr/local/bin", "usr/local/etc",
           "usr/local/lib/systemd/system", "usr/local/share/man",
           "usr/local/share/doc/portcullis", "usr/local/lib/sysusers.d"),
}


def build_dir():
    portcullis_binary()  # fails with how to build when it is missing
    return BIN.parent.parent


def make(target, destdir, prefix):
    argv = ["make", "-C", str(REPO), target, "DESTDIR=%s" % destdir,
            "BUILD=%s" % build_dir()]
    if prefix is not None:
        argv.append("PREFIX=%s" % prefix)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "PREFIX", "DESTDIR")}
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=100)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, "make %s: exit %d\n%s" % (target, p.returncode,
                                                        out)
    return out


def expected(prefix):
    sbin, bin_, etc, unit, man, doc, sysusers = LAYOUTS[prefix]
    return {
        "%s/portcullis" % sbin: 0o755,
        "%s/portcullis-cost-exporter" % bin_: 0o755,
        "%s/man8/portcullis.8" % man: 0o644,
        "%s/man5/portcullis.json.5" % man: 0o644,
        "%s/portcullis.service" % unit: 0o644,
        "%s/portcullis.conf" % sysusers: 0o644,
        "%s/logrotate.d/portcullis" % etc: 0o644,
        "%s/portcullis.example.json" % doc: 0o644,
        "%s/portcullis/portcullis.json" % etc: 0o644,
    }


def installed(destdir):
    """{relative path: mode} of every file (and symlink) under destdir."""
    out = {}
    for root, dirs, files in os.walk(destdir):
        for f in files:
            p = Path(root) / f
            out[str(p.relative_to(destdir))] = p.lstat().st_mode & 0o7777
    return out


def unit_settings(path):
    """[Service] and [Unit] settings of a unit file: {key: [values]}."""
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, _, v = line.partition("=")
        out.setdefault(k, []).append(v)
    return out


def run(argv, **kw):
    p = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, **kw)
    return (p.returncode, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace"))


def verify_unit(unit, destdir, mandir):
    """systemd-analyze verify of a copy of `unit` whose paths under the
    install prefix point into destdir (so ExecStart's binary is the
    installed one), with man looking in the installed mandir for the
    Documentation= pages. Returns (exit status, output)."""
    text = Path(unit).read_text()
    s = unit_settings(unit)
    exe = shlex.split(s["ExecStart"][0])[0]
    conf_dir = s["WorkingDirectory"][0]
    text = text.replace(exe, "%s%s" % (destdir, exe))
    text = text.replace(conf_dir, "%s%s" % (destdir, conf_dir))
    copy = Path(destdir).parent / ("verify-%s" % Path(destdir).name)
    copy.mkdir()
    (copy / "portcullis.service").write_text(text)
    env = dict(os.environ, MANPATH=str(mandir), SYSTEMD_LOG_COLOR="0")
    rc, out, err = run(["systemd-analyze", "verify",
                        copy / "portcullis.service"], env=env)
    return rc, out + err, copy / "portcullis.service"


@pytest.mark.parametrize("prefix", ["/usr", None], ids=["usr", "default"])
def test_install_layout(tmp_path, prefix):
    dest = tmp_path / "root"
    sbin, bin_, etc, unitdir, man, doc, sysusers = LAYOUTS[prefix]
    shown_prefix = prefix or "/usr/local"
    out = make("install", dest, prefix)

    # Exactly these files, with these modes.
    assert installed(dest) == expected(prefix), out

    # The binaries as built: not stripped, build ID and all.
    for rel, name in (("%s/portcullis" % sbin, "portcullis"),
                      ("%s/portcullis-cost-exporter" % bin_,
                       "portcullis-cost-exporter")):
        assert (dest / rel).read_bytes() == \
            (build_dir() / "bin" / name).read_bytes(), rel
    gw = dest / sbin / "portcullis"
    rc, vout, verr = run([gw, "--version"])
    assert rc == 0 and vout.startswith("portcullis "), (vout, verr)
    rc, vout, verr = run([dest / bin_ / "portcullis-cost-exporter",
                          "--version"])
    assert rc == 0 and "portcullis-cost-exporter" in vout, (vout, verr)

    # The example config, checked by the installed binary from the
    # config's directory, as the unit runs it: it names an htpasswd file
    # that does not exist yet, then passes once the file is there.
    conf_dir = dest / etc / "portcullis"
    conf = conf_dir / "portcullis.json"
    assert conf.read_bytes() == \
        (REPO / "gateway" / "portcullis.example.json").read_bytes()
    rc, tout, terr = run([gw, "-t", "-c", conf], cwd=conf_dir)
    assert rc == 1, (tout, terr)
    assert "certs/monitoring.htpasswd" in terr, terr
    rc, line, err = run([gw, "passwd", "-C", "4", "alice"],
                        input=b"install-test-password\n")
    assert rc == 0 and line.startswith("alice:$2"), (line, err)
    (conf_dir / "certs").mkdir()
    (conf_dir / "certs" / "monitoring.htpasswd").write_text(line)
    rc, tout, terr = run([gw, "-t", "-c", conf], cwd=conf_dir)
    assert rc == 0 and "configuration is valid" in tout, (tout, terr)

    # The unit names the installed binary and config, and no placeholder
    # of the template is left.
    unit = dest / unitdir / "portcullis.service"
    s = unit_settings(unit)
    sys_etc = "/" + etc
    want_exe = "%s/sbin/portcullis" % shown_prefix
    want_conf = "%s/portcullis/portcullis.json" % sys_etc
    assert s["Type"] == ["notify"]
    assert s["ExecStart"] == ["%s -c %s" % (want_exe, want_conf)]
    assert s["ExecStartPre"] == ["%s -t -c %s" % (want_exe, want_conf)]
    assert s["ExecReload"] == ["%s -t -c %s" % (want_exe, want_conf),
                               "/bin/kill -HUP $MAINPID"]
    assert s["WorkingDirectory"] == ["%s/portcullis" % sys_etc]
    assert s["WatchdogSec"] == ["30s"]
    assert not re.search(r"@[a-z_]+@", unit.read_text())
    assert (dest / want_exe.lstrip("/")).is_file()
    assert (dest / want_conf.lstrip("/")).is_file()

    # systemd-analyze verify: silent and 0; and it does fail on a unit
    # whose binary is missing (the check of the check).
    mandir = dest / man
    rc, vout, copy = verify_unit(unit, dest, mandir)
    assert rc == 0 and vout.strip() == "", vout
    broken = copy.with_name("broken.service")
    broken.write_text(copy.read_text().replace(
        "%s%s" % (dest, want_exe), "%s/nonexistent/portcullis" % dest))
    rc, bout, berr = run(["systemd-analyze", "verify", broken],
                         env=dict(os.environ, MANPATH=str(mandir)))
    assert rc != 0 and "nonexistent/portcullis" in bout + berr, bout + berr

    # The exposure score systemd-analyze gives the unit, offline.
    rc, sout, serr = run(["systemd-analyze", "security", "--offline=yes",
                          copy])
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", sout)
    assert m, sout + serr
    assert m.group(2) in ("SAFE", "OK"), m.group(0)

    # The installed man pages: found by name, formatted without warnings.
    for name, section in (("portcullis", "8"), ("portcullis.json", "5")):
        rc, where, err = run(["man", "-w", section, name],
                             env=dict(os.environ, MANPATH=str(mandir)))
        assert rc == 0 and where.strip() == str(
            mandir / ("man%s" % section) / ("%s.%s" % (name, section))), \
            (where, err)
        rc, _, err = run(["man", "--warnings=w", "-l", "-E", "UTF-8",
                          where.strip()],
                         env=dict(os.environ, MANWIDTH="80"))
        assert rc == 0 and err == "", err

    # The sysusers.d line makes the unit's user and group.
    rc, uout, uerr = run(["systemd-sysusers", "--dry-run",
                          "--root=%s" % (tmp_path / "sysusers-root"),
                          dest / sysusers / "portcullis.conf"])
    assert rc == 0, uout + uerr
    assert "Creating user 'portcullis'" in uout + uerr, uout + uerr
    assert "Creating group 'portcullis'" in uout + uerr, uout + uerr
    assert s["User"] == ["portcullis"] and s["Group"] == ["portcullis"]

    # The logrotate snippet reopens the log through the unit, with SIGUSR1.
    rot = (dest / etc / "logrotate.d" / "portcullis").read_text()
    assert "/var/log/portcullis/*.log" in rot
    assert "--signal=USR1 portcullis.service" in rot
    assert s["LogsDirectory"] == ["portcullis"]

    # A second install keeps a changed config and says so.
    conf.write_text(conf.read_text().replace('"workers": 0', '"workers": 3'))
    changed = conf.read_bytes()
    out = make("install", dest, prefix)
    assert conf.read_bytes() == changed
    assert "%s exists: kept" % conf in out, out
    files = installed(dest)
    assert "%s/portcullis/certs/monitoring.htpasswd" % etc in files

    # Uninstall takes everything install put there but the config.
    out = make("uninstall", dest, prefix)
    left = set(installed(dest))
    assert left == {"%s/portcullis/portcullis.json" % etc,
                    "%s/portcullis/certs/monitoring.htpasswd" % etc}, left
    assert conf.read_bytes() == changed
    shutil.rmtree(copy.parent)
