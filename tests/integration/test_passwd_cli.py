"""`portcullis passwd -v / -D / -f`, the htpasswd-style file forms, run as
the real binary. The hashes it checks are made at run time by independent
tools (Debian's htpasswd and mkpasswd), its answers are compared with
`htpasswd -vb`, and the files it rewrites are read back byte by byte, by
`htpasswd -vb` and by the gateway itself."""

import json
import os
import secrets
import stat
import subprocess

import pytest

import gwtest
from conftest import free_port, make_config, portcullis_binary, upstream


def token():
    return secrets.token_urlsafe(9)


def passwd(*args, stdin=b""):
    p = subprocess.run([portcullis_binary(), "passwd"] + [str(a) for a in
                                                          args],
                       input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def verify(path, user, pw, *flags):
    return passwd("-v", path, *flags, user, stdin=pw.encode() + b"\n")


# user -> (how the line is made, the hash's prefix); every line made by a
# tool other than portcullis
MAKERS = {
    "ht-bcrypt": (lambda u, p: gwtest.htpasswd_line(u, p, "-B", "-C", "4"),
                  "$2y$04$"),
    "ht-apr1": (lambda u, p: gwtest.htpasswd_line(u, p, "-m"), "$apr1$"),
    "ht-sha1": (lambda u, p: gwtest.htpasswd_line(u, p, "-s"), "{SHA}"),
    "ht-sha512": (lambda u, p: gwtest.htpasswd_line(u, p, "-5"), "$6$"),
    "mk-sha512": (lambda u, p: u + ":" + gwtest.mkpasswd("sha512crypt", p),
                  "$6$"),
    "mk-yescrypt": (lambda u, p: u + ":" + gwtest.mkpasswd("yescrypt", p),
                    "$y$"),
}


class Users:
    """A file of MAKERS' users with the shapes an editor must keep: a
    comment, a blank line, a CRLF line, and a last line with no newline."""

    def __init__(self, path):
        self.path = path
        self.pw = {u: "pw " + token() for u in MAKERS}
        self.line = {}
        for user, (make, prefix) in MAKERS.items():
            self.line[user] = make(user, self.pw[user])
            assert self.line[user].startswith(user + ":" + prefix), \
                self.line[user]
        u = list(MAKERS)
        self.data = ("# portcullis test users\n\n"
                     + self.line[u[0]] + "\n"
                     + self.line[u[1]] + "\r\n"
                     + "# a comment between users\n"
                     + "".join(self.line[x] + "\n" for x in u[2:-1])
                     + "\n"
                     + self.line[u[-1]]).encode()
        path.write_bytes(self.data)
        os.chmod(path, 0o640)


@pytest.fixture
def users(tmp_path):
    return Users(tmp_path / "users.htpasswd")


def snapshot(path):
    st = os.lstat(path)
    return st.st_ino, st.st_mtime_ns, st.st_mode, path.read_bytes()


def gateway_check(tmp_path, path, **realm):
    """`portcullis -t` on a config with a realm on `path`: (rc, stderr);
    stderr says how many users the realm loaded."""
    cfg = make_config(free_port(), free_port(), {"app": upstream(free_port())},
                      [{"name": "p", "path": "/p/", "upstream": "app",
                        "realm": "r"}])
    cfg["realms"] = {"r": dict(htpasswd=str(path), **realm)}
    conf = tmp_path / "config.json"
    conf.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(conf)],
                       capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode("utf-8", "replace")


# ------------------------------------------------------------------ -v


@pytest.mark.parametrize("user", list(MAKERS))
def test_verify_agrees_with_htpasswd(users, user):
    right = users.pw[user]
    for pw, want in [(right, 0), (right[:-1] + "#", 3),
                     ("wrong-" + token(), 3), ("", 3)]:
        assert gwtest.htpasswd_verify(users.path, user, pw) == want, \
            "htpasswd -vb disagrees with the test (%s)" % user
        rc, out, err = verify(users.path, user, pw)
        assert rc == want, (user, pw == right, err)
        word = "correct" if want == 0 else "wrong"
        assert err == "portcullis passwd: password for %s is %s\n" % (
            user, word), err
        assert out == b""
        if pw:
            assert pw not in err
        assert users.line[user].split(":", 1)[1] not in err


def test_verify_reads_one_line(users):
    # once, not twice: the second line is not a confirmation
    user = "ht-apr1"
    rc, _, err = passwd("-v", users.path, user,
                        stdin=users.pw[user].encode() + b"\r\nother\n")
    assert rc == 0, err


def test_verify_unknown_user(users):
    rc, out, err = verify(users.path, "nobody", users.pw["ht-bcrypt"])
    assert rc == 3, err
    assert err == "portcullis passwd: no user nobody in %s\n" % users.path
    assert out == b""
    # user names are case-sensitive, as in htpasswd and the gateway
    rc, _, err = verify(users.path, "HT-BCRYPT", users.pw["ht-bcrypt"])
    assert rc == 3 and "no user HT-BCRYPT" in err, err


def test_verify_bad_file_names_file_and_line(tmp_path):
    good = gwtest.htpasswd_line("alice", "pw-a", "-m")
    bad = "bob:{SHA}Zm9vCg=="  # a SHA-1 digest is 20 bytes, not 4
    path = tmp_path / "bad.htpasswd"
    path.write_text("# users\n" + good + "\n" + bad + "\n")
    rc, out, err = verify(path, "alice", "pw-a")
    assert rc == 1, err
    assert err.startswith("portcullis passwd: %s: line 3: " % path), err
    assert "Zm9vCg" not in err and good.split(":")[1] not in err
    assert "password for" not in err and out == b""
    # the gateway refuses the same file on the same line
    grc, gerr = gateway_check(tmp_path, path)
    assert grc == 1 and "%s: line 3: " % path in gerr, gerr


def test_verify_missing_file(tmp_path):
    rc, _, err = verify(tmp_path / "nope", "alice", "pw")
    assert rc == 1
    assert "%s: No such file or directory" % (tmp_path / "nope") in err, err


def test_verify_plain_text_needs_P(tmp_path):
    # Plain-text lines load only in a realm with allow_plaintext, so -v
    # refuses the file as such a realm's default does, and -P reads it as
    # allow_plaintext does.
    pw = "a:" + token()
    path = tmp_path / "plain.htpasswd"
    path.write_text(gwtest.htpasswd_line("ann", "pw-ann", "-B", "-C", "4")
                    + "\nplain:{PLAIN}" + pw + "\n")
    rc, _, err = verify(path, "ann", "pw-ann")
    assert rc == 1, err
    assert "line 2: " in err and "allow_plaintext" in err and "-P" in err
    assert pw not in err
    assert gateway_check(tmp_path, path)[0] == 1
    assert verify(path, "plain", pw, "-P")[0] == 0
    assert verify(path, "plain", pw[:-1] + "#", "-P")[0] == 3
    assert verify(path, "ann", "pw-ann", "-P")[0] == 0
    assert gateway_check(tmp_path, path, allow_plaintext=True)[0] == 0


def test_verify_des_crypt_refused_as_the_gateway_does(tmp_path):
    line = gwtest.htpasswd_line("des", "pw-des", "-d")
    path = tmp_path / "des.htpasswd"
    path.write_text(line + "\n")
    assert gwtest.htpasswd_verify(path, "des", "pw-des") == 0
    rc, _, err = verify(path, "des", "pw-des")
    assert rc == 1 and "line 1: DES crypt hashes are not supported" in err, \
        err
    grc, gerr = gateway_check(tmp_path, path)
    assert grc == 1 and "DES crypt" in gerr, gerr


@pytest.mark.parametrize("args", [
    ["-v"], ["-v", "F"], ["-v", "F", "a", "b"], ["-v", "F", "-D", "F", "a"],
    ["-v", "F", "-f", "F", "a"], ["-v", "F", "-C", "5", "a"],
    ["-D", "F", "-C", "5", "a"], ["-P", "a"], ["-v", "F", "a:b"],
    ["-v", "F", ""], ["-v", "F", " a"], ["-x", "a"],
], ids=["no_file", "no_user", "two_users", "v_and_D", "v_and_f", "v_cost",
        "D_cost", "P_without_file", "colon_user", "empty_user",
        "space_user", "unknown_flag"])
def test_usage_errors(users, args):
    args = [str(users.path) if a == "F" else a for a in args]
    before = snapshot(users.path)
    rc, out, err = passwd(*args, stdin=b"pw-usage\n")
    assert rc == 2, (rc, err)
    assert err.strip() and out == b""
    assert "pw-usage" not in err
    assert snapshot(users.path) == before


# ------------------------------------------------------------------ -D


def test_delete_keeps_every_other_byte(tmp_path, users):
    # the CRLF line in the middle: its "\r\n" goes with it
    gone = "ht-apr1"
    line = users.line[gone].encode() + b"\r\n"
    assert users.data.count(line) == 1
    ino = os.lstat(users.path).st_ino
    rc, out, err = passwd("-D", users.path, gone)
    assert rc == 0, err
    assert err == "portcullis passwd: deleted %s from %s\n" % (
        gone, users.path)
    assert out == b""
    assert users.path.read_bytes() == users.data.replace(line, b"")
    st = os.lstat(users.path)
    assert stat.S_IMODE(st.st_mode) == 0o640 and stat.S_ISREG(st.st_mode)
    assert st.st_ino != ino, "not replaced by rename"
    assert sorted(os.listdir(tmp_path)) == ["users.htpasswd"], \
        "a temporary file was left behind"
    # read back by an independent parser, and by the gateway
    assert gwtest.htpasswd_verify(users.path, gone, users.pw[gone]) == 6
    for user in MAKERS:
        if user != gone:
            assert gwtest.htpasswd_verify(users.path, user,
                                          users.pw[user]) == 0, user
    assert verify(users.path, gone, users.pw[gone])[0] == 3
    rc, err = gateway_check(tmp_path, users.path)
    assert rc == 0 and 'realm "r": %d user(s) loaded' % (len(MAKERS) - 1) \
        in err, err


def test_delete_first_and_last_lines(users):
    # the last line has no newline: it goes alone, the newline before it
    # stays (as it was)
    u = list(MAKERS)
    data = users.data
    for user, line in [(u[-1], users.line[u[-1]].encode()),
                       (u[0], users.line[u[0]].encode() + b"\n")]:
        rc, _, err = passwd("-D", users.path, user)
        assert rc == 0, err
        assert data.count(line) == 1
        data = data.replace(line, b"")
        assert users.path.read_bytes() == data
    assert data.startswith(b"# portcullis test users\n\n%s\r\n# a comment"
                           % users.line[u[1]].encode())
    assert data.endswith(b"\n\n")


def test_delete_only_user_leaves_comments(tmp_path):
    path = tmp_path / "one"
    path.write_bytes(b"# only\n" + gwtest.htpasswd_line(
        "solo", "pw-solo", "-m").encode() + b"\n")
    assert passwd("-D", path, "solo")[0] == 0
    assert path.read_bytes() == b"# only\n"


def test_delete_unknown_user_leaves_file_untouched(users):
    before = snapshot(users.path)
    rc, out, err = passwd("-D", users.path, "nobody")
    assert rc == 3, err
    assert err == "portcullis passwd: no user nobody in %s\n" % users.path
    assert snapshot(users.path) == before
    assert sorted(os.listdir(users.path.parent)) == ["users.htpasswd"]


def test_delete_bad_file_leaves_it_untouched(tmp_path):
    path = tmp_path / "bad.htpasswd"
    path.write_text(gwtest.htpasswd_line("alice", "pw-a", "-m") + "\n"
                    + "alice:" + gwtest.openssl_passwd("-1", "pw-b") + "\n")
    before = snapshot(path)
    rc, _, err = passwd("-D", path, "alice")
    assert rc == 1, err
    assert "%s: line 2: user \"alice\" is already defined on line 1" % path \
        in err, err
    assert snapshot(path) == before
    assert sorted(os.listdir(tmp_path)) == ["bad.htpasswd"]


def test_delete_refuses_a_symlink(tmp_path, users):
    link = tmp_path / "link.htpasswd"
    link.symlink_to(users.path.name)
    before = snapshot(users.path)
    rc, _, err = passwd("-D", link, "ht-sha1")
    assert rc == 1, err
    assert "%s is a symbolic link" % link in err and str(users.path) in err
    assert os.path.islink(link)
    assert snapshot(users.path) == before
    # reading through a link is fine, as the gateway does
    assert verify(link, "ht-sha1", users.pw["ht-sha1"])[0] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_delete_keeps_owner_as_root(users):
    os.chown(users.path, 4321, 4322)
    assert passwd("-D", users.path, "mk-sha512")[0] == 0
    st = os.lstat(users.path)
    assert (st.st_uid, st.st_gid) == (4321, 4322)
    assert stat.S_IMODE(st.st_mode) == 0o640


def test_delete_seen_by_running_gateway(gateway, stub_factory, users):
    stub = stub_factory("slow", delay=0, body_size=16)
    gw = gateway({"app": upstream(stub.port)},
                 [{"name": "p", "path": "/p/", "upstream": "app",
                   "realm": "r"}],
                 realms={"r": {"htpasswd": str(users.path),
                               "max_failures": 0}})

    def status(user):
        r = gwtest.raw_request(gw.port, "GET", "/p/x", [
            ("Authorization", gwtest.basic_auth(user, users.pw[user]))])
        return r.status

    assert status("ht-bcrypt") == 200 and status("mk-yescrypt") == 200
    assert passwd("-D", users.path, "ht-bcrypt")[0] == 0
    gwtest.wait_until(lambda: status("ht-bcrypt") == 401, timeout=20,
                      what="the gateway to drop the deleted user")
    assert status("mk-yescrypt") == 200


# ------------------------------------------------------------------ -f


def test_set_adds_a_user_at_the_end(tmp_path, users):
    pw = "new " + token()
    rc, out, err = passwd("-f", users.path, "-C", "4", "newbie",
                          stdin=pw.encode() + b"\n")
    assert rc == 0, err
    assert err == "portcullis passwd: added newbie to %s\n" % users.path
    data = users.path.read_bytes()
    # the last line had no newline: it gets one, and the new line follows
    assert data.startswith(users.data + b"\nnewbie:$2y$04$"), data[-80:]
    assert data.endswith(b"\n") and data.count(b"newbie:") == 1
    assert gwtest.htpasswd_verify(users.path, "newbie", pw) == 0
    assert gwtest.htpasswd_verify(users.path, "ht-sha1",
                                  users.pw["ht-sha1"]) == 0
    assert stat.S_IMODE(os.lstat(users.path).st_mode) == 0o640
    rc, err = gateway_check(tmp_path, users.path)
    assert rc == 0 and 'realm "r": %d user(s) loaded' % (len(MAKERS) + 1) \
        in err, err


def test_set_changes_a_password_in_place(users):
    user = "ht-apr1"  # the CRLF line
    pw = "changed " + token()
    rc, _, err = passwd("-C", "4", "-f", users.path, user,
                        stdin=pw.encode() + b"\n")
    assert rc == 0, err
    assert "changed the password of %s" % user in err
    data = users.path.read_bytes()
    head, tail = users.data.split(users.line[user].encode())
    assert data.startswith(head + user.encode() + b":$2y$04$")
    assert data.endswith(tail) and tail.startswith(b"\r\n")
    assert len(data) == len(head) + len(user) + 1 + 60 + len(tail)
    assert gwtest.htpasswd_verify(users.path, user, pw) == 0
    assert gwtest.htpasswd_verify(users.path, user, users.pw[user]) == 3
    assert verify(users.path, user, pw)[0] == 0


def test_set_makes_a_missing_file(tmp_path):
    path = tmp_path / "fresh.htpasswd"
    pw = token()
    rc, _, err = passwd("-f", path, "-C", "4", "first",
                        stdin=pw.encode() + b"\n")
    assert rc == 0, err
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"first:$2y$04$")
    assert gwtest.htpasswd_verify(path, "first", pw) == 0
    assert sorted(os.listdir(tmp_path)) == ["fresh.htpasswd"]


def test_set_refuses_bad_password_and_symlink(tmp_path, users):
    before = snapshot(users.path)
    for stdin in [b"\n", b"in\x1bside\n", b""]:
        rc, _, err = passwd("-f", users.path, "-C", "4", "x", stdin=stdin)
        assert rc == 2, (stdin, err)
    link = tmp_path / "link"
    link.symlink_to(users.path)
    rc, _, err = passwd("-f", link, "-C", "4", "x", stdin=b"pw-link\n")
    assert rc == 1 and "symbolic link" in err, err
    assert snapshot(users.path) == before
