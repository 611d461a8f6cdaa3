"""Basic authentication per route (contract: issue 5): 401 with the exact
challenge, 200 with the right password, routes without a realm stay open on
the same listener; what the upstream receives (no Authorization unless
pass_authorization, exactly one user header); the access log's "user";
the auth counters, exact; the cache (per realm, cache_ttl); credentials never logged; a realm without users
answers 503 and is not ready until a user is added to its file.

The upstream is tests/tools/stub_upstream.py, whose log holds every request
head it received. Hashes are made by Debian's htpasswd at run time."""

import base64
import secrets

import pytest

import gwtest
from conftest import upstream

STUB_BODY_SIZE = 64
STUB_BODY = bytes(range(STUB_BODY_SIZE))  # the stub's pattern, 0, 1, ...

REALM = "main"
USER_HEADER = "X-WEBAUTH-USER"


def password():
    return "pw-" + secrets.token_urlsafe(12)


class Users:
    """An htpasswd file of bcrypt (cost 4) users, made by htpasswd."""

    def __init__(self, path, **users):
        self.path = path
        self.pw = dict(users)
        lines = [gwtest.htpasswd_line(u, p, "-B", "-C", "4")
                 for u, p in users.items()]
        path.write_text("".join(l + "\n" for l in lines))


@pytest.fixture
def stub(stub_factory):
    return stub_factory("slow", delay=0, body_size=STUB_BODY_SIZE)


def start(gateway, stub, users_path, realm=None, **top):
    """A gateway with four routes to the stub on one listener: /open/ (no
    realm), /secure/ (realm main), /pass/ (pass_authorization) and /hdr/
    (user_header). The guard is off unless `realm` says otherwise."""
    r = {"htpasswd": str(users_path), "max_failures": 0}
    r.update(realm or {})
    return gateway(
        {"app": upstream(stub.port)},
        [{"name": "open", "path": "/open/", "upstream": "app"},
         {"name": "secure", "path": "/secure/", "upstream": "app",
          "realm": REALM},
         {"name": "pass", "path": "/pass/", "upstream": "app",
          "realm": REALM, "pass_authorization": True},
         {"name": "hdr", "path": "/hdr/", "upstream": "app", "realm": REALM,
          "user_header": USER_HEADER}],
        realms={REALM: r}, **top)


def get(gw, path, *headers):
    """GET path with exactly these (name, value) header fields."""
    return gwtest.raw_request(gw.port, "GET", path, list(headers))


def auth(user, pw):
    return ("Authorization", gwtest.basic_auth(user, pw))


def seen(stub, marker):
    """Request heads the upstream received whose request line has
    `marker` (a unique query string)."""
    return [e for e in stub.log() if marker in e["request_line"]]


def fields(entry, name):
    """Every value of header `name` (any case) in a stub log entry."""
    return [v for n, v in entry["headers"] if n.lower() == name.lower()]


def assert_401(r, realm=REALM):
    assert r.status == 401, r
    assert r.header_all("www-authenticate") == [
        'Basic realm="%s", charset="UTF-8"' % realm], r.headers
    assert r.body == b"401 Unauthorized\n"


def assert_proxied(r):
    assert r.status == 200, (r, r.body[:200])
    assert r.body == STUB_BODY
    assert r.header_all("www-authenticate") == []


def counters(gw):
    return gwtest.auth_counters(gw.metrics(), REALM)


def test_realm_route_requires_credentials_open_route_does_not(
        gateway, stub, tmp_path):
    users = Users(tmp_path / "users", alice=password(), bob=password())
    gw = start(gateway, stub, users.path)

    assert_proxied(get(gw, "/open/a?m=open"))
    assert_401(get(gw, "/secure/a?m=noauth"))
    assert_401(get(gw, "/pass/a?m=noauth-pass"))
    assert_401(get(gw, "/hdr/a?m=noauth-hdr"))
    assert_proxied(get(gw, "/secure/a?m=alice",
                       auth("alice", users.pw["alice"])))
    assert_proxied(get(gw, "/secure/a?m=bob", auth("bob", users.pw["bob"])))
    assert_401(get(gw, "/secure/a?m=wrong", auth("alice", password())))
    # another user's password
    assert_401(get(gw, "/secure/a?m=swapped", auth("alice", users.pw["bob"])))
    assert_401(get(gw, "/secure/a?m=nouser",
                   auth("mallory", users.pw["alice"])))
    # the open route is still open after all that, credentials or not
    assert_proxied(get(gw, "/open/a?m=open2", auth("alice", password())))

    for m in ["m=open", "m=alice", "m=bob", "m=open2"]:
        assert len(seen(stub, m + " ")) == 1, "upstream got %s %d times" % (
            m, len(seen(stub, m + " ")))
    for m in ["noauth", "wrong", "swapped", "nouser"]:
        assert seen(stub, m) == [], "a refused request (%s) reached the " \
            "upstream" % m
    assert len(stub.log()) == 4


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


# Authorization values that must get 401. The right password is inside
# where it can be, so a lenient parser would let the request through.
MALFORMED = {
    "other_scheme_right_creds": lambda pw: "Bearer " + _b64(
        b"alice:" + pw.encode()),
    "digest": lambda pw: 'Digest username="alice", realm="main", '
                         'nonce="abc", uri="/secure/", response="00"',
    "scheme_only": lambda pw: "Basic",
    "no_space_after_scheme": lambda pw: "Basic" + _b64(
        b"alice:" + pw.encode()),
    "not_base64": lambda pw: "Basic !!!*&^%$#@",
    "base64_without_colon": lambda pw: "Basic " + _b64(
        b"alice" + pw.encode()),
    "empty_value": lambda pw: "",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_authorization_is_401(gateway, stub, tmp_path, case):
    users = Users(tmp_path / "users", alice=password())
    gw = start(gateway, stub, users.path, workers=1)
    value = MALFORMED[case](users.pw["alice"])
    before = counters(gw)
    assert_401(get(gw, "/secure/x?m=malformed", ("Authorization", value)))
    assert seen(stub, "m=malformed") == []
    d = gwtest.counters_delta(before, counters(gw))
    assert (d["ok"], d["cached"], d["denied"], d["throttled"],
            d["unavailable"]) == (0, 0, 1, 0, 0), d
    # and the same user with the right value is fine
    assert_proxied(get(gw, "/secure/x?m=fine",
                       auth("alice", users.pw["alice"])))


def test_basic_scheme_is_case_insensitive(gateway, stub, tmp_path):
    # RFC 9110 section 11.1: the auth-scheme is a case-insensitive token
    # (nginx and Apache accept "basic" too).
    users = Users(tmp_path / "users", alice=password())
    gw = start(gateway, stub, users.path)
    token = gwtest.basic_auth("alice", users.pw["alice"])[len("Basic "):]
    for scheme in ["basic", "BASIC", "bAsIc"]:
        r = get(gw, "/secure/x?m=" + scheme, ("Authorization",
                                              scheme + " " + token))
        assert_proxied(r)


def test_authorization_not_forwarded_unless_pass_authorization(
        gateway, stub, tmp_path):
    users = Users(tmp_path / "users", alice=password())
    gw = start(gateway, stub, users.path)
    value = gwtest.basic_auth("alice", users.pw["alice"])

    assert_proxied(get(gw, "/secure/x?m=strip", ("Authorization", value)))
    [e] = seen(stub, "m=strip")
    assert fields(e, "authorization") == [], e["headers"]

    # the same value again (now from the cache) is stripped too
    assert_proxied(get(gw, "/secure/x?m=strip2", ("Authorization", value)))
    [e] = seen(stub, "m=strip2")
    assert fields(e, "authorization") == [], e["headers"]

    # user_header does not forward it either
    assert_proxied(get(gw, "/hdr/x?m=strip3", ("Authorization", value)))
    [e] = seen(stub, "m=strip3")
    assert fields(e, "authorization") == [], e["headers"]

    assert_proxied(get(gw, "/pass/x?m=pass", ("Authorization", value)))
    [e] = seen(stub, "m=pass")
    assert fields(e, "authorization") == [value], e["headers"]

    # an open route forwards what the client sent, as any other header
    other = gwtest.basic_auth("someone", "something")
    assert_proxied(get(gw, "/open/x?m=open", ("Authorization", other)))
    [e] = seen(stub, "m=open")
    assert fields(e, "authorization") == [other], e["headers"]


def test_user_header(gateway, stub, tmp_path):
    users = Users(tmp_path / "users", alice=password(), bob=password())
    gw = start(gateway, stub, users.path)

    assert_proxied(get(gw, "/hdr/x?m=plain", auth("alice", users.pw["alice"])))
    [e] = seen(stub, "m=plain")
    assert fields(e, USER_HEADER) == ["alice"], e["headers"]

    # client-sent copies, in any case, are removed; exactly one remains
    assert_proxied(get(gw, "/hdr/x?m=spoof", auth("bob", users.pw["bob"]),
                       ("X-WEBAUTH-USER", "mallory"),
                       ("x-webauth-user", "eve"),
                       ("X-WebAuth-User", "alice")))
    [e] = seen(stub, "m=spoof")
    assert fields(e, USER_HEADER) == ["bob"], e["headers"]

    # cached credentials get the header too
    assert_proxied(get(gw, "/hdr/x?m=again", ("x-webauth-user", "root"),
                       auth("bob", users.pw["bob"])))
    [e] = seen(stub, "m=again")
    assert fields(e, USER_HEADER) == ["bob"], e["headers"]

    # a refused request never reaches the upstream with or without one
    assert_401(get(gw, "/hdr/x?m=refused", auth("bob", password()),
                   ("X-WEBAUTH-USER", "bob")))
    assert seen(stub, "m=refused") == []

    # nor does a route without realm or user_header pass the client's copy:
    # an upstream trusting the header on one route trusts it on all
    assert_proxied(get(gw, "/open/x?m=open", ("X-WEBAUTH-USER", "mallory"),
                       ("x-webauth-user", "eve")))
    [e] = seen(stub, "m=open")
    assert fields(e, USER_HEADER) == [], e["headers"]


def test_duplicate_authorization_never_reaches_upstream(gateway, stub,
                                                       tmp_path):
    # Two Authorization fields: how the gateway answers is not in the
    # contract (RFC 9110 makes the field a singleton), but a request it lets
    # through must reach the upstream without any Authorization (none of
    # the two) and with only the verified user in the user header.
    users = Users(tmp_path / "users", alice=password())
    gw = start(gateway, stub, users.path)
    right = auth("alice", users.pw["alice"])
    other = ("Authorization", gwtest.basic_auth("mallory", password()))
    for i, (path, headers) in enumerate([
            ("/secure/x", [right, other]), ("/secure/x", [other, right]),
            ("/secure/x", [right, right]), ("/hdr/x", [right, other]),
            ("/hdr/x", [other, right])]):
        marker = "dup=%d" % i
        r = get(gw, "%s?%s" % (path, marker), *headers)
        assert r.status in (200, 400, 401), (i, r)
        entries = seen(stub, marker)
        assert len(entries) == (1 if r.status == 200 else 0), (i, r, entries)
        for e in entries:
            assert fields(e, "authorization") == [], (i, e["headers"])
            if path.startswith("/hdr/"):
                assert fields(e, USER_HEADER) == ["alice"], (i, e["headers"])


def test_cache_is_per_realm(gateway, stub, tmp_path):
    # the same Authorization value, cached in one realm, is checked afresh
    # in another whose file gives alice another password
    pw = password()
    main = Users(tmp_path / "main", alice=pw)
    other = Users(tmp_path / "other", alice=password())
    gw = gateway(
        {"app": upstream(stub.port)},
        [{"name": "main", "path": "/main/", "upstream": "app",
          "realm": "main"},
         {"name": "other", "path": "/other/", "upstream": "app",
          "realm": "other"}],
        realms={"main": {"htpasswd": str(main.path), "max_failures": 0},
                "other": {"htpasswd": str(other.path), "max_failures": 0}},
        workers=1)
    for i in range(3):
        assert_proxied(get(gw, "/main/x", auth("alice", pw)))
    assert_401(get(gw, "/other/x?leak=1", auth("alice", pw)), realm="other")
    assert seen(stub, "leak=1") == []
    assert_proxied(get(gw, "/other/x", auth("alice", other.pw["alice"])))
    samples = gw.metrics()
    m = gwtest.auth_counters(samples, "main")
    o = gwtest.auth_counters(samples, "other")
    assert (m["ok"], m["cached"], m["denied"]) == (1, 2, 0), m
    assert (o["ok"], o["cached"], o["denied"]) == (1, 0, 1), o


def test_access_log_user(gateway, stub, tmp_path):
    users = Users(tmp_path / "users", alice=password(), bob=password())
    gw = start(gateway, stub, users.path)
    sent = {
        "al-alice": ("/secure/x", [auth("alice", users.pw["alice"])], 200),
        "al-cached": ("/secure/x", [auth("alice", users.pw["alice"])], 200),
        "al-bob": ("/hdr/x", [auth("bob", users.pw["bob"])], 200),
        "al-open": ("/open/x", [auth("alice", users.pw["alice"])], 200),
        "al-wrong": ("/secure/x", [auth("alice", password())], 401),
        "al-none": ("/secure/x", [], 401),
    }
    for rid, (path, headers, status) in sent.items():
        r = get(gw, path, ("X-Request-Id", rid), *headers)
        assert r.status == status, (rid, r)

    def entries():
        got = {a.get("request_id"): a for a in gw.access_log()}
        return got if all(rid in got for rid in sent) else None
    got = gwtest.wait_until(entries, 5, what="access log entries")
    want_user = {"al-alice": "alice", "al-cached": "alice", "al-bob": "bob",
                 "al-open": None, "al-wrong": None, "al-none": None}
    for rid, user in want_user.items():
        a = got[rid]
        assert a.get("user") == user, (rid, a)
        assert int(a["status"]) == sent[rid][2], (rid, a)


def test_counters_ok_cached_denied(gateway, stub, tmp_path):
    # One worker: the verified-credential cache is per worker, and this
    # test counts exactly which request came from it.
    users = Users(tmp_path / "users", alice=password(), bob=password())
    gw = start(gateway, stub, users.path, workers=1)
    zero = {r: 0 for r in gwtest.AUTH_RESULTS}
    zero["verifications"] = 0
    assert counters(gw) == zero, "every series exists from the start at 0"

    def step(n, path, headers, status):
        before = counters(gw)
        for i in range(n):
            r = get(gw, path, *headers)
            assert r.status == status, (path, headers, i, r)
        return gwtest.counters_delta(before, counters(gw))

    def want(**kw):
        d = {k: 0 for k in zero}
        d.update(kw)
        return d

    alice = auth("alice", users.pw["alice"])
    assert step(1, "/secure/x", [alice], 200) == want(ok=1, verifications=1)
    assert step(3, "/secure/x", [alice], 200) == want(cached=3)
    # cached on another route of the same realm as well
    assert step(2, "/hdr/x", [alice], 200) == want(cached=2)
    # a cached user with a wrong password: hashed, denied, never cached
    for _ in range(3):
        assert step(1, "/secure/x", [auth("alice", password())], 401) \
            == want(denied=1, verifications=1)
    wrong = auth("alice", password())
    assert step(2, "/secure/x", [wrong], 401) == want(denied=2,
                                                      verifications=2)
    # no Authorization: denied, nothing to hash
    assert step(2, "/secure/x", [], 401) == want(denied=2)
    # routes without a realm are not counted
    assert step(3, "/open/x", [alice], 200) == want()
    # the cache still holds alice, and bob is verified once
    assert step(1, "/secure/x", [alice], 200) == want(cached=1)
    bob = auth("bob", users.pw["bob"])
    assert step(2, "/pass/x", [bob], 200) == want(ok=1, cached=1,
                                                  verifications=1)
    total = counters(gw)
    assert total == dict(zero, ok=2, cached=7, denied=7, verifications=7), \
        total


def test_cache_ttl_zero_verifies_every_request(gateway, stub, tmp_path):
    users = Users(tmp_path / "users", alice=password())
    gw = start(gateway, stub, users.path, {"cache_ttl": "0s"})
    alice = auth("alice", users.pw["alice"])
    for i in range(5):
        before = counters(gw)
        assert_proxied(get(gw, "/secure/x?i=%d" % i, alice))
        d = gwtest.counters_delta(before, counters(gw))
        assert d == dict({k: 0 for k in d}, ok=1, verifications=1), (i, d)
    c = counters(gw)
    assert (c["ok"], c["cached"], c["verifications"]) == (5, 0, 5), c


def test_cache_entry_expires_after_ttl(gateway, stub, tmp_path):
    import time
    users = Users(tmp_path / "users", alice=password())
    gw = start(gateway, stub, users.path, {"cache_ttl": "2s"}, workers=1)
    alice = auth("alice", users.pw["alice"])
    t_sent = time.monotonic()
    assert_proxied(get(gw, "/secure/x?ttl=1", alice))
    t_verified = time.monotonic()  # the entry was made before this
    assert_proxied(get(gw, "/secure/x?ttl=2", alice))
    if time.monotonic() < t_sent + 2.0:
        # answered before the entry could have expired: from the cache
        c = counters(gw)
        assert (c["ok"], c["cached"], c["verifications"]) == (1, 1, 1), c
    else:
        pytest.fail("the machine stalled for 2 s between two requests; "
                    "the cache hit could not be checked", pytrace=False)
    time.sleep(max(0.0, t_verified + 2.5 - time.monotonic()))
    before = counters(gw)
    assert_proxied(get(gw, "/secure/x?ttl=3", alice))
    d = gwtest.counters_delta(before, counters(gw))
    assert (d["ok"], d["cached"], d["verifications"]) == (1, 0, 1), \
        "the entry outlived cache_ttl 2s: %r" % d


def test_credentials_never_logged(gateway, stub, tmp_path):
    import signal
    users = Users(tmp_path / "users", alice=password(), bob=password())
    gw = start(gateway, stub, users.path)
    wrong, carol = password(), password()
    secret = {
        "alice's password": users.pw["alice"],
        "bob's password": users.pw["bob"],
        "carol's password": carol,
        "a wrong password": wrong,
        "alice's base64": gwtest.basic_auth("alice", users.pw["alice"])[6:],
        "bob's base64": gwtest.basic_auth("bob", users.pw["bob"])[6:],
        "the wrong base64": gwtest.basic_auth("alice", wrong)[6:],
        "the colonless base64": _b64(b"alice" + users.pw["alice"].encode()),
    }
    for line in users.path.read_text().splitlines():
        user, stored = line.split(":", 1)
        secret["the stored hash of " + user] = stored
    for path, headers, status in [
            ("/secure/a", [auth("alice", users.pw["alice"])], 200),
            ("/secure/a", [auth("alice", users.pw["alice"])], 200),
            ("/pass/a", [auth("bob", users.pw["bob"])], 200),
            ("/hdr/a", [auth("bob", users.pw["bob"])], 200),
            ("/secure/a", [auth("alice", wrong)], 401),
            ("/secure/a", [auth("bob", wrong)], 401),
            ("/secure/a", [auth("mallory", wrong)], 401),
            ("/secure/a", [("Authorization", "Basic "
                            + secret["the colonless base64"])], 401),
            ("/secure/a", [("Authorization", "Bearer "
                            + secret["alice's base64"])], 401),
            ("/secure/a", [], 401)]:
        assert get(gw, path, *headers).status == status, (path, headers)
    # the htpasswd file is re-read twice: by SIGHUP, then by the watcher
    gw.signal(signal.SIGHUP)
    line = gwtest.htpasswd_line("carol", carol, "-B", "-C", "4")
    secret["the stored hash of carol"] = line.split(":", 1)[1]
    with open(users.path, "a") as f:
        f.write(line + "\n")
    gwtest.wait_until(
        lambda: get(gw, "/secure/a", auth("carol", carol)).status == 200,
        10, 0.2, "the watcher to load carol")
    rc, killed = gw.stop()
    assert (rc, killed) == (0, False)
    access = gw.access_log_path.read_bytes()
    errors = gw.error_log_path.read_bytes()
    assert access.count(b"\n") >= 11, access[-2000:]
    for what, s in secret.items():
        assert s.encode() not in access, "%s is in the access log" % what
        assert s.encode() not in errors, "%s is in the error log:\n%s" % (
            what, errors[-3000:].decode(errors="replace"))


def test_realm_without_users_503_until_a_user_is_added(gateway, stub,
                                                       tmp_path):
    users_path = tmp_path / "users"
    users_path.write_text("")
    gw = start(gateway, stub, users_path)
    pw = password()
    body503 = b'503 Service Unavailable: realm "main" has no credentials\n'

    r = get(gw, "/secure/x?m=nousers", auth("alice", pw))
    assert r.status == 503, r
    assert r.body == body503
    assert seen(stub, "m=nousers") == []
    assert_proxied(get(gw, "/open/x?m=open"))
    c = counters(gw)
    assert (c["unavailable"], c["ok"], c["cached"], c["denied"],
            c["verifications"]) == (1, 0, 0, 0, 0), c

    want_ready = (503, b'not ready: realm "main" has no credentials '
                       b'loaded\n')
    gwtest.wait_until(lambda: gwtest.get(gw.admin_port, "/readyz")[::2]
                      == want_ready, 5,
                      what="/readyz to be %r" % (want_ready,))

    # a user appears in the file: the watcher loads it within seconds
    users_path.write_text(gwtest.htpasswd_line("alice", pw, "-B", "-C", "4")
                          + "\n")
    gwtest.wait_until(
        lambda: get(gw, "/secure/x?m=recovered", auth("alice", pw)).status
        == 200, 10, 0.2, "the realm to accept alice after the file changed")
    gwtest.wait_until(lambda: gwtest.get(gw.admin_port, "/readyz")[::2]
                      == (200, b"ready\n"), 5, what="/readyz to be ready")
    assert_401(get(gw, "/secure/x?m=wrong", auth("alice", password())))
    assert_proxied(get(gw, "/secure/x?m=after", auth("alice", pw)))
    assert len(seen(stub, "m=after")) == 1


def test_password_check_has_a_deadline(gateway, stub, tmp_path):
    # A request waiting for its password check gets 503 once
    # auth.check_timeout has passed, never an answer that does not come:
    # bcrypt at cost 12 takes about a quarter of a second (longer on a
    # busy machine: the verifier runs at nice +19), the deadline is 100 ms.
    # The check goes on, and its success is remembered: a later try with
    # the same credentials is answered from the cache.
    pw = password()
    path = tmp_path / "slow-users"
    path.write_text(gwtest.htpasswd_line("slow", pw, "-B", "-C", "12") + "\n")
    gw = start(gateway, stub, path, auth={"check_timeout": "100ms"})
    before = counters(gw)

    r = get(gw, "/secure/x?m=deadline", auth("slow", pw))
    assert r.status == 503, r
    assert r.body == b"503 Service Unavailable: password check timed out\n"
    assert r.header("retry-after") == "1", r.headers
    assert seen(stub, "m=deadline") == []
    d = gwtest.counters_delta(before, counters(gw))
    assert d["unavailable"] == 1, d
    gwtest.wait_until(lambda: "password check for GET /secure/x?m=deadline"
                      " timed out" in gw.error_log(), 10,
                      what="the timeout in the error log")

    gwtest.wait_until(
        lambda: get(gw, "/secure/x?m=later", auth("slow", pw)).status == 200,
        100, interval=0.5, what="the late check's result in the cache")
    d = gwtest.counters_delta(before, counters(gw))
    assert d["verifications"] == 1, d
