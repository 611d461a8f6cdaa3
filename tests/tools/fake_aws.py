#!/usr/bin/python3
"""fake_aws.py - a local stand-in for the parts of AWS portcullis talks to
(IMDSv2, ECS container credentials, Secrets Manager, Cost Explorer), for
the integration tests. It checks what real AWS checks: every Secrets
Manager and Cost Explorer request must carry a valid SigV4 signature,
recomputed here with botocore, so a wrongly signed request fails a test.

    fake_aws.py [--port N] [--state FILE] [--log FILE]

Binds 127.0.0.1 (port 0 unless --port), prints "LISTENING <port>" on
stdout and serves until SIGTERM. Standard library plus botocore only; run
with /usr/bin/python3 (Debian's python3-botocore).

State file (JSON; every key optional, defaults shown in DEFAULT_STATE):

    {"region": "eu-west-1",                  # Secrets Manager's region
     "static_keys": {"AKIDTEST": "secret"},  # long-term keys: id -> secret
     "imds": {"role": "portcullis-test",     # null: no role attached (404)
              "credential_ttl": 3600,        # seconds temp creds live
              "rotate_before": 0},           # issue a new set when the
                                             # current one has less left
     "ecs": {"authorization": null,          # a string: required verbatim
                                             # in the Authorization header
             "role": "portcullis-task", "credential_ttl": 3600,
             "rotate_before": 0},
     "secrets": {"prometheus/prometheus-auth": "{\\"username\\": ...}"},
     "deny": ["name", ...],                  # GetSecretValue on these:
                                             # AccessDeniedException
     "costs": [{"start": "2024-01-01", "service": "Amazon EC2",
                "amount": "1.23"}, ...],     # one day's cost of a service
     "forecast": {"total": "412.50",         # null: DataUnavailable
                  "periods": [{"start": "2024-02-01", "end": "2024-03-01",
                               "mean": "412.50"}]},
     "page_size": 7}                         # periods per GetCostAndUsage
                                             # page; null or 0: one page

Endpoints (one port; the path decides):

  IMDSv2        PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds
                1..21600, else 400); every GET /latest/... needs a live
                X-aws-ec2-metadata-token (else 401: IMDSv1 is off); any
                request with X-Forwarded-For: 403.
                GET /latest/meta-data/iam/security-credentials/[ROLE],
                /latest/meta-data/placement/region,
                /latest/meta-data/placement/availability-zone,
                /latest/meta-data/instance-id,
                /latest/dynamic/instance-identity/document.
  ECS           GET /ecs/credentials and GET /v2/credentials/ID; with
                ecs.authorization set, "Authorization: <it>" is required
                (absent: 401, different: 403).
  Secrets Mgr   POST / with X-Amz-Target: secretsmanager.GetSecretValue,
                {"SecretId": name or ARN, "VersionStage", "VersionId"}.
                Signing scope: <region>/secretsmanager.
  Cost Explorer POST / with X-Amz-Target: AWSInsightsIndexService.
                GetCostAndUsage (DAILY or MONTHLY; GroupBy only
                [{"Type": "DIMENSION", "Key": "SERVICE"}]; no Filter; every
                cost metric gets the figures of the "costs" table; pages of
                page_size periods with an opaque NextPageToken) and
                AWSInsightsIndexService.GetCostForecast (the "forecast"
                state as it is). Signing scope: us-east-1/ce.
                The JSON services need Content-Type: application/
                x-amz-json-1.1 (else 400 SerializationException; checked
                after the signature).

Signature check (verify_sigv4): Authorization "AWS4-HMAC-SHA256
Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b,
Signature=hex". Header fields that appear more than once are combined
with "," as an HTTP server does. X-Amz-Date must appear once, be
YYYYMMDDTHHMMSSZ, be within 5 minutes of the fake's clock, and DATE must
be its day. Temporary credentials (issued by IMDS/ECS here) need their
X-Amz-Security-Token. SignedHeaders must be lowercase, sorted, without
repeats, include host and x-amz-date, and every name in it must be in the
request. The signature is then recomputed with botocore's SigV4Auth over
exactly the signed headers, values as received, the client's timestamp,
and the body's SHA-256 (an X-Amz-Content-Sha256 header must equal it).

Faults (POST /_fake/faults) on "down" and "slow" strike before anything
else; "throttle", "error500" and "denied" after the signature passed, so a
faulted answer still means the request was signed right.

Control API (unsigned, tests only; JSON answers):
  GET    /_fake/state                counters, faults, clock skew, issued
                                     credential ids (never a secret)
  PUT    /_fake/secrets/NAME         body = new SecretString; creates or
                                     rotates (new VersionId, AWSCURRENT;
                                     the old one becomes AWSPREVIOUS)
  DELETE /_fake/secrets/NAME         gone: ResourceNotFoundException
  PUT    /_fake/deny/NAME, DELETE /_fake/deny/NAME
  POST   /_fake/faults {"target": an X-Amz-Target | "imds" | "ecs",
                        "mode": "throttle" | "error500" | "denied" |
                                "down" | "slow",
                        "count": N (-1: until cleared), "delay": S (slow)}
  DELETE /_fake/faults
  POST   /_fake/credentials/expire   issued temporary credentials expire
                                     now; IMDS/ECS issue new ones
  POST   /_fake/clock {"skew": S}    the fake's clock = real clock + S

Fault answers: throttle -> 400 ThrottlingException (429 for imds/ecs);
error500 -> 500 InternalServiceError (secretsmanager) / InternalFailure
(ce) / 500 (imds/ecs); denied -> 400 AccessDeniedException (403 for
imds/ecs); down -> the connection is closed without an answer; slow ->
sleep "delay" seconds, then answer normally.

Log (--log): one JSON object per request: time, method, path, target
(X-Amz-Target), service (imds, ecs, secretsmanager, ce, control),
signature ("ok", "missing", or why it failed; null where none is needed),
access_key_id, signed_headers and headers (names only, in order sent),
status (null when dropped), error_type (the __type), fault, secret_id.
Never a secret access key, session token, IMDS token, ECS authorization
value or secret value.
"""

import argparse
import calendar
import datetime
import decimal
import hashlib
import hmac
import json
import re
import secrets
import signal
import string
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.compat import HTTPHeaders

ACCOUNT = "123456789012"
CE_REGION = "us-east-1"
MAX_CLOCK_SKEW = 300  # seconds, as AWS allows
JSON_11 = "application/x-amz-json-1.1"
MAX_BODY = 10 << 20

SM_GET = "secretsmanager.GetSecretValue"
CE_USAGE = "AWSInsightsIndexService.GetCostAndUsage"
CE_FORECAST = "AWSInsightsIndexService.GetCostForecast"
SERVICE_PREFIXES = {"secretsmanager.": "secretsmanager",
                    "AWSInsightsIndexService.": "ce"}
FAULT_TARGETS = {SM_GET, CE_USAGE, CE_FORECAST, "imds", "ecs"}
FAULT_MODES = {"throttle", "error500", "denied", "down", "slow"}
COST_METRICS = {"UnblendedCost", "BlendedCost", "AmortizedCost",
                "NetUnblendedCost", "NetAmortizedCost"}
FORECAST_METRICS = {"UNBLENDED_COST", "BLENDED_COST", "AMORTIZED_COST",
                    "NET_UNBLENDED_COST", "NET_AMORTIZED_COST"}

BAD_SIGNATURE = ("The request signature we calculated does not match the "
                 "signature you provided. Check your AWS Secret Access Key "
                 "and signing method. Consult the service documentation "
                 "for details.")
BAD_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"

DEFAULT_STATE = {
    "region": "eu-west-1",
    "static_keys": {"AKIDTEST": "fake-aws-static-secret-key-0123456789ab"},
    "imds": {"role": "portcullis-test", "credential_ttl": 3600,
             "rotate_before": 0},
    "ecs": {"authorization": None, "role": "portcullis-task",
            "credential_ttl": 3600, "rotate_before": 0},
    "secrets": {},
    "deny": [],
    "costs": [],
    "forecast": None,
    "page_size": None,
}


class ApiError(Exception):
    """An answer other than success. For JSON services the body is
    {"__type": type, "message": message}; `verdict` is the signature
    verdict to log when the signature check failed."""

    def __init__(self, status, type_, message, verdict=None):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.verdict = verdict


class PlainError(Exception):
    """An IMDS/ECS/control answer: status and a text (or JSON) body."""

    def __init__(self, status, body=b"", ctype="text/plain"):
        super().__init__(status)
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.ctype = ctype


class Drop(Exception):
    """Close the connection without answering."""


def iso8601(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def random_id(prefix, n, alphabet=string.ascii_uppercase + string.digits):
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def parse_day(text, what):
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text or ""):
            raise ValueError
        return datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ApiError(400, "ValidationException",
                       "%s: invalid date %r, expected YYYY-MM-DD"
                       % (what, text))


class Request:
    """What the handler received: method, request-target, header fields
    in order (name, value) with values stripped, body bytes."""

    def __init__(self, method, target, fields, body):
        self.method = method
        self.target = target
        self.path = urlsplit(target).path
        self.fields = fields
        self.body = body

    def all(self, name):
        name = name.lower()
        return [v for n, v in self.fields if n.lower() == name]

    def get(self, name):
        """The field as an HTTP server sees it: repeats joined by ","."""
        vals = self.all(name)
        return ",".join(vals) if vals else None

    def names(self):
        return [n.lower() for n, _ in self.fields]


class SignedSetSigV4(botocore.auth.SigV4Auth):
    """botocore's SigV4Auth with the canonical headers made of exactly the
    client's SignedHeaders. The stock headers_to_sign() drops expect,
    user-agent and x-amzn-trace-id (its blacklist) and adds host from the
    URL: it decides what a client *should* sign, a server must take what
    the client *did* sign."""

    def __init__(self, credentials, service, region, signed_names):
        super().__init__(credentials, service, region)
        self._signed_names = signed_names

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self._signed_names:
            out[name] = request.headers[name]
        return out


def recompute_signature(req, signed, akid, secret, token, service, region,
                        amz_date):
    """The signature botocore computes for this request as received."""
    headers = {name: req.get(name) for name in signed}
    aws_req = botocore.awsrequest.AWSRequest(
        method=req.method, url="http://fake-aws.invalid" + req.target,
        data=req.body, headers=headers)
    aws_req.context["timestamp"] = amz_date
    auth = SignedSetSigV4(botocore.credentials.Credentials(akid, secret,
                                                           token),
                          service, region, signed)
    canonical = auth.canonical_request(aws_req)
    return auth.signature(auth.string_to_sign(aws_req, canonical), aws_req)


def incomplete(message, verdict):
    return ApiError(400, "IncompleteSignatureException", message, verdict)


def bad_signature(verdict, message=BAD_SIGNATURE):
    return ApiError(403, "InvalidSignatureException", message, verdict)


class Fake:
    def __init__(self, state, logf):
        st = json.loads(json.dumps(DEFAULT_STATE))
        for k, v in state.items():
            if isinstance(v, dict) and isinstance(st.get(k), dict) \
                    and k not in ("static_keys", "secrets"):
                st[k].update(v)
            else:
                st[k] = v
        self.st = st
        self.lock = threading.Lock()
        self.logf = logf
        self.skew = 0.0
        self.issued = {}  # akid -> {secret, token, expires, source, role}
        self.current = {"imds": None, "ecs": None}
        self.imds_tokens = {}  # token -> expiry (fake clock)
        self.faults = {}  # target -> {mode, count, delay}
        self.page_tokens = {}  # token -> (query fingerprint, offset)
        self.deny = set(st.get("deny") or [])
        self.counts = {
            "imds": {"token_puts": 0, "tokens_issued": 0,
                     "credential_fetches": 0, "credentials_issued": 0},
            "ecs": {"credential_fetches": 0, "credentials_issued": 0},
            "calls": {}, "secret_reads": {}, "signature_failures": 0,
            "faults_applied": {},
        }
        self.secrets = {}
        for name, value in (st.get("secrets") or {}).items():
            self._put_secret(name, value)
        self.costs = []
        for e in st.get("costs") or []:
            self.costs.append((parse_day(e["start"], "costs"), e["service"],
                               decimal.Decimal(str(e["amount"]))))

    def now(self):
        return time.time() + self.skew

    def log(self, rec):
        if self.logf:
            with self.lock:
                self.logf.write(json.dumps(rec) + "\n")
                self.logf.flush()

    # ----------------------------------------------------------- secrets

    def _put_secret(self, name, value):
        """Creates or rotates a secret; returns the new VersionId."""
        now = self.now()
        rec = self.secrets.get(name)
        if rec is None:
            suffix = "".join(string.ascii_letters[b % 52] for b in
                             hashlib.sha256(name.encode()).digest()[:6])
            rec = {"arn": "arn:aws:secretsmanager:%s:%s:secret:%s-%s"
                          % (self.st["region"], ACCOUNT, name, suffix),
                   "created": now, "versions": []}
            self.secrets[name] = rec
        for v in rec["versions"]:
            if "AWSCURRENT" in v["stages"]:
                v["stages"] = ["AWSPREVIOUS"]
            elif "AWSPREVIOUS" in v["stages"]:
                v["stages"] = []
        vid = str(uuid.uuid4())
        rec["versions"].append({"id": vid, "string": value,
                                "stages": ["AWSCURRENT"], "created": now})
        return vid

    # ------------------------------------------------------- credentials

    def credentials(self, source):
        """The current temporary credentials of IMDS or ECS; a new set
        when there is none or it is (nearly) expired."""
        conf = self.st[source]
        with self.lock:
            self.counts[source]["credential_fetches"] += 1
            now = self.now()
            c = self.issued.get(self.current[source])
            if c is None or now >= c["expires"] - conf["rotate_before"]:
                akid = random_id("ASIA", 16)
                c = {"akid": akid, "secret": random_id(
                        "", 40, string.ascii_letters + string.digits + "+/"),
                     "token": "FQoG" + secrets.token_urlsafe(180),
                     "issued": now, "expires": now + conf["credential_ttl"],
                     "source": source, "role": conf["role"]}
                self.issued[akid] = c
                self.current[source] = akid
                self.counts[source]["credentials_issued"] += 1
            return dict(c)

    def expire_credentials(self):
        with self.lock:
            now = self.now()
            for c in self.issued.values():
                c["expires"] = min(c["expires"], now)
            self.current = {"imds": None, "ecs": None}
            return len(self.issued)

    # ------------------------------------------------------------ faults

    def take_fault(self, target, modes):
        """The fault mode to apply to this request (one of `modes`), or
        None; consumes one of its count."""
        with self.lock:
            f = self.faults.get(target)
            if not f or f["mode"] not in modes:
                return None
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    del self.faults[target]
            fa = self.counts["faults_applied"]
            fa[target] = fa.get(target, 0) + 1
            return dict(f)

    # --------------------------------------------------------- signature

    def verify_sigv4(self, req, service, region, rec):
        """Checks the request's SigV4 signature as AWS would; returns the
        caller {"akid", "arn"} or raises ApiError with a verdict."""
        auths = req.all("authorization")
        if not auths:
            raise ApiError(400, "MissingAuthenticationTokenException",
                           "Missing Authentication Token", "missing")
        if len(auths) > 1:
            raise incomplete("Authorization header sent %d times."
                             % len(auths), "authorization sent %d times"
                             % len(auths))
        algo, _, rest = auths[0].partition(" ")
        if algo != "AWS4-HMAC-SHA256":
            raise incomplete("Unsupported AWS 'algorithm': '%s'." % algo[:40],
                             "algorithm is not AWS4-HMAC-SHA256")
        params = {}
        for part in rest.split(","):
            k, eq, v = part.strip().partition("=")
            if not eq or k in params:
                raise incomplete("Authorization header is malformed.",
                                 "authorization parameters garbled")
            params[k] = v
        absent = [k for k in ("Credential", "SignedHeaders", "Signature")
                  if not params.get(k)]
        if absent:
            raise incomplete(" ".join("Authorization header requires '%s' "
                                      "parameter." % k for k in absent),
                             "authorization lacks " + ",".join(absent))
        cred = params["Credential"].split("/")
        if len(cred) != 5 or cred[4] != "aws4_request" or not all(cred):
            raise incomplete("Credential should be AKID/YYYYMMDD/region/"
                             "service/aws4_request.",
                             "credential scope garbled")
        akid, scope_date, scope_region, scope_service, _ = cred
        rec["access_key_id"] = akid
        signed = params["SignedHeaders"].split(";")
        rec["signed_headers"] = signed[:50]
        signature = params["Signature"]

        dates = req.all("x-amz-date")
        if not dates:
            raise incomplete("Authorization header requires existence of "
                             "either a 'X-Amz-Date' or a 'Date' header.",
                             "x-amz-date missing")
        amz_date = req.get("x-amz-date")
        if len(dates) > 1:
            raise incomplete("Date must be in ISO-8601 'basic format'. Got "
                             "'%s'." % amz_date[:100],
                             "x-amz-date sent %d times (%s)"
                             % (len(dates), amz_date[:100]))
        try:
            if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
                raise ValueError
            date_ts = calendar.timegm(time.strptime(amz_date,
                                                    "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise incomplete("Date must be in ISO-8601 'basic format'. Got "
                             "'%s'." % amz_date[:100],
                             "x-amz-date malformed (%s)" % amz_date[:100])

        # whose key is it?
        tokens = req.all("x-amz-security-token")
        with self.lock:
            temp = self.issued.get(akid)
            temp = dict(temp) if temp else None
        static = self.st["static_keys"].get(akid)
        if temp is None and static is None:
            raise ApiError(403, "UnrecognizedClientException", BAD_TOKEN,
                           "unknown access key id")
        if temp is None:
            if tokens:
                raise ApiError(403, "UnrecognizedClientException", BAD_TOKEN,
                               "x-amz-security-token sent with a long-term "
                               "access key")
            secret, token = static, None
            rec["caller"] = "static"
        else:
            rec["caller"] = temp["source"]
            if not tokens:
                raise ApiError(403, "UnrecognizedClientException", BAD_TOKEN,
                               "temporary credentials without "
                               "x-amz-security-token")
            if len(tokens) > 1 or not hmac.compare_digest(
                    tokens[0].encode(), temp["token"].encode()):
                raise ApiError(403, "UnrecognizedClientException", BAD_TOKEN,
                               "x-amz-security-token is not the token "
                               "issued with this access key id")
            if self.now() >= temp["expires"]:
                raise ApiError(403, "ExpiredTokenException", EXPIRED_TOKEN,
                               "temporary credentials expired at %s"
                               % iso8601(temp["expires"]))
            secret, token = temp["secret"], temp["token"]

        # the credential scope
        if scope_date != amz_date[:8]:
            raise bad_signature(
                "scope date %s is not x-amz-date's day %s"
                % (scope_date, amz_date[:8]),
                "Date in Credential scope does not match YYYYMMDD from "
                "ISO-8601 version of date from HTTP: '%s' != '%s', from "
                "'%s'." % (scope_date, amz_date[:8], amz_date))
        if scope_region != region:
            raise bad_signature("scope region %s, this endpoint is %s"
                                % (scope_region, region),
                                "Credential should be scoped to a valid "
                                "region. ")
        if scope_service != service:
            raise bad_signature("scope service %s, this endpoint is %s"
                                % (scope_service, service),
                                "Credential should be scoped to correct "
                                "service: '%s'. " % service)
        now = self.now()
        fmt = "%Y%m%dT%H%M%SZ"
        if date_ts < now - MAX_CLOCK_SKEW:
            raise bad_signature(
                "x-amz-date %s is %.0f s behind the clock" %
                (amz_date, now - date_ts),
                "Signature expired: %s is now earlier than %s (%s - 5 min.)"
                % (amz_date, time.strftime(fmt, time.gmtime(
                    now - MAX_CLOCK_SKEW)),
                   time.strftime(fmt, time.gmtime(now))))
        if date_ts > now + MAX_CLOCK_SKEW:
            raise bad_signature(
                "x-amz-date %s is %.0f s ahead of the clock" %
                (amz_date, date_ts - now),
                "Signature not yet current: %s is still later than %s "
                "(%s + 5 min.)" % (amz_date, time.strftime(fmt, time.gmtime(
                    now + MAX_CLOCK_SKEW)),
                    time.strftime(fmt, time.gmtime(now))))

        # the signed header set
        for name in signed:
            if not name or name != name.lower() or name != name.strip() \
                    or name == "authorization":
                raise incomplete("SignedHeaders is malformed.",
                                 "SignedHeaders has a bad name %r"
                                 % name[:40])
        for name in set(signed):
            if signed.count(name) > 1:
                raise incomplete("SignedHeaders is malformed.",
                                 "SignedHeaders lists %r %d times"
                                 % (name, signed.count(name)))
        if signed != sorted(signed):
            raise incomplete("SignedHeaders is malformed.",
                             "SignedHeaders is not sorted")
        if "host" not in signed:
            raise incomplete("'Host' or ':authority' must be a "
                             "'SignedHeader' in the AWS Authorization.",
                             "SignedHeaders lacks host")
        if "x-amz-date" not in signed:
            raise incomplete("'X-Amz-Date' must be a 'SignedHeader' in the "
                             "AWS Authorization.",
                             "SignedHeaders lacks x-amz-date")
        present = set(req.names())
        for name in signed:
            if name not in present:
                raise incomplete("'%s' is named as a SignedHeader, but it "
                                 "does not exist in the HTTP request."
                                 % name,
                                 "signed header %r is not in the request"
                                 % name)

        # the payload hash botocore would take from the header
        declared = req.get("x-amz-content-sha256")
        if declared is not None and declared != \
                hashlib.sha256(req.body).hexdigest():
            raise bad_signature("x-amz-content-sha256 is not the SHA-256 "
                                "of the body")

        want = recompute_signature(req, signed, akid, secret, token, service,
                                   region, amz_date)
        if not hmac.compare_digest(want.encode(),
                                   signature.encode("utf-8", "replace")):
            raise bad_signature("signature mismatch")
        if temp is not None:
            arn = "arn:aws:sts::%s:assumed-role/%s/i-0fa4e0000000000f" \
                % (ACCOUNT, temp["role"])
        else:
            arn = "arn:aws:iam::%s:user/%s" % (ACCOUNT, akid)
        return {"akid": akid, "arn": arn}

    # ------------------------------------------------------ JSON services

    def api(self, req, rec):
        target = req.get("x-amz-target")
        rec["target"] = target
        with self.lock:
            calls = self.counts["calls"]
            if target:
                calls[target] = calls.get(target, 0) + 1
        service = None
        for prefix, svc in SERVICE_PREFIXES.items():
            if target and target.startswith(prefix):
                service = svc
        if req.method != "POST" or req.path != "/" or service is None:
            raise ApiError(400, "UnknownOperationException",
                           "fake_aws serves no %s %s with X-Amz-Target %r"
                           % (req.method, req.path, target))
        rec["service"] = service
        fault = self.take_fault(target, {"down", "slow"})
        if fault:
            rec["fault"] = fault["mode"]
            if fault["mode"] == "down":
                raise Drop()
            time.sleep(fault["delay"])
        region = self.st["region"] if service == "secretsmanager" \
            else CE_REGION
        try:
            caller = self.verify_sigv4(req, service, region, rec)
        except ApiError as e:
            with self.lock:
                self.counts["signature_failures"] += 1
            rec["signature"] = e.verdict
            raise
        rec["signature"] = "ok"
        fault = self.take_fault(target, {"throttle", "error500", "denied"})
        if fault:
            rec["fault"] = fault["mode"]
            if fault["mode"] == "throttle":
                raise ApiError(400, "ThrottlingException", "Rate exceeded")
            if fault["mode"] == "error500":
                raise ApiError(500, "InternalServiceError"
                               if service == "secretsmanager"
                               else "InternalFailure",
                               "An error occurred on the server side.")
            raise ApiError(400, "AccessDeniedException",
                           "User: %s is not authorized to perform: %s"
                           % (caller["arn"], target))
        ctype = (req.get("content-type") or "").split(";")[0].strip()
        if ctype.lower() != JSON_11:
            raise ApiError(400, "SerializationException",
                           "Content-Type must be %s, got %r"
                           % (JSON_11, ctype[:60]))
        try:
            params = json.loads(req.body or b"{}")
            if not isinstance(params, dict):
                raise ValueError
        except ValueError:
            raise ApiError(400, "SerializationException",
                           "The request body is not a JSON object")
        if target == SM_GET:
            return self.get_secret_value(params, caller, rec)
        if target == CE_USAGE:
            return self.get_cost_and_usage(params)
        if target == CE_FORECAST:
            return self.get_cost_forecast(params)
        raise ApiError(400, "UnknownOperationException",
                       "fake_aws does not implement %s" % target)

    def get_secret_value(self, params, caller, rec):
        sid = params.get("SecretId")
        if not isinstance(sid, str) or not sid:
            raise ApiError(400, "InvalidParameterException",
                           "You must provide a value for the SecretId "
                           "parameter.")
        rec["secret_id"] = sid
        not_found = ApiError(400, "ResourceNotFoundException",
                             "Secrets Manager can't find the specified "
                             "secret.")
        with self.lock:
            name = sid if sid in self.secrets else None
            if name is None:
                for n, s in self.secrets.items():
                    if s["arn"] == sid:
                        name = n
            if name is None:
                raise not_found
            if name in self.deny:
                raise ApiError(400, "AccessDeniedException",
                               "User: %s is not authorized to perform: "
                               "secretsmanager:GetSecretValue on resource: "
                               "%s because no identity-based policy allows "
                               "the secretsmanager:GetSecretValue action"
                               % (caller["arn"], sid))
            s = self.secrets[name]
            vid = params.get("VersionId")
            stage = params.get("VersionStage")
            if vid is not None:
                match = [v for v in s["versions"] if v["id"] == vid
                         and (stage is None or stage in v["stages"])]
                what = "VersionId: %s" % vid
            else:
                stage = stage or "AWSCURRENT"
                match = [v for v in s["versions"] if stage in v["stages"]]
                what = "staging label: %s" % stage
            if not match:
                raise ApiError(400, "ResourceNotFoundException",
                               "Secrets Manager can't find the specified "
                               "secret value for %s" % what)
            v = match[0]
            reads = self.counts["secret_reads"]
            reads[name] = reads.get(name, 0) + 1
            return {"ARN": s["arn"], "Name": name, "VersionId": v["id"],
                    "SecretString": v["string"],
                    "VersionStages": list(v["stages"]),
                    "CreatedDate": round(v["created"], 3)}

    @staticmethod
    def _time_period(params):
        tp = params.get("TimePeriod")
        if not isinstance(tp, dict):
            raise ApiError(400, "ValidationException",
                           "TimePeriod is required")
        start = parse_day(tp.get("Start"), "TimePeriod.Start")
        end = parse_day(tp.get("End"), "TimePeriod.End")
        if start >= end:
            raise ApiError(400, "ValidationException",
                           "Start date (%s) must be before end date (%s)"
                           % (start, end))
        return start, end

    def get_cost_and_usage(self, params):
        start, end = self._time_period(params)
        gran = params.get("Granularity")
        if gran not in ("DAILY", "MONTHLY"):
            raise ApiError(400, "ValidationException",
                           "fake_aws serves Granularity DAILY or MONTHLY, "
                           "got %r" % (gran,))
        metrics = params.get("Metrics")
        if not metrics or not isinstance(metrics, list) \
                or any(m not in COST_METRICS for m in metrics):
            raise ApiError(400, "ValidationException",
                           "Metrics must be a non-empty list of %s"
                           % sorted(COST_METRICS))
        group_by = params.get("GroupBy")
        if group_by not in (None, [],
                            [{"Type": "DIMENSION", "Key": "SERVICE"}]):
            raise ApiError(400, "ValidationException",
                           "fake_aws groups by DIMENSION SERVICE only")
        if params.get("Filter") is not None:
            raise ApiError(400, "ValidationException",
                           "fake_aws does not implement Filter")
        periods = []
        day = start
        while day < end:
            if gran == "DAILY":
                nxt = day + datetime.timedelta(days=1)
            else:
                nxt = (day.replace(day=28) + datetime.timedelta(days=4)) \
                    .replace(day=1)
            nxt = min(nxt, end)
            periods.append((day, nxt))
            day = nxt

        query = dict(params)
        query.pop("NextPageToken", None)
        fingerprint = json.dumps(query, sort_keys=True)
        offset = 0
        token = params.get("NextPageToken")
        if token is not None:
            with self.lock:
                known = self.page_tokens.get(token)
            if not known or known[0] != fingerprint:
                raise ApiError(400, "InvalidNextTokenException",
                               "Invalid pagination token")
            offset = known[1]
        size = self.st.get("page_size") or len(periods)
        page = periods[offset:offset + size]

        results = []
        for p_start, p_end in page:
            by_service = {}
            for d, svc, amount in self.costs:
                if p_start <= d < p_end:
                    by_service[svc] = by_service.get(svc, 0) + amount
            entry = {"TimePeriod": {"Start": p_start.isoformat(),
                                    "End": p_end.isoformat()},
                     "Total": {}, "Groups": [], "Estimated": False}
            if group_by:
                for svc in sorted(by_service):
                    amount = str(by_service[svc])
                    entry["Groups"].append({
                        "Keys": [svc],
                        "Metrics": {m: {"Amount": amount, "Unit": "USD"}
                                    for m in metrics}})
            else:
                total = str(sum(by_service.values(), decimal.Decimal(0)))
                entry["Total"] = {m: {"Amount": total, "Unit": "USD"}
                                  for m in metrics}
            results.append(entry)
        out = {"ResultsByTime": results, "DimensionValueAttributes": []}
        if group_by:
            out["GroupDefinitions"] = group_by
        if offset + size < len(periods):
            nxt = secrets.token_urlsafe(24)
            with self.lock:
                self.page_tokens[nxt] = (fingerprint, offset + size)
            out["NextPageToken"] = nxt
        return out

    def get_cost_forecast(self, params):
        self._time_period(params)
        if params.get("Metric") not in FORECAST_METRICS:
            raise ApiError(400, "ValidationException",
                           "Metric must be one of %s"
                           % sorted(FORECAST_METRICS))
        if params.get("Granularity") not in ("DAILY", "MONTHLY"):
            raise ApiError(400, "ValidationException",
                           "Granularity must be DAILY or MONTHLY")
        fc = self.st.get("forecast")
        if not fc:
            raise ApiError(400, "DataUnavailableException",
                           "Insufficient amount of historical data to "
                           "generate forecast.")
        return {"Total": {"Amount": str(fc["total"]), "Unit": "USD"},
                "ForecastResultsByTime": [
                    {"TimePeriod": {"Start": p["start"], "End": p["end"]},
                     "MeanValue": str(p["mean"])}
                    for p in fc.get("periods", [])]}

    # -------------------------------------------------------- IMDS, ECS

    def plain_fault(self, target, rec):
        f = self.take_fault(target, FAULT_MODES)
        if not f:
            return
        rec["fault"] = f["mode"]
        if f["mode"] == "down":
            raise Drop()
        if f["mode"] == "slow":
            time.sleep(f["delay"])
        elif f["mode"] == "throttle":
            raise PlainError(429, "Too Many Requests\n")
        elif f["mode"] == "error500":
            raise PlainError(500, "Internal Server Error\n")
        else:
            raise PlainError(403, "Forbidden\n")

    def imds(self, req, rec):
        rec["service"] = "imds"
        self.plain_fault("imds", rec)
        if req.all("x-forwarded-for"):
            raise PlainError(403, "Forbidden\n")
        if req.path == "/latest/api/token":
            if req.method != "PUT":
                raise PlainError(405, "Method Not Allowed\n")
            with self.lock:
                self.counts["imds"]["token_puts"] += 1
            ttl = req.get("x-aws-ec2-metadata-token-ttl-seconds")
            if ttl is None or not re.fullmatch(r"\d{1,6}", ttl) \
                    or not 1 <= int(ttl) <= 21600:
                raise PlainError(400, "Bad Request\n")
            token = secrets.token_urlsafe(42)
            with self.lock:
                self.imds_tokens[token] = self.now() + int(ttl)
                self.counts["imds"]["tokens_issued"] += 1
            return 200, token.encode(), "text/plain", [
                ("X-aws-ec2-metadata-token-ttl-seconds", ttl)]
        if req.method != "GET":
            raise PlainError(405, "Method Not Allowed\n")
        token = req.get("x-aws-ec2-metadata-token")
        with self.lock:
            expiry = self.imds_tokens.get(token) if token else None
        if expiry is None or self.now() >= expiry:
            raise PlainError(401, "Unauthorized\n")
        role = self.st["imds"]["role"]
        region = self.st["region"]
        base = "/latest/meta-data/iam/security-credentials/"
        if req.path == base:
            if not role:
                raise PlainError(404, "Not Found\n")
            return 200, role.encode(), "text/plain", []
        if req.path.startswith(base):
            if not role or req.path[len(base):] != role:
                raise PlainError(404, "Not Found\n")
            c = self.credentials("imds")
            body = {"Code": "Success", "LastUpdated": iso8601(c["issued"]),
                    "Type": "AWS-HMAC", "AccessKeyId": c["akid"],
                    "SecretAccessKey": c["secret"], "Token": c["token"],
                    "Expiration": iso8601(c["expires"])}
            return 200, json.dumps(body, indent=2).encode(), "text/plain", []
        simple = {"/latest/meta-data/placement/region": region,
                  "/latest/meta-data/placement/availability-zone":
                      region + "a",
                  "/latest/meta-data/instance-id": "i-0fa4e0000000000f"}
        if req.path in simple:
            return 200, simple[req.path].encode(), "text/plain", []
        if req.path == "/latest/dynamic/instance-identity/document":
            doc = {"accountId": ACCOUNT, "architecture": "x86_64",
                   "availabilityZone": region + "a",
                   "imageId": "ami-0fa4e000000000000",
                   "instanceId": "i-0fa4e0000000000f",
                   "instanceType": "t3.micro", "privateIp": "10.0.0.10",
                   "pendingTime": "2024-01-01T00:00:00Z", "region": region,
                   "version": "2017-09-30"}
            return 200, json.dumps(doc, indent=2).encode(), "text/plain", []
        raise PlainError(404, "Not Found\n")

    def ecs(self, req, rec):
        rec["service"] = "ecs"
        self.plain_fault("ecs", rec)
        if req.method != "GET":
            raise PlainError(405, "Method Not Allowed\n")
        want = self.st["ecs"]["authorization"]
        if want:
            got = req.all("authorization")
            if not got:
                raise PlainError(401, json.dumps(
                    {"code": "NoCredentials", "message":
                     "Authorization header is required"}),
                    "application/json")
            if len(got) != 1 or not hmac.compare_digest(
                    got[0].encode(), want.encode()):
                raise PlainError(403, json.dumps(
                    {"code": "AccessDenied", "message":
                     "Authorization header is invalid"}),
                    "application/json")
        c = self.credentials("ecs")
        body = {"RoleArn": "arn:aws:iam::%s:role/%s" % (ACCOUNT, c["role"]),
                "AccessKeyId": c["akid"], "SecretAccessKey": c["secret"],
                "Token": c["token"], "Expiration": iso8601(c["expires"])}
        return 200, json.dumps(body).encode(), "application/json", []

    # ------------------------------------------------------ control API

    def snapshot(self):
        with self.lock:
            out = json.loads(json.dumps(self.counts))
            out["faults"] = json.loads(json.dumps(self.faults))
            out["skew"] = self.skew
            out["deny"] = sorted(self.deny)
            out["secrets"] = {
                n: {"arn": s["arn"],
                    "versions": [{"VersionId": v["id"],
                                  "VersionStages": v["stages"]}
                                 for v in s["versions"]]}
                for n, s in self.secrets.items()}
            out["credentials"] = [
                {"access_key_id": c["akid"], "source": c["source"],
                 "expiration": iso8601(c["expires"]),
                 "current": self.current[c["source"]] == c["akid"]}
                for c in self.issued.values()]
        return out

    def control(self, req, rec):
        rec["service"] = "control"
        path, m = req.path, req.method

        def body_json():
            try:
                v = json.loads(req.body or b"null")
            except ValueError:
                v = None
            if not isinstance(v, dict):
                raise PlainError(400, json.dumps(
                    {"error": "body must be a JSON object"}),
                    "application/json")
            return v

        def bad(msg):
            return PlainError(400, json.dumps({"error": msg}),
                              "application/json")

        if path == "/_fake/state" and m == "GET":
            return self.snapshot()
        if path.startswith("/_fake/secrets/") and m in ("PUT", "DELETE"):
            name = unquote(path[len("/_fake/secrets/"):])
            if not name:
                raise bad("no secret name")
            with self.lock:
                if m == "PUT":
                    vid = self._put_secret(name,
                                           req.body.decode("utf-8"))
                    return {"Name": name, "VersionId": vid}
                if self.secrets.pop(name, None) is None:
                    raise PlainError(404, json.dumps(
                        {"error": "no such secret"}), "application/json")
                return {"Name": name, "deleted": True}
        if path.startswith("/_fake/deny/") and m in ("PUT", "DELETE"):
            name = unquote(path[len("/_fake/deny/"):])
            with self.lock:
                if m == "PUT":
                    self.deny.add(name)
                else:
                    self.deny.discard(name)
                return {"deny": sorted(self.deny)}
        if path == "/_fake/faults" and m == "POST":
            f = body_json()
            if f.get("target") not in FAULT_TARGETS:
                raise bad("target must be one of %s" % sorted(FAULT_TARGETS))
            if f.get("mode") not in FAULT_MODES:
                raise bad("mode must be one of %s" % sorted(FAULT_MODES))
            count = f.get("count", 1)
            if not isinstance(count, int) or count == 0 or count < -1:
                raise bad("count must be a positive integer or -1")
            delay = f.get("delay", 2.0 if f["mode"] == "slow" else 0)
            if not isinstance(delay, (int, float)) or delay < 0:
                raise bad("delay must be a number of seconds")
            with self.lock:
                self.faults[f["target"]] = {"mode": f["mode"],
                                            "count": count, "delay": delay}
                return {"faults": json.loads(json.dumps(self.faults))}
        if path == "/_fake/faults" and m == "DELETE":
            with self.lock:
                self.faults.clear()
            return {"faults": {}}
        if path == "/_fake/credentials/expire" and m == "POST":
            return {"expired": self.expire_credentials()}
        if path == "/_fake/clock" and m == "POST":
            skew = body_json().get("skew")
            if not isinstance(skew, (int, float)):
                raise bad("skew must be a number of seconds")
            with self.lock:
                self.skew = float(skew)
            return {"skew": self.skew}
        raise PlainError(404, json.dumps({"error": "no control %s %s"
                                          % (m, path)}), "application/json")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_aws/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass  # the JSON log is the log

    def do_GET(self):
        self.dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    raise ValueError("body too large")
                out += self.rfile.read(size)
                self.rfile.readline(8)
        if te:
            raise ValueError("transfer-encoding %r" % te)
        n = self.headers.get_all("Content-Length") or []
        if len(n) > 1 or (n and not n[0].strip().isdigit()):
            raise ValueError("bad content-length")
        n = int(n[0]) if n else 0
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n)

    def dispatch(self):
        fake = self.server.fake
        # http.client decodes header bytes as latin-1; signers hash UTF-8
        fields = [(n, v.strip().encode("latin-1", "replace")
                   .decode("utf-8", "replace"))
                  for n, v in self.headers.items()]
        rec = {"time": round(time.time(), 6), "method": self.command,
               "path": self.path, "target": None, "service": None,
               "signature": None, "access_key_id": None,
               "signed_headers": None, "caller": None,
               "headers": [n.lower() for n, _ in fields][:60],
               "status": None, "error_type": None, "fault": None,
               "secret_id": None}
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.answer(rec, 400, b"bad request body\n", "text/plain")
            return
        req = Request(self.command, self.path, fields, body)
        try:
            if req.path.startswith("/_fake/"):
                out = fake.control(req, rec)
                self.answer(rec, 200, json.dumps(out).encode(),
                            "application/json")
            elif req.path.startswith("/latest/"):
                status, data, ctype, extra = fake.imds(req, rec)
                self.answer(rec, status, data, ctype, extra)
            elif req.path == "/ecs/credentials" or \
                    req.path.startswith("/v2/credentials/"):
                status, data, ctype, extra = fake.ecs(req, rec)
                self.answer(rec, status, data, ctype, extra)
            else:
                out = fake.api(req, rec)
                self.answer(rec, 200, json.dumps(out).encode(), JSON_11)
        except Drop:
            self.close_connection = True
            fake.log(rec)
        except PlainError as e:
            self.answer(rec, e.status, e.body, e.ctype)
        except ApiError as e:
            rec["error_type"] = e.type
            body = json.dumps({"__type": e.type, "message": e.message})
            self.answer(rec, e.status, body.encode(), JSON_11,
                        [("x-amzn-ErrorType", e.type)])

    def answer(self, rec, status, body, ctype, extra=()):
        rec["status"] = status
        self.server.fake.log(rec)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for n, v in extra:
            self.send_header(n, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state")
    ap.add_argument("--log")
    args = ap.parse_args()
    state = {}
    if args.state:
        with open(args.state) as f:
            state = json.load(f)
    logf = open(args.log, "a", buffering=1) if args.log else None

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = Server(("127.0.0.1", args.port), Handler)
    server.fake = Fake(state, logf)
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
