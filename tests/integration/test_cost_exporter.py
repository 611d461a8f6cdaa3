"""portcullis-cost-exporter (issue 7) against tests/tools/fake_aws.py, whose
Cost Explorer checks every SigV4 signature with botocore and pages its
answers.

The fake's "costs" table is built around today's UTC date: several
services (one named with a quote and a backslash), amounts with more
digits than a cent, a credit, days of last month inside the 7-day window,
days outside every window, and tomorrow (never asked for: End is
exclusive). Expected figures are computed here with Decimal from that
table and must match the exporter's to a millionth of a dollar.

Tests ask for fake_aws before cost_exporter, so the exporter is stopped
first; its teardown fails a test unless SIGTERM made it exit 0."""

import datetime
import http.client
import http.server
import json
import math
import re
import signal
import subprocess
import threading
import time
from decimal import Decimal

import pytest

import gwtest
from conftest import COST_EXPORTER_BIN, free_port

AKID = "AKIDTEST"
SECRET = "fake-aws-static-secret-key-0123456789ab"
CE_USAGE = "AWSInsightsIndexService.GetCostAndUsage"
CE_FORECAST = "AWSInsightsIndexService.GetCostForecast"
FORECAST_REST = "123.456789"
WEIRD = 'CloudWatch "Logs" \\ x'
TOLERANCE = 1e-6  # USD: far tighter than the cent the issue asks for

FAMILIES = [
    "aws_cost_daily_usd",
    "aws_cost_exporter_api_requests_total",
    "aws_cost_exporter_build_info",
    "aws_cost_exporter_last_success_timestamp_seconds",
    "aws_cost_exporter_missing_dates",
    "aws_cost_exporter_refresh_total",
    "aws_cost_forecast_month_usd",
    "aws_cost_month_to_date_by_service_usd",
    "aws_cost_month_to_date_usd",
    "aws_cost_seven_day_average_daily_usd",
]
RESULTS = ["ok", "not_found", "denied", "no_credentials", "throttled",
           "server_error", "network", "bad_response", "failed"]


def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def costs_table(today):
    """[(day, service, amount string)] from 45 days ago to tomorrow."""
    rows = []
    for i in range(-45, 2):
        day = today + datetime.timedelta(days=i)
        rows.append((day, "Amazon EC2", "1.%02d3333333" % (abs(i) % 100)))
        if i % 3:
            rows.append((day, "Amazon S3", "0.023456789"))
        rows.append((day, "AWS Secrets Manager", "0.0133333333"))
        rows.append((day, "Amazon Route 53", "0.0000004"))
        if i in (-2, -1, 0):
            rows.append((day, WEIRD, "0.5%d" % -i))
        if i == -1:
            rows.append((day, "Tax", "-0.10"))  # a credit
    return rows


class Expected:
    """The figures the exporter must show for `today`, from the table."""

    def __init__(self, rows, today, forecast_rest=FORECAST_REST,
                 missing=()):
        """missing: days Cost Explorer leaves out of its answer."""
        first = today.replace(day=1)
        start = min(first, today - datetime.timedelta(days=7))
        end = today + datetime.timedelta(days=1)
        nxt = (first + datetime.timedelta(days=32)).replace(day=1)
        self.ndays = (end - start).days
        self.today_date = today
        self.yesterday_date = today - datetime.timedelta(days=1)
        self.has_forecast = end < nxt
        self.services = sorted({s for d, s, _ in rows if start <= d < end
                                and d not in missing})
        zero = Decimal(0)
        self.today = {s: zero for s in self.services}
        self.yesterday = dict(self.today)
        self.mtd = dict(self.today)
        seven = zero
        self.missing = sorted(d for d in missing if start <= d < end)
        seven_days = 7 - sum(1 for d in self.missing
                             if today - datetime.timedelta(days=7) <= d
                             < today)
        for d, s, a in rows:
            if d in missing:
                continue
            a = Decimal(a)
            if d == today:
                self.today[s] += a
            if d == today - datetime.timedelta(days=1):
                self.yesterday[s] += a
            if first <= d <= today:
                self.mtd[s] += a
            if today - datetime.timedelta(days=7) <= d < today:
                seven += a
        self.mtd_total = sum(self.mtd.values(), zero)
        self.seven_day_average = seven / seven_days
        if self.has_forecast:
            self.forecast = (self.mtd_total + Decimal(forecast_rest)
                             if forecast_rest is not None else None)
        else:  # the last day of the month: the month is known
            self.forecast = self.mtd_total

    def requests(self, page_size=None):
        """Cost Explorer requests one refresh makes."""
        pages = math.ceil(self.ndays / page_size) if page_size else 1
        return pages + (1 if self.has_forecast else 0)


def fake_state(rows, page_size=None, forecast=FORECAST_REST):
    return {"static_keys": {AKID: SECRET},
            "costs": [{"start": d.isoformat(), "service": s, "amount": a}
                      for d, s, a in rows],
            "forecast": ({"total": forecast, "periods": []}
                         if forecast is not None else None),
            "page_size": page_size}


def aws_env(fake, **over):
    env = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_ENDPOINT_URL_COST_EXPLORER": fake.url + "/"}
    env.update(over)
    return env


def ce_log(fake):
    """The fake's log lines of Cost Explorer calls."""
    return [e for e in fake.log() if e["service"] == "ce"]


def value(samples, name, **labels):
    return gwtest.metric(samples, name, **labels)


def refreshes(samples, result="ok"):
    return value(samples, "aws_cost_exporter_refresh_total", result=result)


def wait_refreshes(exp, n, result="ok", timeout=20.0):
    """Waits until refresh_total{result} reaches n; returns the samples."""
    def ready():
        s = exp.metrics()
        return s if refreshes(s, result) >= n else None
    return gwtest.wait_until(ready, timeout, interval=0.1,
                             what="%d refresh(es) with result %s\n%s"
                             % (n, result, exp.error_log()))


def values(samples):
    """{(name, sorted labels): value} of every aws_cost_* value metric."""
    return {(n, tuple(sorted(l.items()))): v for n, l, v in samples
            if n.startswith("aws_cost_") and
            not n.startswith("aws_cost_exporter_")}


def close(got, want):
    assert got is not None, "missing value (want %s)" % want
    return abs(Decimal(repr(got)) - want) < Decimal(TOLERANCE)


def check_figures(samples, want, environment):
    """Every aws_cost_* value metric is present, labelled, and right."""
    env = {"environment": environment}
    days = [("today", want.today_date), ("yesterday", want.yesterday_date)]
    daily = gwtest.samples_named(samples, "aws_cost_daily_usd")
    assert sorted((l["service"], l["day"]) for l, _ in daily) == sorted(
        (s, name) for s in want.services for name, d in days
        if d not in want.missing)
    for l, v in daily:
        assert l["environment"] == environment
        exp = (want.today if l["day"] == "today" else
               want.yesterday)[l["service"]]
        assert close(v, exp), (l, v, exp)
    by_service = gwtest.samples_named(
        samples, "aws_cost_month_to_date_by_service_usd", **env)
    assert sorted(l["service"] for l, _ in by_service) == want.services
    for l, v in by_service:
        assert close(v, want.mtd[l["service"]]), (l, v)
    assert close(value(samples, "aws_cost_month_to_date_usd", **env),
                 want.mtd_total)
    assert close(value(samples, "aws_cost_seven_day_average_daily_usd",
                       **env), want.seven_day_average)
    assert value(samples, "aws_cost_exporter_missing_dates",
                 **env) == len(want.missing)
    fc = value(samples, "aws_cost_forecast_month_usd", **env)
    if want.forecast is None:
        assert fc is None
    else:
        assert close(fc, want.forecast), (fc, want.forecast)


def started_on_one_day(day):
    if utc_today() != day:
        pytest.skip("the UTC date changed during the test")


# ------------------------------------------------------------- figures


def test_figures_match_the_fake_to_the_cent(fake_aws, cost_exporter):
    today = utc_today()
    rows = costs_table(today)
    fake = fake_aws(fake_state(rows))
    t0 = time.time()
    exp = cost_exporter("--environment", "ci-test", env=aws_env(fake))
    samples = wait_refreshes(exp, 1)
    started_on_one_day(today)
    want = Expected(rows, today)
    check_figures(samples, want, "ci-test")
    assert WEIRD in want.services and "Tax" in want.services
    for r in RESULTS:
        assert refreshes(samples, r) == (1 if r == "ok" else 0), r
    last = value(samples, "aws_cost_exporter_last_success_timestamp_seconds",
                 environment="ci-test")
    assert int(t0) <= last <= time.time() + 1
    # One page, one forecast (none on the last day of the month), every
    # one signed right and counted.
    calls = ce_log(fake)
    assert [c["target"] for c in calls] == [CE_USAGE] + (
        [CE_FORECAST] if want.has_forecast else [])
    assert all(c["signature"] == "ok" and c["status"] == 200
               for c in calls), calls
    assert value(samples, "aws_cost_exporter_api_requests_total",
                 environment="ci-test") == len(calls)
    version = subprocess.run([str(COST_EXPORTER_BIN), "--version"],
                             capture_output=True, text=True, timeout=10)
    assert version.returncode == 0
    assert value(samples, "aws_cost_exporter_build_info",
                 environment="ci-test",
                 version=version.stdout.split()[1]) == 1


def test_pages_give_the_same_figures(fake_aws, cost_exporter):
    today = utc_today()
    rows = costs_table(today)
    fake = fake_aws(fake_state(rows, page_size=3))
    exp = cost_exporter(env=aws_env(fake, ENVIRONMENT="staging"))
    samples = wait_refreshes(exp, 1)
    started_on_one_day(today)
    want = Expected(rows, today)
    check_figures(samples, want, "staging")
    calls = ce_log(fake)
    assert len(calls) == want.requests(page_size=3) >= 4
    assert [c["target"] for c in calls].count(CE_USAGE) == \
        math.ceil(want.ndays / 3)
    assert value(samples, "aws_cost_exporter_api_requests_total",
                 environment="staging") == len(calls)
    assert fake.state()["calls"][CE_USAGE] == math.ceil(want.ndays / 3)


class DayDropper:
    """A relay between the exporter and the fake: each request goes on to
    the fake byte for byte (its Host header included, so the fake still
    checks the real signature), and from every GetCostAndUsage answer the
    days of `drop` ("YYYY-MM-DD"; None: every day) are taken out, as when
    Cost Explorer has no figures for them. .dropped lists what it took
    out."""

    def __init__(self, fake, drop):
        self.dropped = []
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                c = http.client.HTTPConnection("127.0.0.1", fake.port,
                                               timeout=30)
                c.request("POST", self.path, body, dict(self.headers))
                r = c.getresponse()
                data = r.read()
                c.close()
                if r.status == 200 and \
                        self.headers.get("X-Amz-Target") == CE_USAGE:
                    doc = json.loads(data)
                    kept = []
                    for e in doc["ResultsByTime"]:
                        day = e["TimePeriod"]["Start"]
                        if drop is None or day in drop:
                            relay.dropped.append(day)
                        else:
                            kept.append(e)
                    doc["ResultsByTime"] = kept
                    data = json.dumps(doc).encode()
                self.send_response(r.status)
                self.send_header("Content-Type", r.getheader("Content-Type"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(5)


@pytest.fixture
def day_dropper():
    """day_dropper(fake, drop) starts a DayDropper; stopped at teardown."""
    started = []

    def start(fake, drop):
        d = DayDropper(fake, drop)
        started.append(d)
        return d
    yield start
    for d in started:
        d.stop()


def missing_lines(exp):
    return [line for line in exp.error_log().splitlines()
            if "returned no figures" in line]


@pytest.mark.parametrize("days_ago", [2, 1])
def test_a_missing_day_keeps_the_others(fake_aws, cost_exporter, day_dropper,
                                        days_ago):
    """Cost Explorer's answer lacks one day (two days ago: inside the 7-day
    average and, most days, the month; or yesterday): every other day is
    exported to the millionth, the missing day counts in none of the
    figures (no "yesterday" samples when it is yesterday, the 7-day average
    over the 6 days there), aws_cost_exporter_missing_dates is 1, and each
    refresh logs one line naming the date and no credential."""
    today = utc_today()
    gone = today - datetime.timedelta(days=days_ago)
    rows = costs_table(today)
    fake = fake_aws(fake_state(rows, page_size=3))
    relay = day_dropper(fake, {gone.isoformat()})
    exp = cost_exporter("--retry-min", "1s", env=aws_env(
        fake, AWS_ENDPOINT_URL_COST_EXPLORER=relay.url + "/"))
    samples = wait_refreshes(exp, 1)
    started_on_one_day(today)
    want = Expected(rows, today, missing={gone})
    assert want.missing == [gone]
    check_figures(samples, want, "dev")
    assert value(samples, "aws_cost_exporter_missing_dates",
                 environment="dev") == 1
    assert refreshes(samples, "bad_response") == 0
    assert relay.dropped == [gone.isoformat()]
    assert all(e["signature"] == "ok" for e in ce_log(fake)), ce_log(fake)
    [line] = missing_lines(exp)
    assert "for 1 of the window's %d day(s): %s;" % (
        want.ndays, gone.isoformat()) in line, line
    assert AKID not in exp.error_log() and SECRET not in exp.error_log()
    # the next refresh: the same figures, one more line
    exp.signal(signal.SIGHUP)
    again = wait_refreshes(exp, 2)
    started_on_one_day(today)
    assert values(again) == values(samples)
    assert len(missing_lines(exp)) == 2


def test_an_answer_without_any_day_fails(fake_aws, cost_exporter,
                                         day_dropper):
    """Not one day of the window: a broken answer, not a gap; the refresh
    fails (bad_response) and nothing is published."""
    fake = fake_aws(fake_state(costs_table(utc_today())))
    relay = day_dropper(fake, None)
    exp = cost_exporter("--retry-min", "1s", env=aws_env(
        fake, AWS_ENDPOINT_URL_COST_EXPLORER=relay.url + "/"))
    samples = wait_refreshes(exp, 1, result="bad_response")
    assert refreshes(samples) == 0
    assert values(samples) == {}
    assert value(samples, "aws_cost_exporter_missing_dates",
                 environment="dev") is None
    assert "cost refresh failed (bad_response): no figures for any day" \
        in exp.error_log()
    assert missing_lines(exp) == []


def test_forecast_unavailable_is_not_a_failure(fake_aws, cost_exporter):
    today = utc_today()
    rows = costs_table(today)
    fake = fake_aws(fake_state(rows, forecast=None))
    exp = cost_exporter(env=aws_env(fake))
    samples = wait_refreshes(exp, 1)
    started_on_one_day(today)
    want = Expected(rows, today, forecast_rest=None)
    check_figures(samples, want, "dev")
    assert sum(refreshes(samples, r) for r in RESULTS) == 1
    exp.signal(signal.SIGHUP)
    samples = wait_refreshes(exp, 2)
    assert sum(refreshes(samples, r) for r in RESULTS) == 2
    calls = ce_log(fake)
    assert value(samples, "aws_cost_exporter_api_requests_total",
                 environment="dev") == len(calls) == 2 * want.requests()
    if want.has_forecast:
        assert [c["error_type"] for c in calls].count(
            "DataUnavailableException") == 2
        # Said once, not at every refresh.
        assert exp.error_log().count("cost forecast unavailable") == 1


# ------------------------------------------------------------ failures


def test_throttling_keeps_the_figures_then_recovers(fake_aws, cost_exporter):
    today = utc_today()
    rows = costs_table(today)
    fake = fake_aws(fake_state(rows, page_size=3))
    exp = cost_exporter("--retry-min", "1s", env=aws_env(fake))
    before = wait_refreshes(exp, 1)
    want = Expected(rows, today)
    per_refresh = want.requests(page_size=3)
    # The next two GetCostAndUsage calls are throttled: the forced
    # refresh fails at its first page, so does the retry 1 s later, the
    # one 2 s after that succeeds.
    fake.fault(CE_USAGE, "throttle", count=2)
    exp.signal(signal.SIGHUP)
    during = wait_refreshes(exp, 1, result="throttled")
    assert values(during) == values(before)  # kept, never zeroed
    assert value(during, "aws_cost_exporter_last_success_timestamp_seconds",
                 environment="dev") == value(
        before, "aws_cost_exporter_last_success_timestamp_seconds",
        environment="dev")
    after = wait_refreshes(exp, 2, timeout=15)
    started_on_one_day(today)
    assert refreshes(after, "throttled") == 2
    check_figures(after, want, "dev")
    assert value(after, "aws_cost_exporter_api_requests_total",
                 environment="dev") == 2 * per_refresh + 2 == \
        len(ce_log(fake))
    assert [c["error_type"] for c in ce_log(fake)].count(
        "ThrottlingException") == 2
    err = exp.error_log()
    assert err.count("cost refresh failed") == 1, err  # logged once
    assert "cost refresh failed (throttled): ThrottlingException: Rate " \
        "exceeded; keeping the figures of " in err
    assert "cost refresh recovered" in err


def test_failure_after_the_pages_publishes_nothing(fake_aws, cost_exporter):
    """All or nothing: every page came back, the forecast failed, so no
    page's figures are published; the retry publishes them all."""
    today = utc_today()
    want = Expected(costs_table(today), today)
    if not want.has_forecast:
        pytest.skip("no forecast is asked for on the last day of a month")
    fake = fake_aws(fake_state(costs_table(today), page_size=3))
    exp = cost_exporter("--retry-min", "1s", env=aws_env(fake))
    before = wait_refreshes(exp, 1)
    last = value(before, "aws_cost_exporter_last_success_timestamp_seconds",
                 environment="dev")
    time.sleep(1.1)  # a new success would show a later timestamp
    fake.fault(CE_FORECAST, "error500", count=1)
    exp.signal(signal.SIGHUP)
    during = wait_refreshes(exp, 1, result="server_error")
    assert refreshes(during) == 1
    assert values(during) == values(before)
    assert value(during, "aws_cost_exporter_last_success_timestamp_seconds",
                 environment="dev") == last
    after = wait_refreshes(exp, 2, timeout=10)
    assert value(after, "aws_cost_exporter_last_success_timestamp_seconds",
                 environment="dev") > last
    assert value(after, "aws_cost_exporter_api_requests_total",
                 environment="dev") == 3 * want.requests(page_size=3)
    assert "cost refresh failed (server_error): InternalFailure" in \
        exp.error_log()


@pytest.mark.parametrize("case", ["no_credentials", "denied"])
def test_refresh_without_access(fake_aws, cost_exporter, case):
    """No credentials at all (nothing is sent), or a wrong secret key (the
    fake refuses the signature): counted, logged, nothing published, and
    /health still answers."""
    fake = fake_aws(fake_state(costs_table(utc_today())))
    if case == "no_credentials":
        env = aws_env(fake)
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    else:
        env = aws_env(fake, AWS_SECRET_ACCESS_KEY="not-the-secret")
    exp = cost_exporter("--retry-min", "1s", env=env)
    samples = wait_refreshes(exp, 1, result=case)
    assert refreshes(samples) == 0
    assert values(samples) == {}
    assert value(samples, "aws_cost_exporter_last_success_timestamp_seconds",
                 environment="dev") == 0
    sent = len(ce_log(fake))
    assert value(samples, "aws_cost_exporter_api_requests_total",
                 environment="dev") == sent
    assert sent == (0 if case == "no_credentials" else
                    refreshes(samples, case))
    assert gwtest.get(exp.port, "/health")[0] == 200
    assert "cost refresh failed (%s)" % case in exp.error_log()
    assert "not-the-secret" not in exp.error_log()


# ------------------------------------------------------------- timing


def test_interval_is_respected(fake_aws, cost_exporter):
    """--interval 1m: one refresh at start, one per SIGHUP, nothing else;
    a SIGHUP while a refresh runs adds none."""
    today = utc_today()
    fake = fake_aws(fake_state(costs_table(today)))
    exp = cost_exporter("--interval", "1m", env=aws_env(fake))
    wait_refreshes(exp, 1)
    per_refresh = Expected(costs_table(today), today).requests()
    time.sleep(3)
    assert len(ce_log(fake)) == per_refresh
    exp.signal(signal.SIGHUP)
    wait_refreshes(exp, 2)
    time.sleep(3)
    assert len(ce_log(fake)) == 2 * per_refresh
    # The first page takes 1.5 s; the second SIGHUP lands during it.
    fake.fault(CE_USAGE, "slow", count=1, delay=1.5)
    exp.signal(signal.SIGHUP)
    gwtest.wait_until(lambda: CE_USAGE not in fake.state()["faults"], 5,
                      what="the slow page to start")
    exp.signal(signal.SIGHUP)
    samples = wait_refreshes(exp, 3)
    time.sleep(3)
    assert len(ce_log(fake)) == 3 * per_refresh
    assert sum(refreshes(exp.metrics(), r) for r in RESULTS) == 3
    assert refreshes(samples) == 3
    assert "cost refresh already running" in exp.error_log()


# -------------------------------------------------------------- HTTP


def test_health_metrics_and_promtool(fake_aws, cost_exporter, tmp_path):
    fake = fake_aws(fake_state(costs_table(utc_today())))
    exp = cost_exporter(env=aws_env(fake))
    wait_refreshes(exp, 1)
    st, headers, body = gwtest.get(exp.port, "/health")
    assert (st, body) == (200, b"ok\n")
    st, headers, body = gwtest.get(exp.port, "/metrics")
    assert st == 200
    assert headers["content-type"] == \
        "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert [l.split()[2] for l in text.splitlines()
            if l.startswith("# TYPE ")] == FAMILIES
    for name in FAMILIES:
        assert "# HELP %s " % name in text
    assert 'service="CloudWatch \\"Logs\\" \\\\ x"' in text
    (tmp_path / "metrics.txt").write_text(text)
    with open(tmp_path / "metrics.txt", "rb") as f:
        pc = subprocess.run(["promtool", "check", "metrics"], stdin=f,
                            capture_output=True, timeout=30)
    assert (pc.returncode, pc.stdout, pc.stderr) == (0, b"", b""), pc
    assert gwtest.request(exp.port, "HEAD", "/metrics")[0] == 200
    st, headers, _ = gwtest.request(exp.port, "POST", "/metrics", body=b"")
    assert (st, headers.get("allow")) == (405, "GET, HEAD")
    assert gwtest.get(exp.port, "/nope")[0] == 404


def test_sigint_exits_0(fake_aws, cost_exporter):
    fake = fake_aws(fake_state(costs_table(utc_today())))
    exp = cost_exporter(env=aws_env(fake))
    wait_refreshes(exp, 1)
    exp.signal(signal.SIGINT)
    assert exp.proc.popen.wait(10) == 0
    assert "SIGINT: exiting" in exp.error_log()


def test_healthcheck_mode(fake_aws, cost_exporter):
    fake = fake_aws(fake_state(costs_table(utc_today())))
    exp = cost_exporter(env=aws_env(fake))
    ok = subprocess.run([str(COST_EXPORTER_BIN), "--healthcheck", "--listen",
                         ":%d" % exp.port], capture_output=True, timeout=10)
    assert ok.returncode == 0, ok
    port = free_port()
    down = subprocess.run([str(COST_EXPORTER_BIN), "--healthcheck",
                           "--listen", "127.0.0.1:%d" % port],
                          capture_output=True, text=True, timeout=10)
    assert down.returncode == 1
    assert "healthcheck: http://127.0.0.1:%d/health" % port in down.stderr


# ------------------------------------------------------------- flags


@pytest.mark.parametrize("args, flag", [
    (["--interval", "30s"], "--interval"),
    (["--interval", "2d"], "--interval"),
    (["--interval", "soon"], "--interval"),
    (["--interval"], "--interval"),
    (["--interval="], "--interval"),
    (["--retry-min", "500ms"], "--retry-min"),
    (["--retry-min", "10m", "--interval", "5m"], "--retry-min"),
    (["--listen", "nowhere"], "--listen"),
    (["--listen", "localhost:9091"], "--listen"),
    (["--listen", ":99999"], "--listen"),
    (["--environment", ""], "--environment"),
    (["--environment", "pro d"], "--environment"),
    (["--environment", "x" * 65], "--environment"),
    (["--bogus"], "--bogus"),
    (["-x"], "-x"),
    (["extra"], "extra"),
])
def test_bad_flags_exit_2(tmp_path, args, flag):
    r = subprocess.run([str(COST_EXPORTER_BIN), *args], capture_output=True,
                       text=True, timeout=10, cwd=tmp_path)
    assert r.returncode == 2, r
    assert r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith("portcullis-cost-exporter: %s" % flag), first


def test_bad_environment_variable_exits_2(tmp_path):
    r = subprocess.run([str(COST_EXPORTER_BIN)], capture_output=True,
                       text=True, timeout=10,
                       env={"ENVIRONMENT": "a/b", "PATH": "/usr/bin"})
    assert r.returncode == 2
    assert r.stderr.startswith("portcullis-cost-exporter: ENVIRONMENT")


def test_version_and_help():
    v = subprocess.run([str(COST_EXPORTER_BIN), "--version"],
                       capture_output=True, text=True, timeout=10)
    assert v.returncode == 0
    assert re.match(r"portcullis-cost-exporter \d+\.\d+\.\d+ ", v.stdout)
    for flag in ("-h", "--help"):
        h = subprocess.run([str(COST_EXPORTER_BIN), flag],
                           capture_output=True, text=True, timeout=10)
        assert h.returncode == 0
        for opt in ("--listen", "--interval", "--environment",
                    "--retry-min", "--healthcheck"):
            assert opt in h.stdout
