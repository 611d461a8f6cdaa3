"""Credentials change under a running gateway: an htpasswd file whose
mtime, size or inode changes is re-read within seconds and the realm's
verified-credential cache is dropped (the old password is refused, also on
connections and workers that had it cached); SIGHUP re-reads a file the
watcher cannot see change; a broken rewrite keeps the previous credentials
and the error log names the file and line."""

import os
import secrets
import signal
import time

import pytest

import gwtest
from conftest import upstream

REALM = "main"


def password():
    return "pw-" + secrets.token_urlsafe(12)


def bcrypt_line(user, pw):
    # bcrypt lines of one user all have the same length, so a rewrite
    # changes the size only when the test wants it to
    return gwtest.htpasswd_line(user, pw, "-B", "-C", "4") + "\n"


@pytest.fixture
def stub(stub_factory):
    return stub_factory("slow", delay=0, body_size=16)


def start(gateway, stub, path):
    return gateway({"app": upstream(stub.port)},
                   [{"name": "open", "path": "/open/", "upstream": "app"},
                    {"name": "secure", "path": "/secure/", "upstream": "app",
                     "realm": REALM}],
                   realms={REALM: {"htpasswd": str(path),
                                   "max_failures": 0}})


def status(gw, user, pw):
    """Status of one request on a new connection (either worker)."""
    return gwtest.raw_request(gw.port, "GET", "/secure/x", [
        ("Authorization", gwtest.basic_auth(user, pw))]).status


def statuses(gw, user, pw, n=10):
    return [status(gw, user, pw) for _ in range(n)]


KeptConn = gwtest.KeptConn


def wait_switched(gw, old, new, what):
    """Waits until the old password is refused and the new one let in."""
    def switched():
        return status(gw, "alice", old) == 401 and \
            status(gw, "alice", new) == 200
    gwtest.wait_until(switched, 10, 0.2, what)


def authenticate_everywhere(gw, pw):
    """Ten requests on new connections: the first is hashed, the rest come
    from the cache of whichever worker took them."""
    before = gwtest.auth_counters(gw.metrics(), REALM)
    assert statuses(gw, "alice", pw) == [200] * 10
    d = gwtest.counters_delta(before, gwtest.auth_counters(gw.metrics(),
                                                           REALM))
    assert d["ok"] + d["cached"] == 10 and 1 <= d["ok"] <= 2, d
    assert d["cached"] >= 8, d


@pytest.mark.parametrize("change", ["mtime", "size", "inode"])
def test_changed_file_is_reread_and_cache_dropped(gateway, stub, tmp_path,
                                                  change):
    path = tmp_path / "htpasswd"
    old, new = password(), password()
    path.write_text(bcrypt_line("alice", old))
    gw = start(gateway, stub, path)
    authenticate_everywhere(gw, old)
    kept = KeptConn(gw)
    try:
        assert kept.status("alice", old) == 200
        assert status(gw, "alice", new) == 401

        # exactly one of mtime, size, inode changes
        st = os.stat(path)
        text = bcrypt_line("alice", new)
        if change == "mtime":
            gwtest.write_file_in_place(path, text)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 10))
        elif change == "size":
            gwtest.write_file_in_place(path, text + bcrypt_line(
                "bob", password()))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            tmp = tmp_path / "htpasswd.new"
            tmp.write_text(text)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(tmp, path)
        st2 = os.stat(path)
        changed = {"mtime": st2.st_mtime_ns != st.st_mtime_ns,
                   "size": st2.st_size != st.st_size,
                   "inode": st2.st_ino != st.st_ino}
        assert changed == {k: k == change for k in changed}, changed

        wait_switched(gw, old, new, "the %s change to be picked up" % change)
        # on every worker, and on a connection whose worker had it cached
        assert statuses(gw, "alice", old) == [401] * 10
        assert kept.status("alice", old) == 401
        assert statuses(gw, "alice", new) == [200] * 10
    finally:
        kept.close()


def test_sighup_rereads_a_file_the_watcher_cannot_see(gateway, stub,
                                                      tmp_path):
    path = tmp_path / "htpasswd"
    old, new = password(), password()
    path.write_text(bcrypt_line("alice", old))
    gw = start(gateway, stub, path)
    authenticate_everywhere(gw, old)

    # same inode, same size, mtime set back: only a reload can see this
    st = os.stat(path)
    gwtest.write_file_in_place(path, bcrypt_line("alice", new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(path)
    assert (st2.st_ino, st2.st_size, st2.st_mtime_ns) == \
        (st.st_ino, st.st_size, st.st_mtime_ns)
    time.sleep(2.5)  # two watcher rounds and more
    assert status(gw, "alice", old) == 200, \
        "the watcher re-read a file whose mtime, size and inode are unchanged"
    assert status(gw, "alice", new) == 401

    gw.signal(signal.SIGHUP)
    wait_switched(gw, old, new, "SIGHUP to re-read the htpasswd file")
    assert statuses(gw, "alice", old) == [401] * 10
    assert statuses(gw, "alice", new) == [200] * 10
    assert gw.proc.alive()


def test_broken_rewrite_keeps_previous_credentials(gateway, stub, tmp_path):
    path = tmp_path / "htpasswd"
    old, new = password(), password()
    path.write_text(bcrypt_line("alice", old))
    gw = start(gateway, stub, path)
    authenticate_everywhere(gw, old)
    err_before = len(gw.error_log())

    # line 2 has no ':'; had line 1 been taken, `new` would work
    new_line = bcrypt_line("alice", new)
    broken = "mallory$apr1$salt$Xxd1irWT9ycqoYxGFn4cb."
    st = os.stat(path)
    gwtest.write_file_in_place(path, new_line + broken + "\n",
                               mtime=st.st_mtime + 10)

    def error_line(since):
        lines = [l for l in gw.error_log()[since:].splitlines()
                 if str(path) in l and "line 2" in l]
        return lines[0] if lines else None
    line = gwtest.wait_until(lambda: error_line(err_before), 10, 0.2,
                             "an error naming %s and line 2" % path)
    assert "error" in line.lower(), line
    assert gw.proc.alive()
    assert statuses(gw, "alice", old) == [200] * 10
    assert statuses(gw, "alice", new) == [401] * 10

    # SIGHUP with the file still broken: the same, and said again
    err_before = len(gw.error_log())
    gw.signal(signal.SIGHUP)
    gwtest.wait_until(lambda: error_line(err_before), 10, 0.2,
                      "SIGHUP to report %s line 2" % path)
    assert gw.proc.alive()
    assert statuses(gw, "alice", old) == [200] * 10
    assert statuses(gw, "alice", new) == [401] * 10

    log = gw.error_log()
    for text in ["Xxd1irWT9ycqoYxGFn4cb", new_line.split(":", 1)[1].strip(),
                 old, new]:
        assert text not in log, "the error log quotes %r" % text

    # fixed: the new credentials, and only those
    gwtest.write_file_in_place(path, new_line, mtime=st.st_mtime + 20)
    wait_switched(gw, old, new, "the fixed file to be picked up")
    assert statuses(gw, "alice", old) == [401] * 10
    assert statuses(gw, "alice", new) == [200] * 10


def test_reload_puts_a_route_behind_a_realm_and_back(gateway, stub,
                                                     tmp_path):
    import copy
    path = tmp_path / "htpasswd"
    pw = password()
    path.write_text(bcrypt_line("alice", pw))
    gw = start(gateway, stub, path)
    open_cfg = copy.deepcopy(gw.config)
    assert gwtest.raw_request(gw.port, "GET", "/open/x").status == 200

    closed = copy.deepcopy(open_cfg)
    closed["listeners"][0]["routes"][0]["realm"] = REALM
    gw.reload(closed)
    gwtest.wait_until(
        lambda: gwtest.raw_request(gw.port, "GET", "/open/x").status == 401,
        5, 0.1, "/open/ to need credentials after SIGHUP")
    r = gwtest.raw_request(gw.port, "GET", "/open/x?in=1", [
        ("Authorization", gwtest.basic_auth("alice", pw))])
    assert r.status == 200, r
    assert [e for e in stub.log() if "in=1" in e["request_line"]]

    gw.reload(open_cfg)
    gwtest.wait_until(
        lambda: gwtest.raw_request(gw.port, "GET", "/open/x").status == 200,
        5, 0.1, "/open/ to be open again after SIGHUP")
    assert gw.proc.alive()
