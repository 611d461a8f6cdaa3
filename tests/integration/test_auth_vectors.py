"""Password hash formats, judged against independent tools: one htpasswd
file holds one user per format, each made at run time by Debian's htpasswd,
`openssl passwd` or mkpasswd (plus two vectors from nginx's tests); for
every user, the right password, a wrong one and a one-character change get
200 or 401 from the gateway exactly when `htpasswd -vb FILE USER PW` exits
0 or not. Also `portcullis passwd` (its lines verify with htpasswd, its
refusals exit 2) and the config errors `portcullis -t -c` reports for bad
htpasswd files, which never quote a hash."""

import json
import re
import secrets
import subprocess

import pytest

import gwtest
from conftest import free_port, make_config, portcullis_binary, upstream

REALM = "vec"


def token():
    return secrets.token_urlsafe(9)


def _h(*flags):
    return lambda user, pw: gwtest.htpasswd_line(user, pw, *flags)


def _o(flag):
    return lambda user, pw: user + ":" + gwtest.openssl_passwd(flag, pw)


def _m(method, rounds=None):
    return lambda user, pw: user + ":" + gwtest.mkpasswd(method, pw, rounds)


def _fixed(stored):
    return lambda user, pw: user + ":" + stored


# user -> (how the line is made, how the password is made). The passwords
# vary on purpose: a ':' (only the first ':' of user-pass splits), a space,
# UTF-8, a leading '-', over bcrypt's 72 bytes.
RECIPES = {
    "htpasswd-apr1": (_h("-m"), lambda: "a:b:" + token()),
    "htpasswd-bcrypt": (_h("-B", "-C", "4"), lambda: "-" + token()),
    # bcrypt reads 72 bytes; a change past them is accepted by htpasswd -v,
    # and the gateway must agree
    "htpasswd-bcrypt-long": (_h("-B", "-C", "5"),
                             lambda: (token() * 10)[:80]),
    "htpasswd-sha1": (_h("-s"), token),
    "htpasswd-sha256": (_h("-2"), token),
    "htpasswd-sha256-rounds": (_h("-2", "-r", "1000"), token),
    "htpasswd-sha512": (_h("-5"), lambda: "with space " + token()),
    "htpasswd-sha512-rounds": (_h("-5", "-r", "20000"), token),
    "openssl-md5crypt": (_o("-1"), lambda: "p\u00e4ssw\u00f6rd-" + token()),
    "openssl-sha256crypt": (_o("-5"), token),
    "openssl-sha512crypt": (_o("-6"), lambda: "\u00fcber:" + token()),
    "openssl-apr1": (_o("-apr1"), token),
    "mkpasswd-yescrypt": (_m("yescrypt"), token),
    "mkpasswd-bcrypt-2b": (_m("bcrypt", 4), token),
    "mkpasswd-bcrypt-2a": (_m("bcrypt-a", 4), token),
    "mkpasswd-sha512crypt": (_m("sha512crypt", 5000), token),
    "mkpasswd-sha256crypt": (_m("sha256crypt"), token),
    "mkpasswd-md5crypt": (_m("md5crypt"), token),
    # nginx's tests (src/http/modules/ngx_http_auth_basic_module.c users)
    "nginx-apr1": (_fixed("$apr1$salt$Xxd1irWT9ycqoYxGFn4cb."),
                   lambda: "password"),
    "nginx-sha1": (_fixed("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
                   lambda: "password"),
}

# what each tool's hash must look like, so a tool silently falling back to
# another format cannot go unnoticed
PREFIX = {
    "htpasswd-apr1": "$apr1$", "htpasswd-bcrypt": "$2y$04$",
    "htpasswd-bcrypt-long": "$2y$05$", "htpasswd-sha1": "{SHA}",
    "htpasswd-sha256": "$5$", "htpasswd-sha256-rounds": "$5$rounds=1000$",
    "htpasswd-sha512": "$6$", "htpasswd-sha512-rounds": "$6$rounds=20000$",
    "openssl-md5crypt": "$1$", "openssl-sha256crypt": "$5$",
    "openssl-sha512crypt": "$6$", "openssl-apr1": "$apr1$",
    "mkpasswd-yescrypt": "$y$", "mkpasswd-bcrypt-2b": "$2b$",
    "mkpasswd-bcrypt-2a": "$2a$", "mkpasswd-sha512crypt": "$6$",
    "mkpasswd-sha256crypt": "$5$", "mkpasswd-md5crypt": "$1$",
    "nginx-apr1": "$apr1$", "nginx-sha1": "{SHA}",
}


class Vectors:
    def __init__(self, path):
        self.path = path
        self.pw = {}
        self.stored = {}
        lines = []
        for user, (make, pw) in RECIPES.items():
            p = pw()
            line = make(user, p)
            self.pw[user] = p
            self.stored[user] = line.split(":", 1)[1]
            assert self.stored[user].startswith(PREFIX[user]), line
            lines.append(line)
        path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    return Vectors(tmp_path_factory.mktemp("vectors") / "htpasswd")


@pytest.fixture
def stub(stub_factory):
    return stub_factory("slow", delay=0, body_size=16)


def start(gateway, stub, files, **realm):
    r = {"htpasswd": [str(f) for f in files], "max_failures": 0}
    r.update(realm)
    return gateway({"app": upstream(stub.port)},
                   [{"name": "open", "path": "/open/", "upstream": "app"},
                    {"name": "vec", "path": "/vec/", "upstream": "app",
                     "realm": REALM}],
                   realms={REALM: r})


def status(gw, user, pw):
    r = gwtest.raw_request(gw.port, "GET", "/vec/x", [
        ("Authorization", gwtest.basic_auth(user, pw))])
    assert r.status in (200, 401), (user, r, r.body[:200])
    if r.status == 401:
        assert r.header("www-authenticate") == \
            'Basic realm="vec", charset="UTF-8"'
    return r.status


def one_char_change(pw):
    """pw with its last character replaced by another one."""
    return pw[:-1] + ("x" if pw[-1] != "x" else "y")


@pytest.mark.parametrize("user", list(RECIPES))
def test_gateway_agrees_with_htpasswd(gateway, stub, vectors, user):
    gw = start(gateway, stub, [vectors.path])
    right = vectors.pw[user]
    candidates = [("wrong", "wrong-" + token()),
                  ("one char changed", one_char_change(right)),
                  ("first char changed", ("Q" if right[0] != "Q" else "R")
                   + right[1:]),
                  ("right", right),
                  ("right, again (cached)", right),
                  ("empty", "")]
    # htpasswd -v checks every format made here on this machine (apr-util
    # does apr1, {SHA} and bcrypt itself and hands $1$ $5$ $6$ $y$ to
    # libcrypt), so it is the oracle for every case
    disagree = []
    for what, pw in candidates:
        tool = gwtest.htpasswd_verify(vectors.path, user, pw)
        assert tool in (0, 3), "htpasswd -vb exit %d for %s" % (tool, what)
        if what.startswith("right"):
            assert tool == 0, "htpasswd -vb refuses the password its " \
                "maker was given (%s)" % user
        if what in ("wrong", "first char changed", "empty"):
            assert tool == 3, "htpasswd -vb accepts the %s password" % what
        got = status(gw, user, pw)
        if got != (200 if tool == 0 else 401):
            disagree.append("%s: htpasswd -vb exit %d, gateway %d"
                            % (what, tool, got))
    assert not disagree, "%s (%s):\n  %s" % (user, vectors.stored[user],
                                             "\n  ".join(disagree))


def test_bcrypt_long_password_change_is_past_72_bytes(vectors):
    # what the case above relies on: the changed byte is past bcrypt's 72,
    # and htpasswd accepts it
    pw = vectors.pw["htpasswd-bcrypt-long"]
    assert len(pw.encode()) == 80
    assert gwtest.htpasswd_verify(vectors.path, "htpasswd-bcrypt-long",
                                  one_char_change(pw)) == 0


def test_unknown_user_and_other_users_password(gateway, stub, vectors):
    gw = start(gateway, stub, [vectors.path])
    assert gwtest.htpasswd_verify(vectors.path, "nobody", "password") == 6
    assert status(gw, "nobody", "password") == 401
    # a password that is right for other users, not for this one
    assert gwtest.htpasswd_verify(vectors.path, "openssl-apr1",
                                  "password") == 3
    assert status(gw, "openssl-apr1", "password") == 401
    # user names are case-sensitive, as in htpasswd
    assert gwtest.htpasswd_verify(vectors.path, "NGINX-APR1",
                                  "password") == 6
    assert status(gw, "NGINX-APR1", "password") == 401
    assert status(gw, "nginx-apr1", "password") == 200


def test_two_files_one_realm(gateway, stub, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    pa, pb = token(), token()
    a.write_text(gwtest.htpasswd_line("ann", pa, "-m") + "\n")
    b.write_text(gwtest.htpasswd_line("ben", pb, "-B", "-C", "4") + "\n")
    gw = start(gateway, stub, [a, b])
    assert status(gw, "ann", pa) == 200
    assert status(gw, "ben", pb) == 200
    assert status(gw, "ann", pb) == 401
    assert status(gw, "ben", pa) == 401


def test_plain_text_with_allow_plaintext(gateway, stub, tmp_path):
    path = tmp_path / "plain"
    p1, p2 = token(), "a:" + token()
    made = gwtest.htpasswd_line("plain", p1, "-p")
    assert made == "plain:" + p1, made  # what -p is: the password verbatim
    path.write_text(made + "\n" + "brace:{PLAIN}" + p2 + "\n")
    gw = start(gateway, stub, [path], allow_plaintext=True)
    for user, right in [("plain", p1), ("brace", p2)]:
        for pw in [right, one_char_change(right), "wrong-" + token(), ""]:
            # htpasswd -v does not check plain text on Linux ("storing
            # passwords as plain text might just not work on this
            # platform", exit 3 for the right password too); when it
            # cannot, the oracle is the tool that made the line: the
            # stored text is the password
            tool = gwtest.htpasswd_verify(path, user, pw)
            if gwtest.htpasswd_verify(path, user, right) == 0:
                expect = tool == 0
            else:
                expect = pw == right
            assert status(gw, user, pw) == (200 if expect else 401), \
                (user, pw == right)


# ---------------------------------------------------------- portcullis passwd


def passwd(*args, stdin=b""):
    p = subprocess.run([portcullis_binary(), "passwd"] + list(args),
                       input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_passwd_line_verifies_with_htpasswd(tmp_path, gateway, stub):
    pw = "pw " + token()
    rc, out, err = passwd("alice", stdin=pw.encode() + b"\n")
    assert rc == 0, err
    assert re.fullmatch(rb"alice:\$2y\$10\$[./A-Za-z0-9]{53}\n", out), out
    path = tmp_path / "htpasswd"
    path.write_bytes(out)
    assert gwtest.htpasswd_verify(path, "alice", pw) == 0
    assert gwtest.htpasswd_verify(path, "alice", one_char_change(pw)) == 3
    assert pw.encode() not in out + err
    # and the gateway takes the line
    gw = start(gateway, stub, [path])
    assert status(gw, "alice", pw) == 200
    assert status(gw, "alice", one_char_change(pw)) == 401

    # a second run salts differently
    rc, out2, _ = passwd("alice", stdin=pw.encode() + b"\n")
    assert rc == 0 and out2 != out


@pytest.mark.parametrize("stdin_tail,cost", [
    (b"\n", "4"), (b"\r\n", "5"), (b"", "4"), (b"\nsecond line\n", "4")])
def test_passwd_reads_first_line(tmp_path, stdin_tail, cost):
    pw = token()
    rc, out, err = passwd("-C", cost, "bob", stdin=pw.encode() + stdin_tail)
    assert rc == 0, err
    assert re.fullmatch(rb"bob:\$2y\$0%s\$[./A-Za-z0-9]{53}\n"
                        % cost.encode(), out), out
    path = tmp_path / "htpasswd"
    path.write_bytes(out)
    assert gwtest.htpasswd_verify(path, "bob", pw) == 0
    if stdin_tail == b"\r\n":
        assert gwtest.htpasswd_verify(path, "bob", pw + "\r") == 3
    if stdin_tail.startswith(b"\nsecond"):
        assert gwtest.htpasswd_verify(path, "bob",
                                      pw + "\nsecond line") == 3


def test_passwd_removes_only_the_line_end(tmp_path):
    # Only the line's end ("\n" or "\r\n") is removed. A CR left inside
    # the password (in the line, or a lone CR before "\r\n") is refused
    # rather than cut away: RFC 7617 section 2 forbids control characters
    # in basic-auth credentials, so such a password could never log in.
    pw = token()
    rc, out, err = passwd("-C", "4", "cr", stdin=pw.encode() + b"\r\n")
    assert rc == 0, err
    path = tmp_path / "htpasswd"
    path.write_bytes(out)
    assert gwtest.htpasswd_verify(path, "cr", pw) == 0
    for bad in ["in\rside-" + token(), token() + "\r"]:
        rc, out, err = passwd("-C", "4", "cr", stdin=bad.encode() + b"\r\n")
        assert rc == 2, (bad, out, err)
        assert b"control character" in err, err
        assert b"$2" not in out, out
        assert bad.encode().strip() not in err


@pytest.mark.parametrize("args,stdin", [
    (["alice"], b""),
    (["alice"], b"\n"),
    (["alice"], b"\r\n"),
    (["al:ice"], b"pw-colon-user\n"),
    (["al\tice"], b"pw-tab-user\n"),
    (["al\x1bice"], b"pw-esc-user\n"),
    (["-C", "3", "alice"], b"pw-cost-3\n"),
    (["-C", "18", "alice"], b"pw-cost-18\n"),
], ids=["empty", "empty_line", "empty_crlf_line", "colon_in_user",
        "tab_in_user", "escape_in_user", "cost_3", "cost_18"])
def test_passwd_refuses(args, stdin):
    rc, out, err = passwd(*args, stdin=stdin)
    assert rc == 2, (rc, out, err)
    assert err.strip(), "exit 2 without a message on stderr"
    assert b"$2" not in out, out
    pw = stdin.strip()
    if pw:
        assert pw not in err, "the password is echoed in the message"


# ------------------------------------------------------- config errors (-t)


def check(tmp_path, files, routes_realm=REALM, **realm):
    cfg = make_config(
        free_port(), free_port(), {"app": upstream(free_port())},
        [{"name": "open", "path": "/open/", "upstream": "app"},
         {"name": "vec", "path": "/vec/", "upstream": "app",
          "realm": routes_realm}])
    r = {"htpasswd": [str(f) for f in files]}
    r.update(realm)
    cfg["realms"] = {REALM: r}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg, indent=2))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, timeout=10)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def good_line(user):
    return gwtest.htpasswd_line(user, token(), "-m")


def test_valid_realm_config_exits_0(tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text(good_line("alice") + "\n" + good_line("bob") + "\n")
    rc, err = check(tmp_path, [f], allow_plaintext=False, cache_ttl="1m",
                    max_failures=5, failure_window="30s")
    assert rc == 0, err


BAD_LINES = {
    # name: (the bad line, the text no message may contain, extra words)
    "no_colon": ("nocolon$apr1$salt$Xxd1irWT9ycqoYxGFn4cb.",
                 "Xxd1irWT9ycqoYxGFn4cb", None),
    "truncated_apr1": ("trunc:$apr1$salt$Xxd1irWT9ycqoYxGFn4c",
                       "Xxd1irWT9ycqoYxGFn4c", None),
    "short_sha1": ("short:{SHA}Zm9vCg==", "Zm9vCg", None),
    "plain_text": ("plain:plain-text-pw-not-allowed",
                   "plain-text-pw-not-allowed", "allow_plaintext"),
    "plain_brace": ("brace:{PLAIN}plain-text-pw-brace",
                    "plain-text-pw-brace", "allow_plaintext"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_htpasswd_line(tmp_path, case):
    bad, secret_text, words = BAD_LINES[case]
    lines = [good_line("alice"), good_line("bob"), bad, good_line("carol")]
    f = tmp_path / "htpasswd"
    f.write_text("\n".join(lines) + "\n")
    rc, err = check(tmp_path, [f])
    assert rc == 1, err
    want = "realms.vec.htpasswd[0]: %s: line 3: " % f
    hits = [l for l in err.splitlines() if want in l]
    assert hits, "no error says %r:\n%s" % (want, err)
    if words:
        assert words in hits[0], hits[0]
    assert secret_text not in err, err
    for line in lines:
        assert line.split(":", 1)[-1] not in err, "a hash is quoted:\n" + err


def test_bad_line_in_second_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text(good_line("alice") + "\n")
    b.write_text("bob:{SHA}Zm9vCg==\n")
    rc, err = check(tmp_path, [a, b])
    assert rc == 1, err
    assert "realms.vec.htpasswd[1]: %s: line 1: " % b in err, err
    assert "Zm9vCg" not in err


def test_plain_text_line_accepted_with_allow_plaintext(tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text("plain:plain-text-pw\nbrace:{PLAIN}plain-text-pw2\n")
    rc, err = check(tmp_path, [f], allow_plaintext=True)
    assert rc == 0, err


def test_missing_htpasswd_file(tmp_path):
    f = tmp_path / "no-such-htpasswd"
    rc, err = check(tmp_path, [f])
    assert rc == 1, err
    assert "realms.vec.htpasswd[0]: %s: No such file or directory" % f \
        in err, err


def test_route_names_unknown_realm(tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text(good_line("alice") + "\n")
    rc, err = check(tmp_path, [f], routes_realm="x")
    assert rc == 1, err
    assert 'listeners[0].routes[1].realm: no realm named "x"' in err, err


def test_user_header_without_realm(tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text(good_line("alice") + "\n")
    cfg = make_config(
        free_port(), free_port(), {"app": upstream(free_port())},
        [{"name": "open", "path": "/open/", "upstream": "app",
          "user_header": "X-WEBAUTH-USER"}],
        realms={REALM: {"htpasswd": str(f)}})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, timeout=10)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, err
    assert "listeners[0].routes[0]" in err, err
