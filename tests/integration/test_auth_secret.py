"""Basic-auth realms whose users come from AWS Secrets Manager (contract:
issue 9, second part): the gateway's own AWS client against
tests/tools/fake_aws.py, which checks every SigV4 signature with botocore.

A realm with "aws_secret" fetches the secret at start (without holding up
other routes), refreshes it every "secret_refresh" and on SIGHUP, takes a
rotated password at the next refresh, fails closed (503, /readyz) until a
first success, keeps the last good users through any failure (one error
line when failing starts, one info line when it ends), counts every refresh
in portcullis_secret_refresh_total, and never logs a credential.

Passwords are random test strings; hashes are made by Debian's htpasswd at
run time. The gateway sees only the AWS_* variables a test gives it.
Tests ask for fake_aws before gateway, so the gateway is stopped first."""

import json
import re
import secrets
import signal
import threading
import time
import urllib.request

import pytest

import gwtest
from conftest import upstream

REALM = "prom"
SECRET = "prometheus/prometheus-auth"
SM_GET = "secretsmanager.GetSecretValue"
REGION = "eu-west-1"
STATIC_ID = "AKIDTEST"
STATIC_SECRET = "fake-aws-static-secret-key-0123456789ab"

REFRESH = "portcullis_secret_refresh_total"
LAST_SUCCESS = "portcullis_secret_last_success_timestamp_seconds"
BODY_401 = b"401 Unauthorized\n"
CHALLENGE = 'Basic realm="%s", charset="UTF-8"' % REALM
BODY_503 = b'503 Service Unavailable: realm "%s" has no credentials\n' \
    % REALM.encode()
READY_503 = b'not ready: realm "%s" has no credentials loaded\n' \
    % REALM.encode()


def password():
    return "pw-" + secrets.token_urlsafe(12)


def user_secret(user, pw):
    """The {"username", "password"} form of a secret value."""
    return json.dumps({"username": user, "password": pw})


def htpasswd_secret(*lines):
    """The {"htpasswd": "..."} form of a secret value."""
    return json.dumps({"htpasswd": "\n".join(lines) + "\n"})


def fake_state(secrets_=None, **extra):
    s = {"region": REGION, "static_keys": {STATIC_ID: STATIC_SECRET},
         "secrets": dict(secrets_ or {})}
    s.update(extra)
    return s


def static_env(fake):
    """Long-term keys, the region, the fake as Secrets Manager, no IMDS."""
    return {"AWS_ACCESS_KEY_ID": STATIC_ID,
            "AWS_SECRET_ACCESS_KEY": STATIC_SECRET,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/",
            "AWS_EC2_METADATA_DISABLED": "true"}


def imds_env(fake):
    """No keys, no region: both come from the fake's IMDSv2."""
    return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/"}


@pytest.fixture
def stub(stub_factory):
    return stub_factory("slow", delay=0, body_size=16)


def start(gateway, stub, env, refresh="1s", htpasswd=None, secret=SECRET,
          **top):
    """A gateway with /open/ (no realm) and /secure/ (realm "prom", users
    from `secret`, and from the `htpasswd` file if given; guard off)."""
    realm = {"aws_secret": secret, "secret_refresh": refresh,
             "max_failures": 0}
    if htpasswd is not None:
        realm["htpasswd"] = str(htpasswd)
    return gateway({"app": upstream(stub.port)},
                   [{"name": "open", "path": "/open/", "upstream": "app"},
                    {"name": "secure", "path": "/secure/", "upstream": "app",
                     "realm": REALM}],
                   env=env, realms={REALM: realm}, **top)


def get(gw, path, user=None, pw=None, request_id=None):
    headers = []
    if request_id is not None:
        headers.append(("X-Request-Id", request_id))
    if user is not None:
        headers.append(("Authorization", gwtest.basic_auth(user, pw)))
    return gwtest.raw_request(gw.port, "GET", path, headers)


def status(gw, user, pw):
    """Status of one request on a new connection (either worker)."""
    return get(gw, "/secure/x", user, pw).status


def statuses(gw, user, pw, n=10):
    return [status(gw, user, pw) for _ in range(n)]


def assert_401(r):
    assert (r.status, r.body) == (401, BODY_401), r
    assert r.header_all("WWW-Authenticate") == [CHALLENGE], r.headers


def assert_503(r):
    assert (r.status, r.body) == (503, BODY_503), (r, r.body)


def readyz(gw):
    st, _, body = gwtest.get(gw.admin_port, "/readyz")
    return st, body


def refreshes(gw, result, secret=SECRET):
    """portcullis_secret_refresh_total{secret, result}; None if absent."""
    return gwtest.metric(gw.metrics(), REFRESH, secret=secret,
                         result=result)


def failed_refreshes(gw, secret=SECRET):
    """The sum of every refresh_total series of `secret` but "ok"."""
    return sum(v for l, v in gwtest.samples_named(gw.metrics(), REFRESH,
                                                  secret=secret)
               if l.get("result") != "ok")


def wait_refreshes(gw, result, at_least, timeout=15.0, secret=SECRET):
    return gwtest.wait_until(
        lambda: (refreshes(gw, result, secret) or 0) >= at_least and
        refreshes(gw, result, secret), timeout, 0.1,
        'refresh_total{result="%s"} >= %d' % (result, at_least))


def log_lines(gw, level, since=0, *needles):
    """Error-log lines "TIME portcullis: LEVEL: ..." after offset `since` that
    contain every needle."""
    return [l for l in gw.error_log()[since:].splitlines()
            if re.match(r"\S+Z portcullis: %s: " % level, l)
            and all(n in l for n in needles)]


def wait_log(gw, level, since, *needles, timeout=10.0):
    return gwtest.wait_until(
        lambda: log_lines(gw, level, since, *needles), timeout, 0.1,
        "a %s line after offset %d with %r in the error log"
        % (level, since, needles))


def wait_status(gw, user, pw, want, timeout=15.0):
    gwtest.wait_until(lambda: status(gw, user, pw) == want, timeout, 0.1,
                      "%s to get %d" % (user, want))


def wait_switched(gw, user, old, new, timeout=15.0, what="the rotation"):
    """Until the old password is refused and the new one let in."""
    gwtest.wait_until(lambda: status(gw, user, old) == 401 and
                      status(gw, user, new) == 200, timeout, 0.1, what)


def sm_calls(fake, secret=SECRET):
    return [e for e in fake.log() if e.get("target") == SM_GET
            and e.get("secret_id") == secret]


def secret_reads(fake, secret=SECRET):
    return fake.state()["secret_reads"].get(secret, 0)


# ------------------------------------------------------------ the tests


def test_username_password_secret(fake_aws, stub, gateway):
    pw = password()
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pw)}))
    # the first answer is held back 8 s: until it comes, the realm has no
    # users and answers 503, while the open route serves already
    fake.fault(SM_GET, "slow", count=1, delay=8)
    t0 = time.time()
    gw = start(gateway, stub, static_env(fake))
    assert_503(get(gw, "/secure/x?m=early", "alice", pw))
    r = get(gw, "/open/x?m=early")
    assert r.status == 200, r
    gwtest.wait_until(lambda: readyz(gw) == (503, READY_503), 5, 0.1,
                      "/readyz to say the realm has no credentials")

    wait_status(gw, "alice", pw, 200, timeout=20)
    gwtest.wait_until(lambda: readyz(gw) == (200, b"ready\n"), 5, 0.1,
                      "/readyz to be ready")
    r = get(gw, "/secure/x", "alice", pw, request_id="sr-ok")
    assert r.status == 200, r
    assert_401(get(gw, "/secure/x", "alice", password(),
                   request_id="sr-wrong"))
    assert_401(get(gw, "/secure/x?m=nouser", "bob", pw))
    assert_401(get(gw, "/secure/x?m=none"))

    assert refreshes(gw, "ok") >= 1
    last = gwtest.metric(gw.metrics(), LAST_SUCCESS, secret=SECRET)
    assert last is not None and t0 - 1 <= last <= time.time() + 1, last

    calls = sm_calls(fake)
    assert calls, "the gateway never called GetSecretValue"
    for c in calls:
        assert c["signature"] == "ok", c
        assert c["access_key_id"] == STATIC_ID, c
    assert any(c["status"] == 200 for c in calls), calls
    assert fake.state()["faults_applied"] == {SM_GET: 1}

    def logged():
        got = {a.get("request_id"): a for a in gw.access_log()}
        return got if "sr-ok" in got and "sr-wrong" in got else None
    got = gwtest.wait_until(logged, 5, what="access log entries")
    assert (got["sr-ok"].get("user"), int(got["sr-ok"]["status"])) == \
        ("alice", 200), got["sr-ok"]
    assert (got["sr-wrong"].get("user"), int(got["sr-wrong"]["status"])) \
        == (None, 401), got["sr-wrong"]


def test_htpasswd_secret_merges_with_file(fake_aws, stub, gateway,
                                          tmp_path):
    pw = {u: password() for u in ("bob", "carol", "dave")}
    bob = gwtest.htpasswd_line("bob", pw["bob"], "-B", "-C", "4")
    carol = gwtest.htpasswd_line("carol", pw["carol"], "-m")
    dave = gwtest.htpasswd_line("dave", pw["dave"], "-B", "-C", "4")
    users = tmp_path / "users"
    users.write_text(dave + "\n")
    fake = fake_aws(fake_state({SECRET: htpasswd_secret(bob, carol)}))
    gw = start(gateway, stub, static_env(fake), htpasswd=users)

    # the file's user needs no secret; the secret's users come soon after
    assert status(gw, "dave", pw["dave"]) == 200
    wait_status(gw, "bob", pw["bob"], 200)
    for u in ("bob", "carol", "dave"):
        assert statuses(gw, u, pw[u], 5) == [200] * 5, u
        assert_401(get(gw, "/secure/x", u, password()))

    # the file changes: its new user joins, the secret's users stay
    pw["erin"] = password()
    users.write_text(dave + "\n" + gwtest.htpasswd_line(
        "erin", pw["erin"], "-B", "-C", "4") + "\n")
    wait_status(gw, "erin", pw["erin"], 200)
    for u in ("bob", "carol", "dave", "erin"):
        assert statuses(gw, u, pw[u], 5) == [200] * 5, u

    # a secret naming a user of the file: that refresh fails, is logged,
    # and the previous users stay
    err_before = len(gw.error_log())
    bob_new, dave_other = password(), password()
    fake.put_secret(SECRET, htpasswd_secret(
        gwtest.htpasswd_line("bob", bob_new, "-B", "-C", "4"),
        gwtest.htpasswd_line("dave", dave_other, "-B", "-C", "4")))
    line = wait_log(gw, "error", err_before, "dave")[0]
    assert SECRET in line or REALM in line, line
    ok = refreshes(gw, "ok")
    failed = failed_refreshes(gw)
    gwtest.wait_until(lambda: failed_refreshes(gw) >= failed + 2, 15, 0.1,
                      "two more refreshes of the clashing secret to fail")
    assert refreshes(gw, "ok") == ok, \
        "a secret whose user is also in the file was counted as ok"
    assert statuses(gw, "bob", pw["bob"]) == [200] * 10
    assert statuses(gw, "bob", bob_new) == [401] * 10
    assert statuses(gw, "carol", pw["carol"], 5) == [200] * 5
    assert statuses(gw, "dave", pw["dave"], 5) == [200] * 5
    assert statuses(gw, "dave", dave_other, 5) == [401] * 5

    # fixed: the new secret's users and the file's, and only those
    fake.put_secret(SECRET, htpasswd_secret(
        gwtest.htpasswd_line("bob", bob_new, "-B", "-C", "4")))
    wait_switched(gw, "bob", pw["bob"], bob_new)
    assert statuses(gw, "bob", bob_new) == [200] * 10
    assert statuses(gw, "carol", pw["carol"], 5) == [401] * 5
    assert statuses(gw, "dave", pw["dave"], 5) == [200] * 5


def test_plain_text_in_secret_needs_allow_plaintext(fake_aws, stub,
                                                    gateway):
    pw = password()
    fake = fake_aws(fake_state({SECRET: htpasswd_secret(
        "eve:{PLAIN}" + pw)}))
    gw = start(gateway, stub, static_env(fake), refresh="1s")
    gwtest.wait_until(lambda: failed_refreshes(gw) >= 2, 15, 0.1,
                      "two refreshes of the plain-text secret to fail")
    assert refreshes(gw, "ok") in (None, 0)
    assert_503(get(gw, "/secure/x", "eve", pw))
    line = wait_log(gw, "error", 0, SECRET)[0]
    assert "allow_plaintext" in line, line
    assert pw not in gw.error_log()

    # the same secret in a realm that allows plain text
    cfg = json.loads(json.dumps(gw.config))
    cfg["realms"][REALM]["allow_plaintext"] = True
    gw.reload(cfg)
    wait_status(gw, "eve", pw, 200)
    assert_401(get(gw, "/secure/x", "eve", password()))
    assert pw not in gw.error_log()


def config_check(tmp_path, realm):
    """(exit status, stderr) of `portcullis -t` on a config whose realm
    "prom" is `realm`."""
    import subprocess
    from conftest import make_config, portcullis_binary
    cfg = make_config(1, 2, {"app": upstream(3)},
                      [{"name": "s", "path": "/", "upstream": "app",
                        "realm": REALM}], realms={REALM: realm})
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(f)],
                       capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode(errors="replace")


@pytest.mark.parametrize("realm,path", [
    ({"aws_secret": SECRET, "secret_refresh": "0s"},
     "realms.prom.secret_refresh"),
    ({"aws_secret": SECRET, "secret_refresh": "999ms"},
     "realms.prom.secret_refresh"),
    ({"aws_secret": SECRET, "secret_refresh": "25h"},
     "realms.prom.secret_refresh"),
    ({"aws_secret": SECRET, "secret_refresh": "soon"},
     "realms.prom.secret_refresh"),
    ({"aws_secret": ""}, "realms.prom.aws_secret"),
    ({"aws_secret": 7}, "realms.prom.aws_secret"),
    ({"max_failures": 0}, "realms.prom"),
], ids=["refresh-0s", "refresh-999ms", "refresh-25h", "refresh-word",
        "secret-empty", "secret-number", "neither"])
def test_config_check_rejects(tmp_path, realm, path):
    rc, err = config_check(tmp_path, realm)
    assert rc == 1, (rc, err)
    assert path in err, err


@pytest.mark.parametrize("refresh", ["1s", "5m", "1d", "24h", None])
def test_config_check_accepts(tmp_path, refresh):
    realm = {"aws_secret": SECRET}
    if refresh is not None:
        realm["secret_refresh"] = refresh
    rc, err = config_check(tmp_path, realm)
    assert rc == 0, (rc, err)


KeptConn = gwtest.KeptConn


def test_rotation_at_next_refresh(fake_aws, stub, gateway):
    old, new = password(), password()
    fake = fake_aws(fake_state({SECRET: user_secret("alice", old)}))
    gw = start(gateway, stub, static_env(fake), refresh="1s")
    wait_status(gw, "alice", old, 200)
    assert statuses(gw, "alice", old) == [200] * 10  # cached everywhere
    kept = KeptConn(gw)
    try:
        assert kept.status("alice", old) == 200
        fake.put_secret(SECRET, user_secret("alice", new))
        wait_switched(gw, "alice", old, new)
        assert statuses(gw, "alice", old) == [401] * 10
        assert statuses(gw, "alice", new) == [200] * 10
        # the worker that had the old password cached dropped it
        assert kept.status("alice", old) == 401
        assert kept.status("alice", new) == 200
    finally:
        kept.close()
    for c in sm_calls(fake):
        assert c["signature"] == "ok", c


def test_rotations_under_load(fake_aws, stub, gateway):
    """Credential sets swapped every refresh while four clients keep both
    workers and the verifier busy: every answer is 200 or 401, and the
    last value put is the one that holds."""
    pws = [password(), password()]
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pws[0])}))
    gw = start(gateway, stub, static_env(fake), refresh="1s")
    wait_status(gw, "alice", pws[0], 200)
    seen, problems = [], []
    stop = threading.Event()

    def client(i):
        conn = None
        try:
            while not stop.is_set():
                pw = pws[i % 2]
                if conn is None or i >= 2:  # two keep-alive, two not
                    if conn is not None:
                        conn.close()
                    conn = KeptConn(gw)
                seen.append(conn.status("alice", pw))
        except Exception as e:  # reported by the main thread
            problems.append("client %d: %r" % (i, e))
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        ok = refreshes(gw, "ok")
        for n in range(8):
            fake.put_secret(SECRET, user_secret("alice", pws[(n + 1) % 2]))
            wait_refreshes(gw, "ok", ok + 1)
            ok = refreshes(gw, "ok")
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not problems, problems
    assert len(seen) > 100, len(seen)
    assert set(seen) <= {200, 401}, sorted(set(seen))
    assert seen.count(200) and seen.count(401)
    assert gw.proc.alive()
    # the last put was pws[0]
    wait_switched(gw, "alice", pws[1], pws[0])
    assert statuses(gw, "alice", pws[0]) == [200] * 10
    assert statuses(gw, "alice", pws[1]) == [401] * 10


def test_rotation_on_sighup_without_a_503_window(fake_aws, stub, gateway):
    old, new = password(), password()
    fake = fake_aws(fake_state({SECRET: user_secret("alice", old)}))
    gw = start(gateway, stub, static_env(fake), refresh="1h")
    wait_status(gw, "alice", old, 200)
    reads = secret_reads(fake)
    assert reads >= 1

    fake.put_secret(SECRET, user_secret("alice", new))
    # no refresh is due for most of an hour: still the old password
    for _ in range(2):
        assert statuses(gw, "alice", old, 5) == [200] * 5
        assert statuses(gw, "alice", new, 5) == [401] * 5
        time.sleep(1.5)
    assert secret_reads(fake) == reads

    # the reload's fetch is held back 3 s: the old users must serve
    # throughout, never a 503
    fake.fault(SM_GET, "slow", count=1, delay=3)
    seen = {"old": [], "new": []}
    problems = []
    stop = threading.Event()

    def poll():
        try:
            while not stop.is_set():
                seen["old"].append(status(gw, "alice", old))
                seen["new"].append(status(gw, "alice", new))
        except Exception as e:  # reported by the main thread
            problems.append(repr(e))

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        n_before = len(seen["old"])
        gw.signal(signal.SIGHUP)
        wait_switched(gw, "alice", old, new, timeout=20,
                      what="SIGHUP to fetch the rotated secret")
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(15)
    assert not problems, problems
    assert not t.is_alive()
    assert 503 not in seen["old"] + seen["new"], \
        "the realm answered 503 during the reload: %r" % seen
    assert set(seen["old"] + seen["new"]) <= {200, 401}, seen
    # while the reload's fetch was held, the old password still worked
    assert 200 in seen["old"][n_before:], seen["old"][n_before:]
    assert fake.state()["faults_applied"] == {SM_GET: 1}
    assert secret_reads(fake) >= reads + 1
    assert statuses(gw, "alice", old) == [401] * 10
    assert statuses(gw, "alice", new) == [200] * 10


def test_not_found_fails_closed_until_created(fake_aws, stub, gateway):
    pw = password()
    fake = fake_aws(fake_state({}))
    gw = start(gateway, stub, static_env(fake), refresh="5s")
    first = wait_refreshes(gw, "not_found", 1)
    assert_503(get(gw, "/secure/x", "alice", pw))
    assert_503(get(gw, "/secure/x"))
    r = get(gw, "/open/x")
    assert r.status == 200, r
    gwtest.wait_until(lambda: readyz(gw) == (503, READY_503), 5, 0.1,
                      "/readyz to be %r" % READY_503)
    # retried (backoff from 1 s), and counted each time
    wait_refreshes(gw, "not_found", first + 2, timeout=20)
    assert refreshes(gw, "ok") in (None, 0)
    assert gwtest.metric(gw.metrics(), LAST_SUCCESS, secret=SECRET) == 0
    c = gwtest.auth_counters(gw.metrics(), REALM)
    assert (c["unavailable"], c["ok"], c["denied"]) == (2, 0, 0), c
    assert log_lines(gw, "error", 0, SECRET), gw.error_log()
    assert [e["status"] for e in sm_calls(fake)] and \
        all(e["signature"] == "ok" and e["error_type"] ==
            "ResourceNotFoundException" for e in sm_calls(fake))

    fake.put_secret(SECRET, user_secret("alice", pw))
    wait_status(gw, "alice", pw, 200, timeout=20)
    gwtest.wait_until(lambda: readyz(gw) == (200, b"ready\n"), 5, 0.1,
                      "/readyz to be ready")
    assert_401(get(gw, "/secure/x", "alice", password()))
    assert refreshes(gw, "ok") >= 1
    assert gwtest.metric(gw.metrics(), LAST_SUCCESS, secret=SECRET) > 0


@pytest.mark.parametrize("mode,result", [
    ("error500", "server_error"), ("throttle", "throttled"),
    ("down", "network"), ("denied", "denied")])
def test_failures_keep_last_good(fake_aws, stub, gateway, mode, result):
    pw = password()
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pw)}))
    gw = start(gateway, stub, static_env(fake), refresh="1s")
    wait_status(gw, "alice", pw, 200)
    wait_refreshes(gw, "ok", 1)
    err_before = len(gw.error_log())

    fake.fault(SM_GET, mode, count=-1)
    first = wait_refreshes(gw, result, 1)
    ok = refreshes(gw, "ok")
    wait_refreshes(gw, result, first + 3, timeout=20)
    assert refreshes(gw, "ok") == ok
    assert statuses(gw, "alice", pw) == [200] * 10
    assert_401(get(gw, "/secure/x", "alice", password()))
    assert readyz(gw) == (200, b"ready\n")
    line = wait_log(gw, "error", err_before, SECRET)[0]
    assert pw not in line and STATIC_SECRET not in line, line

    fake.clear_faults()
    recovered = wait_log(gw, "info", err_before, SECRET, "recover",
                         timeout=15)
    assert len(recovered) == 1, recovered
    wait_refreshes(gw, "ok", ok + 2)
    # the refresh thread wrote the recovery after every failure's lines:
    # one error line for the whole run of failures, one info line after
    errors = log_lines(gw, "error", err_before, SECRET)
    assert len(errors) == 1, "%d error lines for one failing run:\n%s" % (
        len(errors), "\n".join(errors))
    assert len(log_lines(gw, "info", err_before, SECRET, "recover")) == 1
    assert statuses(gw, "alice", pw) == [200] * 10
    # a faulted answer comes before the SecretId is read: no secret_id
    calls = [e for e in fake.log() if e.get("target") == SM_GET]
    faulted = [c for c in calls if c["fault"] == mode]
    assert len(faulted) >= 4, faulted
    if mode != "down":  # "down" drops the request before its signature
        assert all(c["signature"] == "ok" for c in calls), calls


def test_deleted_secret_keeps_last_good(fake_aws, stub, gateway):
    pw = password()
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pw)}))
    gw = start(gateway, stub, static_env(fake), refresh="1s")
    wait_status(gw, "alice", pw, 200)
    err_before = len(gw.error_log())
    fake.delete_secret(SECRET)
    first = wait_refreshes(gw, "not_found", 1)
    wait_refreshes(gw, "not_found", first + 2)
    assert statuses(gw, "alice", pw) == [200] * 10
    assert readyz(gw) == (200, b"ready\n")
    wait_log(gw, "error", err_before, SECRET)
    # created again with another password: that one, and only that one
    new = password()
    fake.put_secret(SECRET, user_secret("alice", new))
    wait_switched(gw, "alice", pw, new)
    wait_log(gw, "info", err_before, SECRET, "recover")


def test_two_realms_one_secret_and_a_reload_to_another(fake_aws, stub,
                                                       gateway, tmp_path):
    pw, other_pw, file_pw = password(), password(), password()
    other = "team/other-auth"
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pw),
                                other: user_secret("olga", other_pw)}))
    users = tmp_path / "users"
    users.write_text(gwtest.htpasswd_line("fred", file_pw, "-B", "-C", "4")
                     + "\n")
    gw = gateway({"app": upstream(stub.port)},
                 [{"name": "a", "path": "/secure/", "upstream": "app",
                   "realm": REALM},
                  {"name": "b", "path": "/b/", "upstream": "app",
                   "realm": "second"}],
                 env=static_env(fake),
                 realms={REALM: {"aws_secret": SECRET,
                                 "secret_refresh": "1s",
                                 "max_failures": 0},
                         "second": {"aws_secret": SECRET,
                                    "htpasswd": str(users),
                                    "secret_refresh": "1s",
                                    "max_failures": 0}})

    def b_status(user, p):
        return get(gw, "/b/x", user, p).status
    wait_status(gw, "alice", pw, 200)
    gwtest.wait_until(lambda: b_status("alice", pw) == 200, 10, 0.1,
                      "the second realm to take the secret's user")
    assert b_status("fred", file_pw) == 200
    assert status(gw, "fred", file_pw) == 401
    samples = gw.metrics()
    assert len(gwtest.samples_named(samples, REFRESH, secret=SECRET,
                                    result="ok")) == 1
    assert len(gwtest.samples_named(samples, LAST_SUCCESS,
                                    secret=SECRET)) == 1

    # rotation reaches both realms
    new = password()
    fake.put_secret(SECRET, user_secret("alice", new))
    wait_switched(gw, "alice", pw, new)
    gwtest.wait_until(lambda: b_status("alice", pw) == 401 and
                      b_status("alice", new) == 200, 15, 0.1,
                      "the rotation to reach the second realm")

    # a reload points the second realm at another secret: its users
    # become that secret's (and the file's); the first realm is unchanged
    cfg = json.loads(json.dumps(gw.config))
    cfg["realms"]["second"]["aws_secret"] = other
    gw.reload(cfg)
    gwtest.wait_until(lambda: b_status("olga", other_pw) == 200 and
                      b_status("alice", new) == 401, 15, 0.1,
                      "the second realm to use %s" % other)
    assert b_status("fred", file_pw) == 200
    assert statuses(gw, "alice", new, 5) == [200] * 5
    assert statuses(gw, "olga", other_pw, 5) == [401] * 5
    wait_refreshes(gw, "ok", 1, secret=other)

    # and a reload without it: the file's users only
    del cfg["realms"]["second"]["aws_secret"]
    del cfg["realms"]["second"]["secret_refresh"]
    gw.reload(cfg)
    gwtest.wait_until(lambda: b_status("olga", other_pw) == 401, 15, 0.1,
                      "the second realm to drop %s's users" % other)
    assert b_status("fred", file_pw) == 200
    assert statuses(gw, "alice", new, 5) == [200] * 5
    for c in [e for e in fake.log() if e.get("target") == SM_GET]:
        assert c["signature"] == "ok", c


@pytest.mark.parametrize("bad", [
    "plain-value-K7f", json.dumps({"user": "x-user-Q9"}),
    json.dumps({"username": "alice"}),
    # "#:hash" would read as an htpasswd comment: no user, no error
    json.dumps({"username": "#x-user-Q9", "password": "K7f-long-enough"}),
    # JSON, then more
    json.dumps({"username": "alice", "password": "K7f"}) + " x-user-Q9"],
    ids=["text", "other-keys", "no-password", "comment-username",
         "trailing-text"])
def test_malformed_secret(fake_aws, stub, gateway, bad):
    malformed(fake_aws, stub, gateway, bad)


# A NUL would cut a C string short: "a\u0000b" must not load as "a".
# (json.dumps writes the NUL as the escape \u0000.)
NUL_CASES = [
    ("nul-password", json.dumps({"username": "alice",
                                 "password": "K7f\x00b-Z3"}), "password"),
    ("nul-htpasswd", json.dumps({"htpasswd": "alice:K7f\x00b-Z3\n"}),
     "htpasswd"),
    # a raw NUL in the secret's text: the answer's JSON escapes it
    ("nul-secret-string", '{"username": "alice", "password": "K7f\x00"}',
     "SecretString"),
]


@pytest.mark.parametrize("bad,field", [c[1:] for c in NUL_CASES],
                         ids=[c[0] for c in NUL_CASES])
def test_secret_with_nul_is_refused(fake_aws, stub, gateway, bad, field):
    gw = malformed(fake_aws, stub, gateway, bad)
    # "K7f", what a NUL would have cut the password to, never logs in
    assert_401(get(gw, "/secure/x", "alice", "K7f"))
    lines = log_lines(gw, "error", 0, SECRET)
    assert lines and all('"%s" holds a NUL character' % field in l
                         for l in lines), lines


def malformed(fake_aws, stub, gateway, bad):
    pw = password()
    fake = fake_aws(fake_state({SECRET: bad}))
    gw = start(gateway, stub, static_env(fake), refresh="1s")
    # never a good value: fail closed
    wait_refreshes(gw, "invalid", 1)
    assert_503(get(gw, "/secure/x", "alice", pw))
    gwtest.wait_until(lambda: readyz(gw) == (503, READY_503), 5, 0.1,
                      "/readyz to be %r" % READY_503)
    wait_log(gw, "error", 0, SECRET)

    # a good value, then a bad one again: the last good users stay
    fake.put_secret(SECRET, user_secret("alice", pw))
    wait_status(gw, "alice", pw, 200)
    err_before = len(gw.error_log())
    invalid = refreshes(gw, "invalid")
    fake.put_secret(SECRET, bad)
    wait_refreshes(gw, "invalid", invalid + 2)
    wait_log(gw, "error", err_before, SECRET)
    assert statuses(gw, "alice", pw) == [200] * 10
    assert_401(get(gw, "/secure/x", "alice", password()))
    assert readyz(gw) == (200, b"ready\n")
    for text in ("K7f", "x-user-Q9", pw):
        assert text not in gw.error_log(), "the error log quotes %r" % text
    return gw


def test_no_credentials(fake_aws, stub, gateway):
    fake = fake_aws(fake_state({SECRET: user_secret("alice", password())}))
    env = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": REGION,
           "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/"}
    gw = start(gateway, stub, env, refresh="1s")
    wait_refreshes(gw, "no_credentials", 2)
    assert_503(get(gw, "/secure/x", "alice", "whatever"))
    for i in range(5):
        r = get(gw, "/open/x?i=%d" % i)
        assert r.status == 200, r
    assert readyz(gw) == (503, READY_503)
    wait_log(gw, "error", 0, SECRET)
    assert sm_calls(fake) == []
    assert gw.proc.alive()


def test_wrong_aws_key_fails_closed_by_signature(fake_aws, stub, gateway):
    """A wrong secret access key: the fake (botocore) refuses the
    signature, the realm never gets users, and says why."""
    pw = password()
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pw)}))
    env = dict(static_env(fake), AWS_SECRET_ACCESS_KEY="w" * len(STATIC_SECRET))
    gw = start(gateway, stub, env, refresh="1s")
    wait_refreshes(gw, "denied", 2)
    assert_503(get(gw, "/secure/x", "alice", pw))
    assert readyz(gw) == (503, READY_503)
    assert refreshes(gw, "ok") == 0
    # refused at the signature, before the secret was even looked up
    calls = [e for e in fake.log() if e.get("target") == SM_GET]
    assert calls and all(c["signature"] != "ok" for c in calls), calls
    assert all("InvalidSignatureException" in json.dumps(c)
               for c in calls), calls
    assert sm_calls(fake) == []
    lines = wait_log(gw, "error", 0, SECRET, "InvalidSignatureException")
    assert len(lines) == 1, lines  # once per change of state
    assert "w" * 20 not in gw.error_log()


def test_imds_credentials_token_reused(fake_aws, stub, gateway):
    pw = password()
    # credentials that live 200 s: inside any client's early-refresh
    # margin, so every refresh goes back to IMDS for them, and the IMDSv2
    # token is there to be reused
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pw)},
                               imds={"credential_ttl": 200}))
    gw = start(gateway, stub, imds_env(fake), refresh="1s")
    wait_status(gw, "alice", pw, 200)
    gwtest.wait_until(lambda: secret_reads(fake) >= 5, 20, 0.2,
                      "five GetSecretValue calls")
    wait_refreshes(gw, "ok", 5)
    assert statuses(gw, "alice", pw) == [200] * 10
    st = fake.state()
    assert st["imds"]["credential_fetches"] >= 2, \
        "precondition: credentials were fetched again: %r" % st["imds"]
    assert st["imds"]["token_puts"] == 1, st["imds"]
    assert st["imds"]["credentials_issued"] == 1, st["imds"]
    calls = sm_calls(fake)
    assert len(calls) >= 5
    for c in calls:
        assert c["signature"] == "ok", c
        assert c["caller"] == "imds", c
        assert "x-amz-security-token" in c["signed_headers"], c
        assert c["status"] == 200, c



def test_imds_credentials_expire_under_the_gateway(fake_aws, stub, gateway):
    pw = password()
    fake = fake_aws(fake_state({SECRET: user_secret("alice", pw)}))
    gw = start(gateway, stub, imds_env(fake), refresh="1s")
    wait_status(gw, "alice", pw, 200)
    wait_refreshes(gw, "ok", 3)
    assert fake.state()["imds"]["credentials_issued"] == 1
    # the hour-long credentials it holds are refused from now on
    # (ExpiredTokenException): it gets new ones and goes on refreshing;
    # the users never go away
    fake.expire_credentials()
    gwtest.wait_until(lambda: fake.state()["imds"]["credentials_issued"]
                      == 2, 15, 0.2, "the gateway to take new credentials")
    ok = refreshes(gw, "ok")
    wait_refreshes(gw, "ok", ok + 2)
    assert statuses(gw, "alice", pw) == [200] * 10
    assert fake.state()["imds"]["token_puts"] == 1
    last = sm_calls(fake)[-1]
    assert (last["signature"], last["status"]) == ("ok", 200), last


def imds_credentials(fake):
    """The fake's current IMDS credentials, as the gateway got them."""
    req = urllib.request.Request(
        fake.url + "/latest/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(req, timeout=10).read().decode()
    base = fake.url + "/latest/meta-data/iam/security-credentials/"
    h = {"X-aws-ec2-metadata-token": token}
    role = urllib.request.urlopen(urllib.request.Request(base, headers=h),
                                  timeout=10).read().decode()
    return json.loads(urllib.request.urlopen(
        urllib.request.Request(base + role, headers=h), timeout=10).read())


def ecs_credentials(fake, authorization):
    return json.loads(urllib.request.urlopen(urllib.request.Request(
        fake.url + "/ecs/credentials",
        headers={"Authorization": authorization}), timeout=10).read())


def test_nothing_secret_in_logs(fake_aws, stub, gateway, tmp_path):
    ecs_auth = "ecs-authorization-" + secrets.token_urlsafe(16)
    names = {"static": "team/static-auth", "imds": "team/imds-auth",
             "ecs": "team/ecs-auth"}
    pw = {k: password() for k in names}
    carol_pw = password()
    carol = gwtest.htpasswd_line("carol", carol_pw, "-m")
    fake = fake_aws(fake_state({
        names["static"]: user_secret("alice", pw["static"]),
        names["imds"]: htpasswd_secret(
            gwtest.htpasswd_line("alice", pw["imds"], "-B", "-C", "4"),
            carol),
        names["ecs"]: user_secret("alice", pw["ecs"])},
        ecs={"authorization": ecs_auth}))
    envs = {"static": static_env(fake), "imds": imds_env(fake),
            "ecs": {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
                    fake.url + "/ecs/credentials",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": ecs_auth,
                    "AWS_REGION": REGION,
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/"}}
    secret_texts = {"static AWS secret key": STATIC_SECRET,
                    "ECS authorization": ecs_auth,
                    "carol's password": carol_pw,
                    "carol's hash": carol.split(":", 1)[1]}
    gws = {}
    for k, name in names.items():
        gws[k] = start(gateway, stub, envs[k], refresh="1s", secret=name)
    for k, gw in gws.items():
        wait_status(gw, "alice", pw[k], 200)
        assert_401(get(gw, "/secure/x", "alice", pw[k] + "x"))
        secret_texts["%s password" % k] = pw[k]
    assert status(gws["imds"], "carol", carol_pw) == 200

    # rotate, break, fail and recover each secret
    for k, name in names.items():
        new = password()
        secret_texts["%s rotated password" % k] = new
        fake.put_secret(name, user_secret("alice", new))
        wait_switched(gws[k], "alice", pw[k], new)
        hidden = password()
        secret_texts["%s password in a malformed secret" % k] = hidden
        invalid = refreshes(gws[k], "invalid", name) or 0
        fake.put_secret(name, json.dumps({"username": "alice",
                                          "passwd": hidden}))
        wait_refreshes(gws[k], "invalid", invalid + 1, secret=name)
        fake.put_secret(name, user_secret("alice", new))
    fake.fault(SM_GET, "error500", count=3)
    for k, name in names.items():
        wait_refreshes(gws[k], "ok", (refreshes(gws[k], "ok", name) or 0)
                       + 2, secret=name, timeout=20)

    # the temporary credentials the gateways were given: one set each
    st = fake.state()
    assert st["imds"]["credentials_issued"] == 1, st["imds"]
    assert st["ecs"]["credentials_issued"] == 1, st["ecs"]
    imds, ecs = imds_credentials(fake), ecs_credentials(fake, ecs_auth)
    st = fake.state()
    assert st["imds"]["credentials_issued"] == 1, st["imds"]
    assert st["ecs"]["credentials_issued"] == 1, st["ecs"]
    secret_texts.update({"IMDS secret key": imds["SecretAccessKey"],
                         "IMDS session token": imds["Token"],
                         "ECS secret key": ecs["SecretAccessKey"],
                         "ECS session token": ecs["Token"]})

    for k, gw in gws.items():
        assert gw.stop() == (0, False)
        logs = {"error log": gw.error_log_path.read_bytes(),
                "access log": gw.access_log_path.read_bytes()}
        assert logs["access log"].count(b"\n") >= 4
        for where, data in logs.items():
            for what, text in secret_texts.items():
                assert text.encode() not in data, \
                    "%s of the %s gateway holds the %s" % (where, k, what)
