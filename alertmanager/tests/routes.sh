#!/usr/bin/env bash
# Tests alertmanager/alertmanager.yml and alertmanager/templates/*.tmpl with
# the real Alertmanager 0.25 tools, offline and on loopback only:
#   1. amtool check-config on a copy whose /etc/alertmanager/ paths point at a
#      temporary directory (dummy secret files are made there at run time);
#   2. amtool config routes test, one case per line of routes.txt, asserting
#      the exact receivers printed;
#   3. amtool template render of every portcullis template with a sample
#      alert: each shows summary, description, runbook_url, severity, route,
#      instance and a silence link;
#   4. a real prometheus-alertmanager on 127.0.0.1:<free port> (no cluster,
#      temporary storage) with the same config, except: every endpoint points
#      at a Python listener on 127.0.0.1 (HTTP for PagerDuty / Slack / the
#      dead-man's switch, a minimal SMTP server for e-mail), SMTP STARTTLS off,
#      and group_wait / group_interval shortened to 1s / 2s. Alerts are posted
#      to /api/v2/alerts; /api/v2/alerts must show status.inhibitedBy set on
#      exactly the inhibited ones, and the listener must receive the expected
#      notifications, rendered by the templates, and none for inhibited or
#      blackholed alerts.
# Prints "ok - CASE" / "not ok - CASE" per case and ends with
# "N passed, M failed"; exits non-zero on any failure.
# Needs: bash, curl, amtool, /usr/bin/prometheus-alertmanager, /usr/bin/python3.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
amdir=$(dirname "$here")
py=/usr/bin/python3
am_bin=${ALERTMANAGER_BIN:-/usr/bin/prometheus-alertmanager}

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }
# detail FILE: show a tool's output under a failing case
detail() { sed 's/^/    /' "$1" | head -40; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-am-test.XXXXXX")
am_pid=
listener_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	[ -n "$am_pid" ] && kill "$am_pid" 2>/dev/null && wait "$am_pid" 2>/dev/null
	[ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null && wait "$listener_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- 1. config
mkdir -p "$tmp/templates" "$tmp/secrets" "$tmp/data"
cp "$amdir"/templates/*.tmpl "$tmp/templates/"
sed "s#/etc/alertmanager/#$tmp/#g" "$amdir/alertmanager.yml" >"$tmp/alertmanager.yml"
# Dummy secrets: the offline checks never read them; the live run below
# replaces the URLs with loopback ones before Alertmanager starts.
printf 'test-routing-key-0123456789abcdef\n' >"$tmp/secrets/pagerduty_routing_key"
printf 'http://127.0.0.1:9/slack\n' >"$tmp/secrets/slack_api_url"
# No newline: Alertmanager 0.25 sends smtp_password byte for byte (it does
# trim the PagerDuty key and the URLs).
printf 'test-smtp-password' >"$tmp/secrets/smtp_password"
printf 'http://127.0.0.1:9/deadmansswitch\n' >"$tmp/secrets/deadmansswitch_url"

if amtool check-config "$tmp/alertmanager.yml" >"$tmp/out" 2>&1; then
	ok "amtool check-config"
else
	notok "amtool check-config"
	detail "$tmp/out"
	finish
fi
if grep -q -- '- 8 receivers' "$tmp/out" && grep -q -- '- 7 inhibit rules' "$tmp/out" &&
	grep -q -- '- 1 templates' "$tmp/out"; then
	ok "config has 8 receivers, 7 inhibit rules, 1 template file"
else
	notok "config has 8 receivers, 7 inhibit rules, 1 template file"
	detail "$tmp/out"
fi

# No secret inline: every credential-bearing field is a *_file.
if grep -nE '^\s*(routing_key|service_key|api_url|auth_password|smtp_auth_password|slack_api_url|url):' \
	"$amdir/alertmanager.yml" >"$tmp/out"; then
	notok "no inline secret (routing_key, api_url, auth_password, url)"
	detail "$tmp/out"
else
	ok "no inline secret (routing_key, api_url, auth_password, url)"
fi

# ---------------------------------------------------------------- 2. routes
while IFS='|' read -r desc want labels; do
	case $desc in '' | \#*) continue ;; esac
	desc=$(echo "$desc" | sed 's/^ *//; s/ *$//')
	want=$(echo "$want" | tr -d ' ')
	# shellcheck disable=SC2086 # labels are space-separated on purpose
	got=$(amtool config routes test --config.file="$tmp/alertmanager.yml" $labels 2>"$tmp/err")
	if [ "$got" = "$want" ]; then
		ok "route: $desc -> $want"
	else
		notok "route: $desc -> want '$want', got '$got' (labels:$labels)"
		grep -v 'flag overrides the --alertmanager.url' "$tmp/err" >"$tmp/out"
		detail "$tmp/out"
	fi
done <"$here/routes.txt"

# The info route must only notify in business hours.
if amtool config routes show --config.file="$tmp/alertmanager.yml" >/dev/null 2>&1 &&
	grep -Pzo '(?s)matchers: \[.severity="info".\]\s*\n\s*receiver: email-info\s*\n\s*active_time_intervals: \[business-hours\]' \
		"$tmp/alertmanager.yml" >/dev/null &&
	grep -Pzo "(?s)- name: business-hours\s*\n\s*time_intervals:\s*\n\s*- weekdays: \['monday:friday'\]\s*\n\s*times:\s*\n\s*- start_time: '09:00'\s*\n\s*end_time: '17:00'" \
		"$tmp/alertmanager.yml" >/dev/null; then
	ok "info route is active only in business-hours (Mon-Fri 09:00-17:00)"
else
	notok "info route is active only in business-hours (Mon-Fri 09:00-17:00)"
fi

# ------------------------------------------------------------- 3. templates
cat >"$tmp/data.json" <<'EOF'
{"receiver": "slack-critical", "status": "firing",
 "externalURL": "https://gw.example.org/alertmanager",
 "groupLabels": {"alertname": "PortcullisUpstreamErrors", "route": "api", "instance": "gateway:9145"},
 "commonLabels": {"alertname": "PortcullisUpstreamErrors", "route": "api", "instance": "gateway:9145",
                  "severity": "critical", "job": "portcullis"},
 "commonAnnotations": {"runbook_url": "https://github.com/portcullis-gw/portcullis/blob/main/docs/RUNBOOKS.md#portcullisupstreamerrors"},
 "alerts": [{"status": "firing",
   "labels": {"alertname": "PortcullisUpstreamErrors", "route": "api", "instance": "gateway:9145",
              "severity": "critical", "job": "portcullis"},
   "annotations": {"summary": "Upstream errors on route api: 12%",
                   "description": "12% of requests to the api upstream fail with connect errors.",
                   "runbook_url": "https://github.com/portcullis-gw/portcullis/blob/main/docs/RUNBOOKS.md#portcullisupstreamerrors"},
   "startsAt": "2024-01-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
   "generatorURL": "http://prometheus:9090/graph", "fingerprint": "0123456789abcdef"}]}
EOF
silence='https://gw.example.org/alertmanager/#/silences/new?filter=%7Balertname%3D%22PortcullisUpstreamErrors%22%2Cinstance%3D%22gateway%3A9145%22%2Cjob%3D%22portcullis%22%2Croute%3D%22api%22%2Cseverity%3D%22critical%22%7D'
runbook='https://github.com/portcullis-gw/portcullis/blob/main/docs/RUNBOOKS.md#portcullisupstreamerrors'
render() { # TYPE TEXT
	amtool template render --template.type="$1" --template.glob="$tmp/templates/*.tmpl" \
		--template.data="$tmp/data.json" --template.text="$2"
}
# contains FILE STRING...: every STRING is in FILE
contains() {
	local f=$1 s
	shift
	for s in "$@"; do grep -qF -- "$s" "$f" || { echo "missing: $s" >>"$tmp/why"; return 1; }; done
}
per_alert=("Upstream errors on route api: 12%" "12% of requests to the api upstream fail" "$runbook")
for spec in \
	"text|portcullis.slack.text|severity: \`critical\`|route: \`api\`|instance: \`gateway:9145\`|$silence" \
	"text|portcullis.email.text|severity: critical|route: api|instance: gateway:9145|$silence" \
	"html|portcullis.email.html|<code>critical</code>|<code>api</code>|<code>gateway:9145</code>|href=\"$silence\"" \
	"text|portcullis.pagerduty.alerts .Alerts.Firing|severity=critical|route=api|instance=gateway:9145"; do
	IFS='|' read -r type name l1 l2 l3 l4 <<<"$spec"
	tpl=${name%% *}
	arg=${name#"$tpl"}
	arg=${arg:-.}
	: >"$tmp/why"
	if render "$type" "{{ template \"$tpl\" $arg }}" >"$tmp/out" 2>&1 &&
		contains "$tmp/out" "${per_alert[@]}" "$l1" "$l2" "$l3" ${l4:+"$l4"}; then
		ok "template $tpl renders summary, description, runbook_url, severity, route, instance${l4:+, silence link}"
	else
		notok "template $tpl renders summary, description, runbook_url, severity, route, instance${l4:+, silence link}"
		detail "$tmp/why"
		detail "$tmp/out"
	fi
done
title='[FIRING:1] PortcullisUpstreamErrors route=api instance=gateway:9145'
for spec in \
	"portcullis.slack.title|$title" \
	"portcullis.email.subject|$title" \
	"portcullis.pagerduty.description|$title: Upstream errors on route api: 12%" \
	"portcullis.slack.color|danger" \
	"portcullis.silence.group_url|https://gw.example.org/alertmanager/#/silences/new?filter=%7Balertname%3D%22PortcullisUpstreamErrors%22%2Cinstance%3D%22gateway%3A9145%22%2Croute%3D%22api%22%7D"; do
	IFS='|' read -r tpl want <<<"$spec"
	got=$(render text "{{ template \"$tpl\" . }}" 2>&1)
	if [ "$got" = "$want" ]; then
		ok "template $tpl is '$want'"
	else
		notok "template $tpl: want '$want', got '$got'"
	fi
done

# ------------------------------------------------------------------ 4. live
# The listener: HTTP POSTs and SMTP messages, one JSON object a line.
cat >"$tmp/listener.py" <<'EOF'
import base64, email, email.policy, http.server, json, socketserver, sys, threading
out_path, ports_path = sys.argv[1], sys.argv[2]
lock = threading.Lock()

def record(obj):
    with lock, open(out_path, "a") as f:
        f.write(json.dumps(obj) + "\n")

class HTTP(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(body)
        except ValueError:
            body = body.decode("utf-8", "replace")
        record({"kind": "http", "path": self.path, "body": body})
        reply = b'{"status":"success"}' if self.path == "/pagerduty" else b"ok"
        self.send_response(202 if self.path == "/pagerduty" else 200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def log_message(self, *a):
        pass

class SMTP(socketserver.StreamRequestHandler):
    # Just enough SMTP for Alertmanager: no STARTTLS; AUTH PLAIN, recorded.
    def handle(self):
        w = lambda s: (self.wfile.write((s + "\r\n").encode()), self.wfile.flush())
        w("220 listener ESMTP")
        rcpt, auth = [], None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").strip()
            verb = cmd.split(" ")[0].upper()
            if verb == "EHLO":
                w("250-listener"); w("250-AUTH PLAIN"); w("250 8BITMIME")
            elif verb == "AUTH":
                auth = base64.b64decode(cmd.split(" ")[2]).decode("utf-8", "replace")
                w("235 accepted")
            elif verb in ("HELO", "MAIL", "RSET", "NOOP"):
                w("250 ok")
            elif verb == "RCPT":
                rcpt.append(cmd); w("250 ok")
            elif verb == "DATA":
                w("354 go on")
                data = b""
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    data += l[1:] if l.startswith(b"..") else l
                msg = email.message_from_bytes(data, policy=email.policy.default)
                parts = {}
                for part in msg.walk():
                    if part.get_content_maintype() == "text":
                        parts[part.get_content_type()] = part.get_content()
                record({"kind": "smtp", "rcpt": rcpt, "auth": auth, "subject": str(msg["Subject"]), "parts": parts})
                w("250 queued")
            elif verb == "QUIT":
                w("221 bye"); return
            else:
                w("502 not implemented")

class TS(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

h = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HTTP)
s = TS(("127.0.0.1", 0), SMTP)
threading.Thread(target=s.serve_forever, daemon=True).start()
with open(ports_path + ".tmp", "w") as f:
    f.write("%d %d\n" % (h.server_address[1], s.server_address[1]))
import os
os.rename(ports_path + ".tmp", ports_path)
h.serve_forever()
EOF
: >"$tmp/received.jsonl"
"$py" "$tmp/listener.py" "$tmp/received.jsonl" "$tmp/ports" 2>"$tmp/listener.log" &
listener_pid=$!
for _ in $(seq 50); do [ -s "$tmp/ports" ] && break; sleep 0.1; done
if ! read -r http_port smtp_port <"$tmp/ports" 2>/dev/null; then
	notok "loopback listener starts"
	detail "$tmp/listener.log"
	finish
fi
am_port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
lo="http://127.0.0.1:$http_port"

# The live copy: endpoints on loopback, STARTTLS off, short group timers.
printf '%s/slack\n' "$lo" >"$tmp/secrets/slack_api_url"
printf '%s/deadmansswitch\n' "$lo" >"$tmp/secrets/deadmansswitch_url"
sed -e "s#^\(\s*pagerduty_url:\).*#\1 $lo/pagerduty#" \
	-e "s#^\(\s*smtp_smarthost:\).*#\1 127.0.0.1:$smtp_port#" \
	-e "s#^\(\s*smtp_require_tls:\).*#\1 false#" \
	-e "s#^\(\s*group_wait:\).*#\1 1s#" \
	-e "s#^\(\s*group_interval:\).*#\1 2s#" \
	"$tmp/alertmanager.yml" >"$tmp/live.yml.in"
# The business-hours window is the one thing the live copy must not take
# from the clock: its hours are checked as text above; here it becomes a
# window around now (open) and later one that excludes today (closed), so
# both the e-mail and its hold are checked on every run.
# hours_window open|closed: rewrite the live copy's business-hours interval.
hours_window() {
	"$py" - "$1" "$tmp/live.yml.in" >"$tmp/live.yml" <<'EOF'
import datetime as d, sys
now = d.datetime.now(d.timezone.utc)
days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
if sys.argv[1] == "open":
    day = days[now.weekday()]
    lo = max(0, now.hour * 60 + now.minute - 60)
    hi = min(24 * 60, now.hour * 60 + now.minute + 61)
else:  # another day of the week only: closed all of today
    day = days[(now.weekday() + 3) % 7]
    lo, hi = 0, 24 * 60
text = open(sys.argv[2]).read()
old = ("      - weekdays: ['monday:friday']\n        times:\n"
       "          - start_time: '09:00'\n            end_time: '17:00'\n")
assert old in text, "business-hours interval not found"
sys.stdout.write(text.replace(old, (
    "      - weekdays: ['%s']\n        times:\n"
    "          - start_time: '%02d:%02d'\n            end_time: '%02d:%02d'\n")
    % (day, lo // 60, lo % 60, hi // 60, hi % 60)))
EOF
}
hours_window open
# Safety: nothing in the live copy may point off loopback.
if grep -vE '^\s*#' "$tmp/live.yml" | grep -oE '[a-z]+://[^ '"'"'"]+|smtp_smarthost:.*' |
	grep -vE '^(https?://127\.0\.0\.1:|smtp_smarthost: 127\.0\.0\.1:)' >"$tmp/out" ||
	grep -hvE '^http://127\.0\.0\.1:' "$tmp/secrets/slack_api_url" "$tmp/secrets/deadmansswitch_url" >>"$tmp/out"; then
	notok "live copy points only at loopback"
	detail "$tmp/out"
	finish
fi
ok "live copy points only at loopback (PagerDuty, Slack, SMTP, dead-man's switch)"

"$am_bin" --config.file="$tmp/live.yml" --storage.path="$tmp/data" \
	--web.listen-address="127.0.0.1:$am_port" --web.external-url="http://127.0.0.1:$am_port/" \
	--cluster.listen-address= --log.level=info >"$tmp/am.log" 2>&1 &
am_pid=$!
api="http://127.0.0.1:$am_port"
ready=
for _ in $(seq 100); do
	curl --noproxy "*" -fsS "$api/-/ready" >/dev/null 2>&1 && { ready=1; break; }
	kill -0 "$am_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$ready" ]; then
	notok "prometheus-alertmanager starts on 127.0.0.1:$am_port"
	detail "$tmp/am.log"
	finish
fi
ok "prometheus-alertmanager starts on 127.0.0.1:$am_port with the config"

# Alerts, as: tc|labels(k=v,...)|expected: inhibited / active / -
# tc labels every alert so that it can be found again; summary is "tc=NAME: ..."
cat >"$tmp/alerts.txt" <<'EOF'
# critical silences warning/info of the same alertname, route, instance (and mountpoint)
a-crit|alertname=NodeFilesystemAlmostOutOfSpace,severity=critical,instance=host-a:9100,mountpoint=/|active
a-warn|alertname=NodeFilesystemAlmostOutOfSpace,severity=warning,instance=host-a:9100,mountpoint=/|inhibited
a-info|alertname=NodeFilesystemAlmostOutOfSpace,severity=info,instance=host-a:9100,mountpoint=/|inhibited
a-warn-other-host|alertname=NodeFilesystemAlmostOutOfSpace,severity=warning,instance=host-b:9100,mountpoint=/|active
a-warn-other-mount|alertname=NodeFilesystemAlmostOutOfSpace,severity=warning,instance=host-a:9100,mountpoint=/data|active
r-crit|alertname=PortcullisUpstreamErrors,severity=critical,route=api,instance=gateway:9145,job=portcullis|active
r-warn|alertname=PortcullisUpstreamErrors,severity=warning,route=api,instance=gateway:9145,job=portcullis|inhibited
r-warn-other-route|alertname=PortcullisUpstreamErrors,severity=warning,route=web,instance=gateway:9145,job=portcullis|active
r-warn-other-alert|alertname=PortcullisAuthFailureSurge,severity=warning,route=api,instance=gateway:9145,job=portcullis|active
# InstanceDown silences that instance's warning and info alerts, nothing else
# (b-down itself is held back by g-multi below, and still inhibits)
b-down|alertname=InstanceDown,severity=critical,category=infrastructure,instance=grafana:3000,job=grafana|inhibited
b-warn|alertname=NodeMemoryHighUtilization,severity=warning,category=infrastructure,instance=grafana:3000,job=grafana|inhibited
b-info|alertname=AWSServiceCostHigh,severity=info,category=cost,instance=grafana:3000,job=grafana|inhibited
b-crit|alertname=NodeFilesystemSpaceFillingUp,severity=critical,category=infrastructure,instance=grafana:3000,job=grafana|active
b-warn-other|alertname=NodeMemoryHighUtilization,severity=warning,category=infrastructure,instance=cost-exporter:9091,job=cost-exporter|active
# the SLO page silences the SLO ticket of the same route and slo only
c-fast|alertname=SLOErrorBudgetBurn,severity=critical,category=slo,route=login,slo=availability|active
c-ticket|alertname=SLOErrorBudgetBurnTicket,severity=warning,category=slo,route=login,slo=availability|inhibited
c-slow-other-slo|alertname=SLOErrorBudgetBurn,severity=critical,category=slo,route=login,slo=latency|active
c-ticket-other-slo|alertname=SLOErrorBudgetBurnTicket,severity=warning,category=slo,route=static,slo=latency|active
c-ticket-other-route|alertname=SLOErrorBudgetBurnTicket,severity=warning,category=slo,route=static,slo=availability|active
# a warning silences the info alert of the same alertname, route, instance
e-warn|alertname=DemoPair,severity=warning,category=infrastructure,instance=host-c:9100|active
e-info|alertname=DemoPair,severity=info,category=infrastructure,instance=host-c:9100|inhibited
e-info-other-host|alertname=DemoPair,severity=info,category=infrastructure,instance=host-d:9100|active
e-info-other-alert|alertname=DemoOther,severity=info,category=infrastructure,instance=host-c:9100|active
# MultipleServicesDown silences every InstanceDown and PortcullisDown
g-multi|alertname=MultipleServicesDown,severity=critical,category=infrastructure|active
g-down|alertname=InstanceDown,severity=critical,category=infrastructure,instance=alertmanager:9093,job=alertmanager|inhibited
g-gw-down|alertname=PortcullisDown,severity=critical,category=infrastructure,instance=gateway:9145,job=portcullis|inhibited
# PortcullisDown (g-gw-down, itself held back) silences the probe pages
i-probe|alertname=PortcullisProbeFailing,severity=critical,category=slo,route=grafana,instance=https://gw/grafana/api/health,job=probe|inhibited
# CriticalErrorRate silences HighErrorRate of the same route only
h-crit|alertname=CriticalErrorRate,severity=warning,category=infrastructure,route=shop|active
h-high|alertname=HighErrorRate,severity=warning,category=infrastructure,route=shop|inhibited
h-high-other|alertname=HighErrorRate,severity=warning,category=infrastructure,route=blog|active
# routed only (deliveries)
d-watchdog|alertname=Watchdog,severity=none|-
d-none|alertname=QuietThing,severity=none|-
d-unknown|alertname=SomethingNew,severity=major|-
d-info|alertname=AWSForecastOverBudget,severity=info,environment=dev|-
EOF
# post WHICH: post the sources first (WHICH=sources), then the rest (targets)
post() {
	"$py" - "$tmp/alerts.txt" "$1" >"$tmp/post.json" <<'EOF'
import json, sys
sources = {"a-crit", "r-crit", "b-down", "c-fast", "e-warn", "g-multi", "h-crit"}
out = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    tc, labels, _ = line.split("|")
    if (tc in sources) != (sys.argv[2] == "sources"):
        continue
    lab = dict(kv.split("=", 1) for kv in labels.split(","))
    lab["tc"] = tc
    rb = "https://github.com/portcullis-gw/portcullis/blob/main/docs/RUNBOOKS.md#" + lab["alertname"].lower()
    out.append({"labels": lab, "generatorURL": "http://127.0.0.1/graph",
                "annotations": {"summary": "tc=%s: %s on %s" % (tc, lab["alertname"], lab.get("instance", "-")),
                                "description": "Test alert %s (%s)." % (tc, lab["severity"]),
                                "runbook_url": rb}})
json.dump(out, sys.stdout)
EOF
	curl --noproxy "*" -fsS -X POST -H 'Content-Type: application/json' --data-binary @"$tmp/post.json" \
		"$api/api/v2/alerts" >"$tmp/out" 2>&1
}
if post sources && sleep 0.5 && post targets; then
	ok "alerts posted to /api/v2/alerts"
else
	notok "alerts posted to /api/v2/alerts"
	detail "$tmp/out"
	finish
fi

# Inhibition as Alertmanager reports it: poll until every expectation holds
# (or 10 s), then report each alert.
cat >"$tmp/inhibit.py" <<'EOF'
import json, sys
want = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith("#"):
        tc, labels, exp = line.split("|")
        if exp != "-":
            want[tc] = (exp, labels)
got = {a["labels"].get("tc"): a["status"] for a in json.load(open(sys.argv[2]))}
bad = 0
for tc, (exp, labels) in want.items():
    st = got.get(tc)
    if st is None:
        print("not ok - %s %s: alert missing from /api/v2/alerts" % (exp, tc)); bad += 1; continue
    inh = st.get("inhibitedBy") or []
    is_inh = bool(inh)
    desc = "inhibited (inhibitedBy set)" if exp == "inhibited" else "not inhibited"
    if is_inh == (exp == "inhibited") and (is_inh or st.get("state") == "active"):
        print("ok - %s is %s: %s" % (tc, desc, labels))
    else:
        print("not ok - %s should be %s: state=%s inhibitedBy=%s" % (tc, desc, st.get("state"), inh)); bad += 1
sys.exit(1 if bad else 0)
EOF
for _ in $(seq 50); do
	curl --noproxy "*" -fsS "$api/api/v2/alerts" >"$tmp/alerts.json" 2>/dev/null &&
		"$py" "$tmp/inhibit.py" "$tmp/alerts.txt" "$tmp/alerts.json" >"$tmp/inhibit.out" 2>&1 && break
	sleep 0.2
done
while IFS= read -r line; do
	case $line in
	"ok - "*) ok "inhibition: ${line#ok - }" ;;
	"not ok - "*) notok "inhibition: ${line#not ok - }" ;;
	*) notok "inhibition check: $line" ;;
	esac
done <"$tmp/inhibit.out"

# Deliveries, read from the listener. wait_for NAME PYTHON-EXPR: poll (up to
# 20 s) until the expression is true of the received notifications, where
# http(path) lists bodies posted to that path and smtp() lists mails.
cat >"$tmp/check.py" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def http(path):
    return [r["body"] for r in recs if r["kind"] == "http" and r["path"] == path]
def slack(channel):
    return [b for b in http("/slack") if isinstance(b, dict) and b.get("channel") == channel]
def slack_text(channel):
    return "\n".join(json.dumps(b) + "\n" + "\n".join(a.get("text", "") + a.get("title", "")
                     for a in b.get("attachments", [])) for b in slack(channel))
def pd():
    return [b for b in http("/pagerduty") if isinstance(b, dict)]
def smtp():
    return [r for r in recs if r["kind"] == "smtp"]
def anywhere(s):
    return any(s in json.dumps(r) for r in recs)
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
check() { "$py" "$tmp/check.py" "$tmp/received.jsonl" "$1"; }
wait_for() { # DESC EXPR [SECONDS]
	for _ in $(seq $((${3:-20} * 5))); do
		check "$2" && { ok "delivery: $1"; return 0; }
		sleep 0.2
	done
	notok "delivery: $1"
	return 1
}
sil="$api/#/silences/new?filter=%7Balertname%3D%22PortcullisUpstreamErrors%22%2Cinstance%3D%22gateway%3A9145%22%2Cjob%3D%22portcullis%22%2Croute%3D%22api%22%2Cseverity%3D%22critical%22%2Ctc%3D%22r-crit%22%7D"
wait_for "critical PortcullisUpstreamErrors pages PagerDuty with the routing key from pagerduty_routing_key" \
	"any(b.get('routing_key') == 'test-routing-key-0123456789abcdef' and b.get('event_action') == 'trigger'
	     and b['payload']['summary'].startswith('[FIRING:1] PortcullisUpstreamErrors route=api instance=gateway:9145: tc=r-crit')
	     and b['payload']['severity'] == 'critical'
	     and 'portcullisupstreamerrors' in b['payload']['custom_details']['firing']
	     and b['payload']['custom_details']['silence_url'].startswith('$api/#/silences/new?filter=')
	     for b in pd())"
wait_for "critical PortcullisUpstreamErrors in #portcullis-critical with summary, description, runbook, labels, silence link" \
	"all(s in slack_text('#portcullis-critical') for s in ['tc=r-crit: PortcullisUpstreamErrors', 'Test alert r-crit (critical)',
	     'RUNBOOKS.md#portcullisupstreamerrors', 'severity: \`critical\`', 'route: \`api\`', 'instance: \`gateway:9145\`', '''$sil'''])"
wait_for "warning in #portcullis-warnings, never paged" \
	"'tc=a-warn-other-host' in slack_text('#portcullis-warnings') and not any('a-warn-other-host' in json.dumps(b) for b in pd())"
wait_for "unknown severity reaches #portcullis-warnings" "'tc=d-unknown' in slack_text('#portcullis-warnings')"
wait_for "Watchdog posts to the URL from deadmansswitch_url" "len(http('/deadmansswitch')) >= 1"
wait_for "SLOErrorBudgetBurn pages for each slo of a route" \
	"any('tc=c-fast' in json.dumps(b) for b in pd()) and any('tc=c-slow-other-slo' in json.dumps(b) for b in pd())"
# By now every group has flushed at least once (group_wait 1s, interval 2s):
# let one more interval pass, then nothing inhibited or blackholed may show.
sleep 3
wait_for "SLO alerts in #portcullis-slo (page and ticket), not in the general channels" \
	"(all('tc=%s:' % tc in slack_text('#portcullis-slo') for tc in ['c-fast', 'c-slow-other-slo', 'c-ticket-other-route'])
	  and not any('tc=c-' in slack_text(ch) for ch in ['#portcullis-critical', '#portcullis-warnings', '#portcullis-infra']))"
wait_for "infrastructure alerts in #portcullis-infra (critical and warning), critical also paged" \
	"(all('tc=%s:' % tc in slack_text('#portcullis-infra') for tc in ['g-multi', 'b-crit', 'b-warn-other', 'e-warn'])
	  and any('tc=g-multi' in json.dumps(b) for b in pd())
	  and not any('tc=b-' in slack_text(ch) for ch in ['#portcullis-critical', '#portcullis-warnings', '#portcullis-slo']))"
for tc in a-warn a-info r-warn b-down b-warn b-info c-ticket e-info g-down g-gw-down h-high d-none; do
	if check "not anywhere('tc=$tc:')"; then
		ok "delivery: $tc (inhibited or severity=none) was not notified anywhere"
	else
		notok "delivery: $tc (inhibited or severity=none) was not notified anywhere"
	fi
done
if check "len(pd()) > 0 and all(b['payload']['severity'] == 'critical' and 'severity=critical' in json.dumps(b) for b in pd())"; then
	ok "delivery: only critical alerts reached PagerDuty"
else
	notok "delivery: only critical alerts reached PagerDuty"
fi

# Info e-mail, inside the (live copy's) business hours: sent.
wait_for "info e-mail sent inside business hours, password from smtp_password, with subject, summary, runbook, labels, silence link" \
	"any(m['subject'].startswith('[FIRING:1] AWSForecastOverBudget')
	     and all(s in m['parts']['text/plain'] and s in m['parts']['text/html']
	             for s in ['tc=d-info', 'Test alert d-info (info)', 'RUNBOOKS.md#awsforecastoverbudget',
	                       'route', '$api/#/silences/new?filter=%7Balertname%3D%22AWSForecastOverBudget%22'])
	     and 'portcullis-oncall@example.com' in json.dumps(m['rcpt'])
	     and m['auth'] == '\x00portcullis-alertmanager@example.com\x00test-smtp-password'
	     for m in smtp())"

# Outside business hours: the window closed by a reload, a new info alert
# and a warning posted together; the warning reaches Slack, the e-mail is
# held (still held a few group intervals after the warning went out).
hours_window closed
held_post() {
	"$py" - >"$tmp/held.json" <<'EOF'
import json
rb = "https://github.com/portcullis-gw/portcullis/blob/main/docs/RUNBOOKS.md#"
print(json.dumps([{"labels": {"alertname": name, "severity": sev, "tc": tc},
                   "annotations": {"summary": "tc=%s" % tc, "description": "Test alert %s." % tc,
                                   "runbook_url": rb + name.lower()}}
                  for tc, name, sev in (("h-info", "AWSMonthlyBudgetWarning", "info"),
                                        ("h-warn", "NodeSystemSaturation", "warning"))]))
EOF
	curl --noproxy "*" -fsS -X POST -H 'Content-Type: application/json' \
		--data-binary @"$tmp/held.json" "$api/api/v2/alerts" >"$tmp/out" 2>&1
}
if curl --noproxy "*" -fsS -X POST "$api/-/reload" >"$tmp/out" 2>&1 && held_post; then
	if wait_for "outside business hours: the warning posted with the held info alert reaches Slack" \
		"'tc=h-warn' in slack_text('#portcullis-warnings')"; then
		sleep 5
		if check "not any('tc=h-info' in json.dumps(m) for m in smtp())"; then
			ok "delivery: info e-mail held outside business hours"
		else
			notok "delivery: info e-mail held outside business hours"
		fi
	fi
else
	notok "Alertmanager reloads with business hours closed, alerts posted"
	detail "$tmp/out"
fi

if grep -iE 'level=error.*(notify|dispatch)' "$tmp/am.log" >"$tmp/out"; then
	notok "Alertmanager logged no notification error"
	detail "$tmp/out"
else
	ok "Alertmanager logged no notification error"
fi

finish
