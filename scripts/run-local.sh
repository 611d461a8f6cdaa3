#!/usr/bin/env bash
# `make run`: Prometheus, Alertmanager, node-exporter and the blackbox
# exporter from Debian's packages on loopback, with portcullis in front of
# them on
# https://127.0.0.1:8443 (a self-signed certificate it makes itself in
# run/certs/ on the first run); http://127.0.0.1:8080 only redirects there.
# Both sit behind basic auth: on the first run a random password is made
# for the user "admin" (run/admin.password, run/users.htpasswd, both 0600);
# there is no default password. The blackbox exporter probes every route
# through https://127.0.0.1:8443 as the user "probe", whose password is made
# on the first run too (run/probe.password, 0600; never printed).
# Ctrl-C stops everything (by PID). One at a time: a second `make run`
# while one runs (or with one of its ports taken) says what runs and
# changes nothing (scripts/local/instance.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run="$root/run"
mkdir -p "$run"
# shellcheck source=scripts/local/instance.sh
. scripts/local/instance.sh
instance_claim "$run" 8443 8080 9145 19090 19093 19100 19115 || exit 1
instance_record "$run" make-run $$ -
mkdir -p "$run/prometheus" "$run/alertmanager" "$run/certs"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_ready() { # NAME PID URL LOG: ready means this PID lives and URL answers
	for _ in $(seq 1 100); do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "run: $1 exited; its log: $4" >&2
			exit 1
		fi
		curl -fsSk -o /dev/null "$3" 2>/dev/null && return 0
		sleep 0.2
	done
	echo "run: $1 did not become ready at $3; its log: $4" >&2
	exit 1
}

# No default password: the first run makes one, prints it once and keeps
# it in run/ (0600) for the operator; later runs only say where it is.
made_password=0
if [ ! -s "$run/users.htpasswd" ]; then
	made_password=1
	umask 077
	head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$run/admin.password"
	build/bin/portcullis passwd admin <"$run/admin.password" \
		>"$run/users.htpasswd"
	umask 022
fi
# The probe's own user of the realm, added once (also to a run/ made
# before the probe existed): a random password the blackbox exporter reads
# from run/probe.password (scripts/local/blackbox.yml).
if [ ! -s "$run/probe.password" ] ||
	! grep -q '^probe:' "$run/users.htpasswd"; then
	umask 077
	head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$run/probe.password"
	grep -v '^probe:' "$run/users.htpasswd" >"$run/users.htpasswd.new" || true
	build/bin/portcullis passwd probe <"$run/probe.password" \
		>>"$run/users.htpasswd.new"
	mv "$run/users.htpasswd.new" "$run/users.htpasswd"
	umask 022
fi
# The running config, made at each start: scripts/local/portcullis.json
# with its run/ paths absolute and two more, the access log's file and the
# pid file (so that `portcullis -s reload -c run/portcullis.json` works from
# any directory).
if printf '%s' "$run" | grep -q '["\\]'; then
	echo "run: the path of the checkout has a quote or backslash: $run" >&2
	exit 1
fi
sed -e "s|\"access_log\": true,|\"access_log\": \"$run/access.log\", \"pid_file\": \"$run/portcullis.pid\",|" \
	-e "s|\"run/|\"$run/|g" \
	scripts/local/portcullis.json >"$run/portcullis.json"
grep -q '"pid_file"' "$run/portcullis.json"
build/bin/portcullis -t -c "$run/portcullis.json"

prometheus --config.file=scripts/local/prometheus.yml \
	--storage.tsdb.path="$run/prometheus" \
	--web.listen-address=127.0.0.1:19090 \
	--web.external-url=https://127.0.0.1:8443/prometheus/ \
	>"$run/prometheus.log" 2>&1 &
pids+=($!)
prometheus_pid=$!
instance_record "$run" prometheus $! 127.0.0.1:19090
prometheus-alertmanager --config.file=scripts/local/alertmanager.yml \
	--storage.path="$run/alertmanager" \
	--web.listen-address=127.0.0.1:19093 \
	--web.external-url=https://127.0.0.1:8443/alertmanager/ \
	--cluster.listen-address= \
	>"$run/alertmanager.log" 2>&1 &
pids+=($!)
alertmanager_pid=$!
instance_record "$run" alertmanager $! 127.0.0.1:19093
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 \
	>"$run/node-exporter.log" 2>&1 &
pids+=($!)
instance_record "$run" node-exporter $! 127.0.0.1:19100
# Probes the gateway once it is up (the ones before fail, and count so).
prometheus-blackbox-exporter --config.file=scripts/local/blackbox.yml \
	--web.listen-address=127.0.0.1:19115 \
	>"$run/blackbox.log" 2>&1 &
pids+=($!)
blackbox_pid=$!
instance_record "$run" blackbox $! 127.0.0.1:19115
wait_ready prometheus "$prometheus_pid" \
	http://127.0.0.1:19090/prometheus/-/ready "$run/prometheus.log"
wait_ready alertmanager "$alertmanager_pid" \
	http://127.0.0.1:19093/alertmanager/-/ready "$run/alertmanager.log"
wait_ready blackbox "$blackbox_pid" http://127.0.0.1:19115/-/healthy \
	"$run/blackbox.log"

# The gateway's own log goes to run/ like the others', not over the banner;
# its access log is a file of its own (run/portcullis.json).
build/bin/portcullis -c "$run/portcullis.json" >"$run/portcullis.log" 2>&1 &
pids+=($!)
gateway_pid=$!
instance_record "$run" portcullis $! "127.0.0.1:8443,8080,9145"
wait_ready portcullis "$gateway_pid" http://127.0.0.1:9145/healthz \
	"$run/portcullis.log"
# amtool through the gateway: TLS with the gateway's certificate, user
# admin (its password read from the file, never on a command line).
cat >"$run/amtool-http.yml" <<YML
basic_auth:
  username: admin
  password_file: $run/admin.password
tls_config:
  ca_file: $run/certs/gateway.crt
YML
if [ $made_password -eq 1 ]; then
	password_line="user \"admin\", password: $(cat "$run/admin.password") (made now; kept in $run/admin.password)"
else
	password_line="user \"admin\", password in $run/admin.password (made on the first run)"
fi
cat <<MSG

portcullis is up (gateway PID $gateway_pid; all PIDs in $run/instance):
  Prometheus    https://127.0.0.1:8443/prometheus/classic/graph (or just
                https://127.0.0.1:8443/, which redirects there)
                .../prometheus/classic/targets, .../classic/alerts
                (Debian's Prometheus has only its classic UI)
  Alertmanager  https://127.0.0.1:8443/alertmanager/api/v2/alerts (its API;
                Debian's package has no web UI), or amtool:
                amtool --alertmanager.url=https://127.0.0.1:8443/alertmanager/ \\
                  --http.config.file=$run/amtool-http.yml alert
  $password_line
  (add or change a user: build/bin/portcullis passwd -f run/users.htpasswd NAME;
   the gateway reads the file again within a second)
  (http://127.0.0.1:8080/ redirects there; the certificate is self-signed,
   run/certs/gateway.crt: curl --cacert run/certs/gateway.crt, or -k)
  metrics       http://127.0.0.1:9145/metrics (admin, loopback only)
  probes        http://127.0.0.1:19115/ (blackbox exporter, loopback only): every
                route through :8443 as user "probe" (run/probe.password);
                probe_success and slo:probe_success:ratio5m in Prometheus
  config        $run/portcullis.json (made from scripts/local/portcullis.json
                at each start); after editing it, apply it with
                build/bin/portcullis -s reload -c run/portcullis.json
                (checks it first: a broken one is refused, nothing changes)
Logs are in $run/: portcullis.log (the gateway), access.log (one JSON
line per request; docs/CONFIG.md, "The access log"), prometheus.log,
alertmanager.log, node-exporter.log, blackbox.log. Grafana and the
upstream web UIs come with the Compose stack (README, "The whole stack with
Docker Compose"). Ctrl-C stops everything.

MSG
wait "${pids[-1]}"
