"""tests/tools/fake_aws.py on its own: the stand-in for AWS that the
gateway's (and the cost exporter's) AWS tests will run against. These tests
show it rejects what real AWS rejects (a wrong signature, a signed header
that was not sent, a doubled X-Amz-Date, temporary credentials without
their token, expired ones, a skewed clock) and serves what real AWS serves
(IMDSv2, ECS credentials, GetSecretValue, GetCostAndUsage pages) - and they
are the manual for using it: start one with the fake_aws fixture, sign
with botocore or curl --aws-sigv4, steer it through its /_fake/ API.

Clients: botocore's own (Debian's python3-botocore), botocore's SigV4Auth
over http.client where the exact status and body matter, and curl 7.88.1,
whose libcurl is the one the gateway signs with (CURLOPT_AWS_SIGV4)."""

import datetime
import http.client
import json
import subprocess
import time
from decimal import Decimal

import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.session
import pytest
from botocore.exceptions import ClientError

import gwtest

CURL = "/usr/bin/curl"
REGION = "eu-west-1"
AKID = "AKIDFAKETEST0001"
SECRET = "fake-aws-test-static-secret-Zq81vT0pLm3"
SM = "secretsmanager.GetSecretValue"
CE_USAGE = "AWSInsightsIndexService.GetCostAndUsage"
CE_FORECAST = "AWSInsightsIndexService.GetCostForecast"
AUTH_NAME = "prometheus/prometheus-auth"
AUTH_VALUE = json.dumps({"username": "alice",
                         "password": "pw-7c1e9a0b55-alice"})
JSON_11 = "application/x-amz-json-1.1"

BAD_SIGNATURE = ("The request signature we calculated does not match the "
                 "signature you provided. Check your AWS Secret Access Key "
                 "and signing method. Consult the service documentation "
                 "for details.")
BAD_TOKEN = "The security token included in the request is invalid."


def day_costs():
    """Ten days of March 2024 plus one day either side (outside every
    query below): EC2 1.01 .. 1.10, S3 0.05 a day (none on the 4th, 0.05
    + 0.10 on the 3rd), Secrets Manager 0.40 on the 9th."""
    costs = [{"start": "2024-02-29", "service": "Amazon EC2",
              "amount": "99.00"},
             {"start": "2024-03-11", "service": "Amazon EC2",
              "amount": "77.00"},
             {"start": "2024-03-03", "service": "Amazon S3",
              "amount": "0.10"},
             {"start": "2024-03-09", "service": "AWS Secrets Manager",
              "amount": "0.40"}]
    for d in range(1, 11):
        day = "2024-03-%02d" % d
        costs.append({"start": day, "service": "Amazon EC2",
                      "amount": "1.%02d" % d})
        if d != 4:
            costs.append({"start": day, "service": "Amazon S3",
                          "amount": "0.05"})
    return costs


def base_state(**over):
    state = {"region": REGION, "static_keys": {AKID: SECRET},
             "imds": {"role": "portcullis-test", "credential_ttl": 3600},
             "secrets": {AUTH_NAME: AUTH_VALUE, "other": "other-value"},
             "costs": day_costs(),
             "forecast": {"total": "412.50", "periods": [
                 {"start": "2024-04-01", "end": "2024-05-01",
                  "mean": "412.50"}]},
             "page_size": 7}
    state.update(over)
    return state


# ------------------------------------------------------------- clients

_session = None


def client(fake, service, akid=AKID, secret=SECRET, token=None,
           region=None):
    """botocore's own client for `service` against the fake, one attempt
    per call (no retries, so the fake's counters are exact)."""
    global _session
    if _session is None:
        _session = botocore.session.get_session()
    if region is None:
        region = REGION if service == "secretsmanager" else "us-east-1"
    return _session.create_client(
        service, region_name=region, endpoint_url=fake.url,
        aws_access_key_id=akid, aws_secret_access_key=secret,
        aws_session_token=token,
        config=botocore.config.Config(retries={"total_max_attempts": 1}))


def error_of(exc_info):
    e = exc_info.value.response
    return (e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"],
            e["Error"]["Message"])


def signed_request(fake, target, params, akid=AKID, secret=SECRET,
                   token=None, service=None, region=None, headers=None):
    """(headers, body) of a JSON 1.1 call signed by botocore's SigV4Auth
    exactly as its clients sign (add_auth), ready for http.client."""
    if service is None:
        service = "secretsmanager" if target.startswith("secretsmanager.") \
            else "ce"
    if region is None:
        region = REGION if service == "secretsmanager" else "us-east-1"
    body = json.dumps(params).encode()
    h = {"X-Amz-Target": target, "Content-Type": JSON_11}
    h.update(headers or {})
    req = botocore.awsrequest.AWSRequest("POST", fake.url + "/", data=body,
                                         headers=h)
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(akid, secret, token), service,
        region).add_auth(req)
    return dict(req.headers.items()), body


def post(fake, headers, body):
    """POST / with exactly these headers (plus Host and Content-Length,
    which http.client adds); returns (status, parsed JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def call(fake, target, params, **kw):
    return post(fake, *signed_request(fake, target, params, **kw))


def curl(fake, *extra, akid=AKID, secret=SECRET, scope=None, target=SM,
         data=None, content_type=True, query="", stream=False):
    """curl --aws-sigv4 POST /`query` with X-Amz-Target (and Content-Type
    unless content_type is false) plus `extra` arguments, the body given
    with --data (in memory: CURLOPT_POSTFIELDS) or, with stream, read from
    stdin (a read callback, chunked); returns (exit status, HTTP status,
    body bytes)."""
    scope = scope or "aws:amz:%s:secretsmanager" % REGION
    data = data if data is not None else json.dumps({"SecretId": AUTH_NAME})
    argv = [CURL, "-sS", "--noproxy", "*", "-m", "10", "-w", "\n%{http_code}",
            "--aws-sigv4", scope, "--user", "%s:%s" % (akid, secret),
            "-H", "X-Amz-Target: " + target]
    if content_type:
        argv += ["-H", "Content-Type: " + JSON_11]
    argv += list(extra)
    argv += ["-X", "POST", "-T", "-"] if stream else ["--data", data]
    argv.append(fake.url + "/" + query)
    r = subprocess.run(argv, capture_output=True, timeout=30,
                       input=data.encode() if stream else None)
    body, _, code = r.stdout.rpartition(b"\n")
    return r.returncode, int(code), body


def amz_now():
    return datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")


def last_api_entry(fake):
    return [e for e in fake.log() if e["service"] in ("secretsmanager",
                                                      "ce")][-1]


def imds_token(fake, ttl=60):
    st, h, body = gwtest.request(
        fake.port, "PUT", "/latest/api/token",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
    assert st == 200, (st, body)
    assert h["x-aws-ec2-metadata-token-ttl-seconds"] == str(ttl)
    return body.decode()


def imds_get(fake, path, token=None, headers=None):
    h = dict(headers or {})
    if token is not None:
        h["X-aws-ec2-metadata-token"] = token
    return gwtest.request(fake.port, "GET", path, headers=h)


def imds_credentials(fake, token=None):
    token = token or imds_token(fake)
    st, _, body = imds_get(
        fake, "/latest/meta-data/iam/security-credentials/portcullis-test",
        token)
    assert st == 200, (st, body)
    return json.loads(body)


# ------------------------------------------------- Secrets Manager, SigV4


def test_botocore_client_gets_secret_and_wrong_key_is_refused(fake_aws):
    fake = fake_aws(base_state())
    sm = client(fake, "secretsmanager")
    r = sm.get_secret_value(SecretId=AUTH_NAME)
    assert r["SecretString"] == AUTH_VALUE
    assert r["Name"] == AUTH_NAME
    assert r["VersionStages"] == ["AWSCURRENT"]
    assert r["ARN"].startswith("arn:aws:secretsmanager:%s:123456789012:"
                               "secret:%s-" % (REGION, AUTH_NAME))
    assert len(r["ARN"]) == len(r["ARN"].rsplit("-", 1)[0]) + 7
    # by ARN too
    assert sm.get_secret_value(SecretId=r["ARN"])["VersionId"] \
        == r["VersionId"]

    bad = client(fake, "secretsmanager", secret=SECRET[:-1] + "X")
    with pytest.raises(ClientError) as ei:
        bad.get_secret_value(SecretId=AUTH_NAME)
    assert error_of(ei) == (403, "InvalidSignatureException", BAD_SIGNATURE)

    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="no/such/secret")
    assert error_of(ei) == (400, "ResourceNotFoundException",
                            "Secrets Manager can't find the specified "
                            "secret.")

    log = fake.log()
    assert [(e["signature"], e["status"], e["error_type"], e["secret_id"])
            for e in log] == [
        ("ok", 200, None, AUTH_NAME),
        ("ok", 200, None, r["ARN"]),
        ("signature mismatch", 403, "InvalidSignatureException", None),
        ("ok", 400, "ResourceNotFoundException", "no/such/secret")]
    for e in log:
        assert e["method"] == "POST" and e["path"] == "/"
        assert e["target"] == SM and e["service"] == "secretsmanager"
        assert e["access_key_id"] == AKID
        # botocore signs what its blacklist lets through: no user-agent
        assert e["signed_headers"] == ["content-type", "host", "x-amz-date",
                                       "x-amz-target"]
    st = fake.state()
    assert st["calls"] == {SM: 4}
    assert st["secret_reads"] == {AUTH_NAME: 2}
    assert st["signature_failures"] == 1


def test_signature_failures_each_with_its_reason(fake_aws):
    fake = fake_aws(base_state())
    ok_headers, ok_body = signed_request(fake, SM, {"SecretId": AUTH_NAME})
    assert post(fake, ok_headers, ok_body)[0] == 200

    # no Authorization at all
    st, out = post(fake, {"X-Amz-Target": SM, "Content-Type": JSON_11},
                   ok_body)
    assert (st, out) == (400, {"__type": "MissingAuthenticationTokenException",
                               "message": "Missing Authentication Token"})
    # garbled
    h = dict(ok_headers, Authorization="AWS4-HMAC-SHA256 Credential=" + AKID)
    st, out = post(fake, h, ok_body)
    assert (st, out["__type"]) == (400, "IncompleteSignatureException")
    assert out["message"] == ("Authorization header requires 'SignedHeaders' "
                              "parameter. Authorization header requires "
                              "'Signature' parameter.")
    # the body changed after signing
    st, out = post(fake, ok_headers, ok_body.replace(b"prometheus-auth",
                                                     b"prometheus-auth "))
    assert (st, out) == (403, {"__type": "InvalidSignatureException",
                               "message": BAD_SIGNATURE})
    # a declared payload hash that is not the body's: botocore signs the
    # header's value, so only the fake's own check can catch it
    h, b = signed_request(fake, SM, {"SecretId": AUTH_NAME},
                          headers={"X-Amz-Content-Sha256": "0" * 64})
    st, out = post(fake, h, b)
    assert (st, out["__type"]) == (403, "InvalidSignatureException")
    # unknown access key id
    st, out = call(fake, SM, {"SecretId": AUTH_NAME}, akid="AKIDNOBODY")
    assert (st, out) == (403, {"__type": "UnrecognizedClientException",
                               "message": BAD_TOKEN})
    # a session token with a long-term key
    st, out = call(fake, SM, {"SecretId": AUTH_NAME}, token="whatever")
    assert (st, out) == (403, {"__type": "UnrecognizedClientException",
                               "message": BAD_TOKEN})
    # scope: wrong region, wrong service
    st, out = call(fake, SM, {"SecretId": AUTH_NAME}, region="us-east-1")
    assert (st, out) == (403, {"__type": "InvalidSignatureException",
                               "message": "Credential should be scoped to a "
                                          "valid region. "})
    st, out = call(fake, SM, {"SecretId": AUTH_NAME}, service="ce",
                   region=REGION)
    assert (st, out) == (403, {"__type": "InvalidSignatureException",
                               "message": "Credential should be scoped to "
                                          "correct service: "
                                          "'secretsmanager'. "})
    # the fake's clock 10 minutes ahead of the signer's, then behind
    fake.skew(600)
    st, out = call(fake, SM, {"SecretId": AUTH_NAME})
    assert (st, out["__type"]) == (403, "InvalidSignatureException")
    assert out["message"].startswith("Signature expired: ")
    fake.skew(-600)
    st, out = call(fake, SM, {"SecretId": AUTH_NAME})
    assert (st, out["__type"]) == (403, "InvalidSignatureException")
    assert out["message"].startswith("Signature not yet current: ")
    fake.skew(240)  # within 5 minutes: fine
    assert call(fake, SM, {"SecretId": AUTH_NAME})[0] == 200
    fake.skew(0)

    verdicts = [e["signature"] for e in fake.log()
                if e["service"] == "secretsmanager"]
    assert verdicts[0] == "ok"
    assert verdicts[1] == "missing"
    assert verdicts[2] == "authorization lacks SignedHeaders,Signature"
    assert verdicts[3] == "signature mismatch"
    assert verdicts[4] == ("x-amz-content-sha256 is not the SHA-256 of the "
                           "body")
    assert verdicts[5] == "unknown access key id"
    assert verdicts[6] == ("x-amz-security-token sent with a long-term "
                           "access key")
    assert verdicts[7] == "scope region us-east-1, this endpoint is eu-west-1"
    assert verdicts[8] == "scope service ce, this endpoint is secretsmanager"
    assert verdicts[9].startswith("x-amz-date ") and \
        verdicts[9].endswith(" s behind the clock")
    assert verdicts[10].endswith(" s ahead of the clock")
    assert verdicts[11] == "ok"
    assert fake.state()["signature_failures"] == 10
    # only authenticated requests read the secret
    assert fake.state()["secret_reads"] == {AUTH_NAME: 2}


# ------------------------------------------------------------ curl 7.88


def test_curl_aws_sigv4_succeeds(fake_aws):
    fake = fake_aws(base_state())
    rc, code, body = curl(fake)
    assert (rc, code) == (0, 200), body
    out = json.loads(body)
    assert out["SecretString"] == AUTH_VALUE
    e = last_api_entry(fake)
    assert e["signature"] == "ok"
    assert e["signed_headers"] == ["content-type", "host", "x-amz-date",
                                   "x-amz-target"]
    assert e["headers"] == ["host", "authorization", "x-amz-date",
                            "user-agent", "accept", "x-amz-target",
                            "content-type", "content-length"]

    # a User-Agent set with -H is signed (and sent): botocore's own
    # headers_to_sign() would drop it (blacklist), the fake must not
    rc, code, body = curl(fake, "-H", "User-Agent: portcullis/0.1")
    assert (rc, code) == (0, 200), body
    e = last_api_entry(fake)
    assert e["signature"] == "ok"
    assert e["signed_headers"] == ["content-type", "host", "user-agent",
                                   "x-amz-date", "x-amz-target"]

    # the wrong secret
    rc, code, body = curl(fake, secret="not-the-secret")
    assert (rc, code) == (0, 403)
    assert json.loads(body) == {"__type": "InvalidSignatureException",
                                "message": BAD_SIGNATURE}


@pytest.mark.parametrize("name", ["expect", "accept", "user-agent"])
def test_curl_signs_a_header_it_was_told_to_remove(fake_aws, name):
    """curl 7.88: -H "Name:" removes a header curl would send, but the
    name still goes into SignedHeaders (curl issue 11664, fixed in 8.3).
    AWS answers IncompleteSignatureException; so does the fake."""
    fake = fake_aws(base_state())
    header = {"expect": "Expect:", "accept": "Accept:",
              "user-agent": "User-Agent:"}[name]
    rc, code, body = curl(fake, "-H", header)
    assert (rc, code) == (0, 400), body
    assert json.loads(body) == {
        "__type": "IncompleteSignatureException",
        "message": "'%s' is named as a SignedHeader, but it does not exist "
                   "in the HTTP request." % name}
    e = last_api_entry(fake)
    assert name in e["signed_headers"]
    assert name not in e["headers"]
    assert e["signature"] == "signed header %r is not in the request" % name


def test_curl_sends_a_hand_set_x_amz_date_twice(fake_aws):
    """curl 7.88 with -H "X-Amz-Date: D": signs with D (scope date and
    string-to-sign) and sends X-Amz-Date: D twice, its own line first
    (curl issue 11738). Combined by the server: "D,D": not a date."""
    fake = fake_aws(base_state())
    d = amz_now()
    rc, code, body = curl(fake, "-H", "X-Amz-Date: " + d)
    assert (rc, code) == (0, 400), body
    assert json.loads(body) == {
        "__type": "IncompleteSignatureException",
        "message": "Date must be in ISO-8601 'basic format'. Got '%s,%s'."
                   % (d, d)}
    e = last_api_entry(fake)
    assert e["headers"].count("x-amz-date") == 2
    assert e["signed_headers"].count("x-amz-date") == 1
    assert e["signature"] == "x-amz-date sent 2 times (%s,%s)" % (d, d)


def test_curl_repeated_header_is_listed_twice_in_signed_headers(fake_aws):
    """A header given twice with -H is sent twice and named twice in
    SignedHeaders (with one canonical line per value); AWS joins the
    values with "," under one name, so the signature cannot match."""
    fake = fake_aws(base_state())
    rc, code, body = curl(fake, "-H", "X-Amz-Target: " + SM)
    assert (rc, code) == (0, 400), body
    assert json.loads(body) == {"__type": "IncompleteSignatureException",
                                "message": "SignedHeaders is malformed."}
    e = last_api_entry(fake)
    assert e["signed_headers"] == ["content-type", "host", "x-amz-date",
                                   "x-amz-target", "x-amz-target"]
    assert e["signature"] == "SignedHeaders lists 'x-amz-target' 2 times"


def test_curl_default_content_type_is_sent_unsigned(fake_aws):
    """Without -H Content-Type, curl --data sends application/x-www-form-
    urlencoded and leaves it out of SignedHeaders: the signature holds,
    the JSON service refuses the type."""
    fake = fake_aws(base_state())
    rc, code, body = curl(fake, content_type=False)
    assert (rc, code) == (0, 400), body
    assert json.loads(body) == {
        "__type": "SerializationException",
        "message": "Content-Type must be application/x-amz-json-1.1, got "
                   "'application/x-www-form-urlencoded'"}
    e = last_api_entry(fake)
    assert e["signature"] == "ok"
    assert e["signed_headers"] == ["host", "x-amz-date", "x-amz-target"]
    assert "content-type" in e["headers"]


def test_curl_streamed_body_and_unsorted_query_fail(fake_aws):
    """Two more curl 7.88 limits, both ending in a signature mismatch:
    a body streamed through a read callback (here -T -, chunked) is
    signed as if empty (the SHA-256 of ""), and the query string is
    signed in the order given, where SigV4 sorts it."""
    fake = fake_aws(base_state())
    rc, code, body = curl(fake, stream=True)
    assert (rc, code) == (0, 403), body
    assert json.loads(body) == {"__type": "InvalidSignatureException",
                                "message": BAD_SIGNATURE}
    e = last_api_entry(fake)
    assert "transfer-encoding" in e["headers"]
    assert e["signature"] == "signature mismatch"

    rc, code, body = curl(fake, query="?b=2&a=1")
    assert (rc, code) == (0, 403), body
    assert last_api_entry(fake)["signature"] == "signature mismatch"
    rc, code, body = curl(fake, query="?a=1&b=2")  # already sorted: fine
    assert (rc, code) == (0, 200), body
    assert last_api_entry(fake)["path"] == "/?a=1&b=2"


# ------------------------------------------------ temporary credentials


def test_imds_credentials_need_their_token_and_expire(fake_aws):
    fake = fake_aws(base_state())
    c = imds_credentials(fake)
    assert c["AccessKeyId"].startswith("ASIA") and len(c["AccessKeyId"]) == 20
    params = {"SecretId": AUTH_NAME}

    # without X-Amz-Security-Token
    st, out = call(fake, SM, params, akid=c["AccessKeyId"],
                   secret=c["SecretAccessKey"])
    assert (st, out) == (403, {"__type": "UnrecognizedClientException",
                               "message": BAD_TOKEN})
    # another token
    st, out = call(fake, SM, params, akid=c["AccessKeyId"],
                   secret=c["SecretAccessKey"], token=c["Token"][:-2] + "xx")
    assert (st, out) == (403, {"__type": "UnrecognizedClientException",
                               "message": BAD_TOKEN})
    # with it: signed by botocore's SigV4Auth, by its client, by curl
    st, out = call(fake, SM, params, akid=c["AccessKeyId"],
                   secret=c["SecretAccessKey"], token=c["Token"])
    assert (st, out["SecretString"]) == (200, AUTH_VALUE)
    sm = client(fake, "secretsmanager", akid=c["AccessKeyId"],
                secret=c["SecretAccessKey"], token=c["Token"])
    assert sm.get_secret_value(SecretId=AUTH_NAME)["SecretString"] \
        == AUTH_VALUE
    rc, code, body = curl(fake, "-H", "X-Amz-Security-Token: " + c["Token"],
                          akid=c["AccessKeyId"], secret=c["SecretAccessKey"])
    assert (rc, code) == (0, 200), body
    e = last_api_entry(fake)
    assert e["caller"] == "imds" and e["access_key_id"] == c["AccessKeyId"]
    assert "x-amz-security-token" in e["signed_headers"]

    # expired
    assert fake.expire_credentials() == {"expired": 1}
    st, out = call(fake, SM, params, akid=c["AccessKeyId"],
                   secret=c["SecretAccessKey"], token=c["Token"])
    assert (st, out) == (403, {"__type": "ExpiredTokenException",
                               "message": "The security token included in "
                                          "the request is expired"})
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId=AUTH_NAME)
    assert error_of(ei)[:2] == (403, "ExpiredTokenException")

    # IMDS now hands out a new set, which works
    c2 = imds_credentials(fake)
    assert c2["AccessKeyId"] != c["AccessKeyId"]
    assert c2["Token"] != c["Token"]
    st, out = call(fake, SM, params, akid=c2["AccessKeyId"],
                   secret=c2["SecretAccessKey"], token=c2["Token"])
    assert st == 200
    verdicts = [e["signature"] for e in fake.log()
                if e["service"] == "secretsmanager"]
    assert verdicts == [
        "temporary credentials without x-amz-security-token",
        "x-amz-security-token is not the token issued with this access "
        "key id", "ok", "ok", "ok",
        "temporary credentials expired at %s" % verdicts[5][-20:],
        verdicts[5], "ok"]
    assert verdicts[5].startswith("temporary credentials expired at 20")


def test_imds_credentials_rotate_before_expiry(fake_aws):
    """rotate_before: a new set once the current one has less than that
    left; the old set stays valid until its own Expiration."""
    fake = fake_aws(base_state(imds={"credential_ttl": 500,
                                     "rotate_before": 300}))
    token = imds_token(fake, 21600)
    c1 = imds_credentials(fake, token)
    assert imds_credentials(fake, token)["AccessKeyId"] == c1["AccessKeyId"]
    fake.skew(250)  # 250 s left: under rotate_before
    c2 = imds_credentials(fake, token)
    assert c2["AccessKeyId"] != c1["AccessKeyId"]
    exp1 = datetime.datetime.strptime(c1["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    exp2 = datetime.datetime.strptime(c2["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert 249 <= (exp2 - exp1).total_seconds() <= 251
    for c in (c1, c2):
        st, _ = call(fake, SM, {"SecretId": AUTH_NAME},
                     akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                     token=c["Token"])
        assert st == 200
    st = fake.state()
    assert st["imds"] == {"token_puts": 1, "tokens_issued": 1,
                          "credential_fetches": 3, "credentials_issued": 2}
    assert [(c["source"], c["current"]) for c in st["credentials"]] == [
        ("imds", False), ("imds", True)]


# ----------------------------------------------------------------- IMDS


def test_imds_v2_only(fake_aws):
    fake = fake_aws(base_state())
    region_path = "/latest/meta-data/placement/region"

    st, _, _ = imds_get(fake, region_path)  # IMDSv1
    assert st == 401
    st, _, _ = imds_get(fake, region_path, "not-a-token")
    assert st == 401
    # token TTL bounds; no TTL header
    for ttl in ("0", "21601", "-1", "abc"):
        st, _, _ = gwtest.request(
            fake.port, "PUT", "/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        assert st == 400, ttl
    st, _, _ = gwtest.request(fake.port, "PUT", "/latest/api/token")
    assert st == 400
    assert imds_token(fake, 21600)
    token = imds_token(fake, 1)

    st, h, body = imds_get(fake, region_path, token)
    assert (st, body) == (200, REGION.encode())
    st, _, body = imds_get(fake, "/latest/dynamic/instance-identity/document",
                           token)
    assert st == 200 and json.loads(body)["region"] == REGION
    st, _, body = imds_get(fake,
                           "/latest/meta-data/iam/security-credentials/",
                           token)
    assert (st, body) == (200, b"portcullis-test")
    st, _, body = imds_get(
        fake, "/latest/meta-data/iam/security-credentials/portcullis-test",
        token)
    assert st == 200
    c = json.loads(body)
    assert sorted(c) == ["AccessKeyId", "Code", "Expiration", "LastUpdated",
                         "SecretAccessKey", "Token", "Type"]
    assert (c["Code"], c["Type"]) == ("Success", "AWS-HMAC")
    exp = datetime.datetime.strptime(c["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    upd = datetime.datetime.strptime(c["LastUpdated"], "%Y-%m-%dT%H:%M:%SZ")
    assert (exp - upd).total_seconds() == 3600
    st, _, _ = imds_get(
        fake, "/latest/meta-data/iam/security-credentials/other-role", token)
    assert st == 404
    # a request that came through a proxy
    st, _, _ = imds_get(fake, region_path, token,
                        {"X-Forwarded-For": "10.1.2.3"})
    assert st == 403

    # the same token, the same credentials, until they expire
    again = imds_credentials(fake, token)
    assert again["AccessKeyId"] == c["AccessKeyId"]
    counts = fake.state()["imds"]
    assert counts == {"token_puts": 7, "tokens_issued": 2,
                      "credential_fetches": 2, "credentials_issued": 1}

    fake.skew(1.5)  # past the 1 s token's life
    st, _, _ = imds_get(fake, region_path, token)
    assert st == 401

    log = [e for e in fake.log() if e["service"] == "imds"]
    assert [e["status"] for e in log] == [
        401, 401, 400, 400, 400, 400, 400, 200, 200, 200, 200, 200, 200, 404,
        403, 200, 401]
    assert all(e["signature"] is None for e in log)


def test_imds_without_role(fake_aws):
    fake = fake_aws(base_state(imds={"role": None}))
    token = imds_token(fake)
    st, _, _ = imds_get(fake, "/latest/meta-data/iam/security-credentials/",
                        token)
    assert st == 404


# ------------------------------------------------------------------ ECS


@pytest.mark.parametrize("path", ["/ecs/credentials",
                                  "/v2/credentials/6d3f0c3a-task"])
def test_ecs_credentials_with_authorization_token(fake_aws, path):
    auth = "ecs-auth-token-9f8e7d6c5b4a"
    fake = fake_aws(base_state(ecs={"authorization": auth}))
    st, _, _ = gwtest.request(fake.port, "GET", path)
    assert st == 401
    st, _, _ = gwtest.request(fake.port, "GET", path,
                              headers={"Authorization": auth + "x"})
    assert st == 403
    st, _, body = gwtest.request(fake.port, "GET", path,
                                 headers={"Authorization": auth})
    assert st == 200
    c = json.loads(body)
    assert sorted(c) == ["AccessKeyId", "Expiration", "RoleArn",
                         "SecretAccessKey", "Token"]
    assert c["RoleArn"] == "arn:aws:iam::123456789012:role/portcullis-task"
    sm = client(fake, "secretsmanager", akid=c["AccessKeyId"],
                secret=c["SecretAccessKey"], token=c["Token"])
    assert sm.get_secret_value(SecretId=AUTH_NAME)["SecretString"] \
        == AUTH_VALUE
    assert last_api_entry(fake)["caller"] == "ecs"
    assert fake.state()["ecs"] == {"credential_fetches": 1,
                                   "credentials_issued": 1}


def test_ecs_credentials_without_authorization_token(fake_aws):
    fake = fake_aws(base_state())
    st, _, body = gwtest.request(fake.port, "GET", "/ecs/credentials")
    assert st == 200
    c1 = json.loads(body)
    st, _, body = gwtest.request(fake.port, "GET", "/v2/credentials/abc")
    assert st == 200
    assert json.loads(body)["AccessKeyId"] == c1["AccessKeyId"]
    # ECS and IMDS credentials are different sets
    assert imds_credentials(fake)["AccessKeyId"] != c1["AccessKeyId"]


# ------------------------------------------------- rotation and faults


def test_rotation_changes_secret_string_and_version(fake_aws):
    fake = fake_aws(base_state())
    sm = client(fake, "secretsmanager")
    r1 = sm.get_secret_value(SecretId=AUTH_NAME)
    new_value = json.dumps({"username": "alice",
                            "password": "pw-rotated-42d1e0"})
    vid = fake.put_secret(AUTH_NAME, new_value)
    r2 = sm.get_secret_value(SecretId=AUTH_NAME)
    assert r2["SecretString"] == new_value
    assert r2["VersionId"] == vid != r1["VersionId"]
    assert r2["ARN"] == r1["ARN"]
    prev = sm.get_secret_value(SecretId=AUTH_NAME,
                               VersionStage="AWSPREVIOUS")
    assert (prev["SecretString"], prev["VersionId"],
            prev["VersionStages"]) == (AUTH_VALUE, r1["VersionId"],
                                       ["AWSPREVIOUS"])
    assert sm.get_secret_value(SecretId=AUTH_NAME,
                               VersionId=r1["VersionId"])["SecretString"] \
        == AUTH_VALUE
    assert fake.state()["secrets"][AUTH_NAME]["versions"] == [
        {"VersionId": r1["VersionId"], "VersionStages": ["AWSPREVIOUS"]},
        {"VersionId": vid, "VersionStages": ["AWSCURRENT"]}]

    # a new secret, then deleted
    fake.put_secret("created/later", "v1")
    assert sm.get_secret_value(SecretId="created/later")["SecretString"] \
        == "v1"
    fake.delete_secret("created/later")
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="created/later")
    assert error_of(ei)[:2] == (400, "ResourceNotFoundException")

    # denied by policy
    st, _ = fake.control("PUT", "deny/" + "other")
    assert st == 200
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="other")
    assert error_of(ei) == (
        400, "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/%s is not authorized to "
        "perform: secretsmanager:GetSecretValue on resource: other because "
        "no identity-based policy allows the secretsmanager:GetSecretValue "
        "action" % AKID)
    assert fake.state()["secret_reads"] == {AUTH_NAME: 4, "created/later": 1}


def test_faults_apply_count_times_then_clear(fake_aws):
    fake = fake_aws(base_state())
    params = {"SecretId": AUTH_NAME}

    fake.fault(SM, "throttle", count=2)
    assert call(fake, SM, params) == (400, {"__type": "ThrottlingException",
                                            "message": "Rate exceeded"})
    assert call(fake, SM, params)[0] == 400
    assert call(fake, SM, params)[0] == 200
    assert fake.state()["faults"] == {}

    fake.fault(SM, "error500")
    assert call(fake, SM, params) == (500, {
        "__type": "InternalServiceError",
        "message": "An error occurred on the server side."})
    assert call(fake, SM, params)[0] == 200

    fake.fault(SM, "denied")
    st, out = call(fake, SM, params)
    assert (st, out["__type"]) == (400, "AccessDeniedException")
    assert call(fake, SM, params)[0] == 200

    # a fault never hides a bad signature, and is not used up by one
    fake.fault(SM, "throttle")
    st, out = call(fake, SM, params, secret="wrong")
    assert (st, out["__type"]) == (403, "InvalidSignatureException")
    assert call(fake, SM, params)[0] == 400
    assert call(fake, SM, params)[0] == 200

    fake.fault(SM, "down", count=2)
    with pytest.raises(http.client.RemoteDisconnected):
        call(fake, SM, params)
    rc, code, _ = curl(fake)
    assert (rc, code) == (52, 0)  # curl: (52) Empty reply from server
    assert call(fake, SM, params)[0] == 200

    fake.fault(SM, "slow", delay=1.0)
    t0 = time.monotonic()
    assert call(fake, SM, params)[0] == 200
    assert time.monotonic() - t0 >= 1.0
    t0 = time.monotonic()
    assert call(fake, SM, params)[0] == 200
    assert time.monotonic() - t0 < 0.8

    fake.fault(SM, "throttle", count=-1)
    for _ in range(3):
        assert call(fake, SM, params)[0] == 400
    fake.clear_faults()
    assert call(fake, SM, params)[0] == 200

    fake.fault(CE_USAGE, "error500")
    st, out = call(fake, CE_USAGE, usage_query("2024-03-01", "2024-03-02"))
    assert (st, out["__type"]) == (500, "InternalFailure")

    fake.fault("imds", "throttle")
    st, _, _ = gwtest.request(
        fake.port, "PUT", "/latest/api/token",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert st == 429
    fake.fault("imds", "error500")
    st, _, _ = imds_get(fake, "/latest/meta-data/placement/region")
    assert st == 500
    fake.fault("ecs", "down")
    with pytest.raises(http.client.RemoteDisconnected):
        gwtest.request(fake.port, "GET", "/ecs/credentials")
    st, _, _ = gwtest.request(fake.port, "GET", "/ecs/credentials")
    assert st == 200

    st = fake.state()
    assert st["faults_applied"] == {SM: 11, CE_USAGE: 1, "imds": 2, "ecs": 1}
    assert st["faults"] == {}
    log = [e for e in fake.log() if e["fault"] == "down"]
    assert [(e["service"], e["status"]) for e in log] == [
        ("secretsmanager", None), ("secretsmanager", None), ("ecs", None)]

    # the control API refuses nonsense
    for bad in ({"target": "nope", "mode": "down"},
                {"target": SM, "mode": "explode"},
                {"target": SM, "mode": "down", "count": 0}):
        st, out = fake.control("POST", "faults", bad)
        assert st == 400 and "error" in out, bad


# -------------------------------------------------------- Cost Explorer


def usage_query(start, end, group=True, token=None):
    q = {"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY",
         "Metrics": ["UnblendedCost"]}
    if group:
        q["GroupBy"] = [{"Type": "DIMENSION", "Key": "SERVICE"}]
    if token is not None:
        q["NextPageToken"] = token
    return q


def groups(result):
    return {g["Keys"][0]: g["Metrics"]["UnblendedCost"]["Amount"]
            for g in result["Groups"]}


def test_cost_and_usage_pages(fake_aws):
    fake = fake_aws(base_state())
    ce = client(fake, "ce")
    q = usage_query("2024-03-01", "2024-03-11")
    q.pop("NextPageToken", None)

    p1 = ce.get_cost_and_usage(**q)
    assert len(p1["ResultsByTime"]) == 7
    assert p1["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]
    assert [r["TimePeriod"] for r in p1["ResultsByTime"]] == [
        {"Start": "2024-03-%02d" % d, "End": "2024-03-%02d" % (d + 1)}
        for d in range(1, 8)]
    assert groups(p1["ResultsByTime"][0]) == {"Amazon EC2": "1.01",
                                              "Amazon S3": "0.05"}
    assert groups(p1["ResultsByTime"][2]) == {"Amazon EC2": "1.03",
                                              "Amazon S3": "0.15"}
    assert groups(p1["ResultsByTime"][3]) == {"Amazon EC2": "1.04"}
    assert p1["ResultsByTime"][0]["Groups"][0]["Metrics"] == {
        "UnblendedCost": {"Amount": "1.01", "Unit": "USD"}}
    assert p1["ResultsByTime"][0]["Total"] == {}
    token = p1["NextPageToken"]

    p2 = ce.get_cost_and_usage(NextPageToken=token, **q)
    assert "NextPageToken" not in p2
    assert [(r["TimePeriod"]["Start"], groups(r))
            for r in p2["ResultsByTime"]] == [
        ("2024-03-08", {"Amazon EC2": "1.08", "Amazon S3": "0.05"}),
        ("2024-03-09", {"AWS Secrets Manager": "0.40", "Amazon EC2": "1.09",
                        "Amazon S3": "0.05"}),
        ("2024-03-10", {"Amazon EC2": "1.10", "Amazon S3": "0.05"})]
    # [Start, End): neither 29 February nor 11 March; exact to the cent
    total = {}
    for r in p1["ResultsByTime"] + p2["ResultsByTime"]:
        for svc, amount in groups(r).items():
            total[svc] = total.get(svc, Decimal(0)) + Decimal(amount)
    assert total == {"Amazon EC2": Decimal("10.55"),
                     "Amazon S3": Decimal("0.55"),
                     "AWS Secrets Manager": Decimal("0.40")}

    # a made-up token, and a real one with another query
    with pytest.raises(ClientError) as ei:
        ce.get_cost_and_usage(NextPageToken="bogus-token", **q)
    assert error_of(ei) == (400, "InvalidNextTokenException",
                            "Invalid pagination token")
    other = usage_query("2024-03-01", "2024-03-10")
    st, out = call(fake, CE_USAGE, dict(other, NextPageToken=token))
    assert (st, out["__type"]) == (400, "InvalidNextTokenException")

    # no GroupBy: one Total a day
    r = ce.get_cost_and_usage(**usage_query("2024-03-08", "2024-03-11",
                                            group=False))
    assert [x["Total"]["UnblendedCost"] for x in r["ResultsByTime"]] == [
        {"Amount": "1.13", "Unit": "USD"}, {"Amount": "1.54", "Unit": "USD"},
        {"Amount": "1.15", "Unit": "USD"}]
    assert "NextPageToken" not in r

    # Cost Explorer signs for us-east-1 only
    with pytest.raises(ClientError) as ei:
        client(fake, "ce", region=REGION).get_cost_and_usage(**q)
    assert error_of(ei)[:2] == (403, "InvalidSignatureException")

    f = ce.get_cost_forecast(TimePeriod={"Start": "2024-04-01",
                                         "End": "2024-05-01"},
                             Metric="UNBLENDED_COST", Granularity="MONTHLY")
    assert f["Total"] == {"Amount": "412.50", "Unit": "USD"}
    assert f["ForecastResultsByTime"] == [
        {"TimePeriod": {"Start": "2024-04-01", "End": "2024-05-01"},
         "MeanValue": "412.50"}]

    st = fake.state()
    assert st["calls"] == {CE_USAGE: 6, CE_FORECAST: 1}
    assert st["signature_failures"] == 1
    assert {e["service"] for e in fake.log()} == {"ce", "control"}


def test_cost_and_usage_monthly_and_validation(fake_aws):
    fake = fake_aws(base_state(page_size=None))
    q = {"TimePeriod": {"Start": "2024-02-15", "End": "2024-03-11"},
         "Granularity": "MONTHLY", "Metrics": ["UnblendedCost"]}
    st, out = call(fake, CE_USAGE, q)
    assert st == 200
    assert [(r["TimePeriod"], r["Total"]["UnblendedCost"]["Amount"])
            for r in out["ResultsByTime"]] == [
        ({"Start": "2024-02-15", "End": "2024-03-01"}, "99.00"),
        ({"Start": "2024-03-01", "End": "2024-03-11"}, "11.50")]
    for bad in (dict(q, Granularity="HOURLY"), dict(q, Metrics=["Bogus"]),
                dict(q, TimePeriod={"Start": "2024-03-02",
                                    "End": "2024-03-01"}),
                dict(q, GroupBy=[{"Type": "DIMENSION", "Key": "REGION"}])):
        st, out = call(fake, CE_USAGE, bad)
        assert (st, out["__type"]) == (400, "ValidationException"), bad


# ------------------------------------------------------------------ log


def test_log_holds_no_secret(fake_aws):
    ecs_auth = "ecs-auth-token-1a2b3c4d5e6f"
    fake = fake_aws(base_state(ecs={"authorization": ecs_auth}))
    imds_tok = imds_token(fake)
    ic = imds_credentials(fake, imds_tok)
    st, _, body = gwtest.request(fake.port, "GET", "/ecs/credentials",
                                 headers={"Authorization": ecs_auth})
    assert st == 200
    ec = json.loads(body)
    rotated = "rotated-secret-string-77aa"
    fake.put_secret(AUTH_NAME, rotated)
    for c in (ic, ec):
        st, out = call(fake, SM, {"SecretId": AUTH_NAME},
                       akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                       token=c["Token"])
        assert (st, out["SecretString"]) == (200, rotated)
    assert curl(fake)[:2] == (0, 200)
    assert curl(fake, secret="wrong-" + SECRET)[:2] == (0, 403)
    st, _ = call(fake, SM, {"SecretId": AUTH_NAME}, akid=ic["AccessKeyId"],
                 secret=ic["SecretAccessKey"])
    assert st == 403

    text = fake.log_path.read_text()
    assert len(fake.log()) == 9
    assert ic["AccessKeyId"] in text and ec["AccessKeyId"] in text
    for secret in (SECRET, ic["SecretAccessKey"], ic["Token"],
                   ec["SecretAccessKey"], ec["Token"], imds_tok, ecs_auth,
                   AUTH_VALUE, "pw-7c1e9a0b55", rotated):
        assert secret not in text
    out = fake.proc.stdout_path.read_text()
    assert out == "LISTENING %d\n" % fake.port
