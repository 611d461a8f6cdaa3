"""portcullis secret get NAME [KEY]: the gateway's own AWS client (libcurl
SigV4 on a libevent loop) against tests/tools/fake_aws.py, which checks
every signature with botocore. Each link of the credential chain, the
region and endpoint variables, the exit codes, and that nothing secret
reaches stderr."""

import json
import os
import subprocess
import urllib.request

import pytest

from conftest import portcullis_binary

STATIC_ID = "AKIDTEST"
STATIC_SECRET = "fake-aws-static-secret-key-0123456789ab"
SECRET_VALUE = json.dumps({"username": "alice",
                           "password": "s3cret-\u00e9-value", "port": 25})
EXIT_NOT_FOUND, EXIT_DENIED, EXIT_NO_CREDENTIALS = 3, 4, 5


def state(**extra):
    s = {"region": "eu-west-1",
         "static_keys": {STATIC_ID: STATIC_SECRET},
         "secrets": {"prometheus/prometheus-auth": SECRET_VALUE,
                     "plain-text": "just text",
                     "locked/secret": "not for us"},
         "deny": ["locked/secret"]}
    s.update(extra)
    return s


def run(env, *args):
    """Runs portcullis with exactly `env` (plus PATH); returns
    (exit status, stdout bytes, stderr text)."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    full.update(env)
    p = subprocess.run([portcullis_binary(), "secret", *args], env=full,
                       capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def static_env(fake, **kw):
    e = {"AWS_ACCESS_KEY_ID": STATIC_ID,
         "AWS_SECRET_ACCESS_KEY": STATIC_SECRET,
         "AWS_REGION": "eu-west-1",
         "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/",
         "AWS_EC2_METADATA_DISABLED": "true"}
    e.update(kw)
    return {k: v for k, v in e.items() if v is not None}


def sm_calls(fake):
    return [e for e in fake.log()
            if e.get("target") == "secretsmanager.GetSecretValue"]


def test_static_keys_whole_secret_and_one_key(fake_aws):
    fake = fake_aws(state())
    rc, out, err = run(static_env(fake), "get", "prometheus/prometheus-auth")
    assert rc == 0, err
    assert out == SECRET_VALUE.encode()  # exactly: no newline to a pipe
    rc, out, err = run(static_env(fake), "get", "prometheus/prometheus-auth",
                       "password")
    assert (rc, out) == (0, "s3cret-\u00e9-value".encode()), err
    rc, out, err = run(static_env(fake), "get", "prometheus/prometheus-auth",
                       "port")
    assert (rc, out) == (0, b"25"), err  # not a string: as JSON
    calls = sm_calls(fake)
    assert len(calls) == 3
    for c in calls:
        assert c["signature"] == "ok", c
        assert c["status"] == 200
        # what libcurl 7.88 signs for us: no stray or repeated header
        assert c["signed_headers"] == \
            ["content-type", "host", "x-amz-date", "x-amz-target"], c


def test_general_endpoint_variable(fake_aws):
    fake = fake_aws(state())
    env = static_env(fake, AWS_ENDPOINT_URL_SECRETS_MANAGER=None,
                     AWS_ENDPOINT_URL=fake.url + "/")
    rc, out, err = run(env, "get", "plain-text")
    assert (rc, out) == (0, b"just text"), err


def test_exit_codes_and_messages(fake_aws):
    fake = fake_aws(state())
    rc, out, err = run(static_env(fake), "get", "no/such")
    assert (rc, out) == (EXIT_NOT_FOUND, b"")
    assert "no/such" in err and "ResourceNotFoundException" in err, err
    rc, out, err = run(static_env(fake), "get", "prometheus/prometheus-auth",
                       "nokey")
    assert (rc, out) == (EXIT_NOT_FOUND, b"")
    assert 'no key "nokey"' in err, err
    rc, out, err = run(static_env(fake), "get", "locked/secret")
    assert (rc, out) == (EXIT_DENIED, b"")
    assert "AccessDeniedException" in err, err
    rc, out, err = run(static_env(fake), "get", "plain-text", "k")
    assert (rc, out) == (1, b"")
    assert "not a JSON object" in err, err
    rc, out, err = run(static_env(fake), "get")
    assert rc == 2 and "usage" in err


def test_wrong_secret_key_is_denied_by_signature(fake_aws):
    fake = fake_aws(state())
    wrong = "x" * len(STATIC_SECRET)
    rc, out, err = run(static_env(fake, AWS_SECRET_ACCESS_KEY=wrong),
                       "get", "plain-text")
    assert (rc, out) == (EXIT_DENIED, b"")
    assert "InvalidSignatureException" in err, err
    assert wrong not in err
    assert sm_calls(fake)[-1]["signature"] != "ok"


def test_no_credentials_anywhere(fake_aws):
    fake = fake_aws(state())
    rc, out, err = run({"AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_REGION": "eu-west-1",
                        "AWS_ENDPOINT_URL": fake.url + "/"},
                       "get", "plain-text")
    assert (rc, out) == (EXIT_NO_CREDENTIALS, b"")
    assert "IMDS is disabled" in err, err
    assert sm_calls(fake) == []


def test_imds_v2_credentials_and_region(fake_aws):
    fake = fake_aws(state())
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url,
           "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/"}
    rc, out, err = run(env, "get", "prometheus/prometheus-auth", "username")
    assert (rc, out) == (0, b"alice"), err
    counts = fake.state()
    assert counts["imds"]["token_puts"] == 1, counts
    call = sm_calls(fake)[-1]
    assert call["signature"] == "ok", call
    # temporary credentials: the session token is sent, and signed
    assert "x-amz-security-token" in call["signed_headers"]
    # the region came from IMDS (the fake checks the scope's region)
    assert call["status"] == 200


def test_imds_unreachable_says_so(fake_aws):
    fake = fake_aws(state())
    rc, out, err = run({"AWS_EC2_METADATA_SERVICE_ENDPOINT":
                        "http://127.0.0.1:9",
                        "AWS_ENDPOINT_URL": fake.url + "/"},
                       "get", "plain-text")
    assert rc == EXIT_NO_CREDENTIALS
    assert "IMDS did not answer" in err, err


def test_ecs_container_credentials_with_authorization(fake_aws):
    token = "ecs-auth-token-for-test"
    fake = fake_aws(state(ecs={"authorization": token}))
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url + "/ecs/credentials",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
           "AWS_REGION": "eu-west-1",
           "AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.url + "/"}
    rc, out, err = run(env, "get", "plain-text")
    assert (rc, out) == (0, b"just text"), err
    assert fake.state()["imds"]["token_puts"] == 0
    del env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    rc, out, err = run(env, "get", "plain-text")
    assert rc == EXIT_NO_CREDENTIALS
    assert "ECS credentials endpoint refused" in err, err
    assert token not in err


def test_session_token_from_environment(fake_aws):
    """Temporary credentials handed in through AWS_SESSION_TOKEN (as a
    CI job or `aws sts` would): the token must be sent and signed."""
    fake = fake_aws(state())
    base = fake.url
    req = urllib.request.Request(base + "/latest/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-"
                                          "seconds": "60"})
    tok = urllib.request.urlopen(req, timeout=5).read().decode()
    hdr = {"X-aws-ec2-metadata-token": tok}
    path = "/latest/meta-data/iam/security-credentials/"
    role = urllib.request.urlopen(urllib.request.Request(
        base + path, headers=hdr), timeout=5).read().decode().strip()
    creds = json.loads(urllib.request.urlopen(urllib.request.Request(
        base + path + role, headers=hdr), timeout=5).read())
    env = static_env(fake, AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
                     AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
                     AWS_SESSION_TOKEN=creds["Token"])
    rc, out, err = run(env, "get", "plain-text")
    assert (rc, out) == (0, b"just text"), err
    del env["AWS_SESSION_TOKEN"]
    rc, out, err = run(env, "get", "plain-text")
    assert rc == EXIT_DENIED, err
    assert "UnrecognizedClientException" in err, err


@pytest.mark.parametrize("mode,rc_want,word", [
    ("throttle", 1, "ThrottlingException"),
    ("error500", 1, "InternalServiceError"),
    ("down", 1, "network"),
])
def test_service_failures(fake_aws, mode, rc_want, word):
    fake = fake_aws(state())
    fake.fault("secretsmanager.GetSecretValue", mode, count=1)
    rc, out, err = run(static_env(fake), "get", "prometheus/prometheus-auth")
    assert (rc, out) == (rc_want, b""), err
    assert word in err, err
    assert "s3cret" not in err and STATIC_SECRET not in err
    # the fault was used up: the next call gets the secret
    rc, out, err = run(static_env(fake), "get", "prometheus/prometheus-auth",
                       "username")
    assert (rc, out) == (0, b"alice"), err
