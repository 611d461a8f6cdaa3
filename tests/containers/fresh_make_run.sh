#!/usr/bin/env bash
# `make run` on a fresh Debian 12, with only what scripts/deps.sh's group
# run installs. Runs inside a container of the debootstrap minbase image
# (tests/containers/run.sh starts it, a copy of the working tree in /src):
#   1. scripts/deps.sh run installs the group; a second call installs
#      nothing and says nothing; no test or bench tool came with it
#   2. make run (as a user would: the deps step again, the build, the
#      services) until its banner
#   3. through the gateway: Prometheus and Alertmanager answer 200 with
#      the admin password made on the first run, 401 without it; :8080
#      redirects to :8443
#   4. the run stopped by the PID in run/instance (what Ctrl-C does); it
#      leaves no process behind
# Prints what the group added (packages, installed MiB) and ends with
# "fresh make run: ok", or exits 1 naming the failed check.
set -euo pipefail
cd /src
fail() {
	echo "fresh make run: FAILED: $*" >&2
	exit 1
}
installed() { # "packages MiB" of what dpkg has installed
	dpkg-query -W -f='${db:Status-Status} ${Installed-Size}\n' |
		awk '$1 == "installed" { n++; s += $2 } END { print n, int(s / 1024) }'
}
read -r base_n base_mib < <(installed)

scripts/deps.sh run >/tmp/deps.log 2>&1 || {
	tail -30 /tmp/deps.log
	fail "scripts/deps.sh run"
}
grep -m1 '^deps: run: installing' /tmp/deps.log || true
read -r n mib < <(installed)
echo "the run group added $((n - base_n)) packages, $((mib - base_mib)) MiB" \
	"(to a minbase root of $base_n packages, $base_mib MiB)"
again=$(scripts/deps.sh run 2>&1) || fail "scripts/deps.sh run, again"
[ -z "$again" ] || fail "a second scripts/deps.sh run said: $again"
for p in podman clang clang-tidy cppcheck haproxy varnish nginx-light wrk \
	nodejs npm gnuplot-nox; do
	if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null |
		grep -qx installed; then
		fail "the run group installed $p"
	fi
done

make run >/tmp/make-run.log 2>&1 &
make_pid=$!
up=0
for _ in $(seq 1 600); do
	if grep -q '^portcullis is up' /tmp/make-run.log; then
		up=1
		break
	fi
	kill -0 "$make_pid" 2>/dev/null || break
	sleep 1
done
if [ $up -ne 1 ]; then
	grep -v '^\[ *[0-9]*%\]' /tmp/make-run.log | tail -30
	tail -20 run/portcullis.log 2>/dev/null || true
	kill "$(awk '$1 == "make-run" { print $2 }' run/instance 2>/dev/null)" \
		2>/dev/null || true
	fail "make run did not come up"
fi
echo "make run is up: $(awk '{ printf "%s%s", sep, $1; sep = ", " }' run/instance)"

# status PATH [curl args]: the gateway's status for https://127.0.0.1:8443/PATH
status() {
	local path=$1
	shift
	curl -sS -o /tmp/body -w '%{http_code}' --cacert run/certs/gateway.crt \
		"$@" "https://127.0.0.1:8443/$path"
}
checks=0
expect() { # WANT GOT WHAT
	[ "$1" = "$2" ] || fail "$3: $2, not $1 ($(head -c 200 /tmp/body))"
	checks=$((checks + 1))
}
auth=(--user "admin:$(cat run/admin.password)")
expect 200 "$(status prometheus/-/ready "${auth[@]}")" "Prometheus's ready"
grep -q "Prometheus Server is Ready" /tmp/body || fail "Prometheus's body"
expect 200 "$(status alertmanager/api/v2/status "${auth[@]}")" \
	"Alertmanager's status"
grep -q '"cluster"' /tmp/body || fail "Alertmanager's body"
expect 401 "$(status prometheus/-/ready)" "no password"
expect "308 https://127.0.0.1:8443/prometheus/" "$(curl -sS -o /dev/null \
	-w '%{http_code} %{redirect_url}' http://127.0.0.1:8080/prometheus/)" \
	"plain HTTP"
echo "through the gateway: $checks checks passed"

mapfile -t pids < <(awk '{ print $2 }' run/instance)
kill "$(awk '$1 == "make-run" { print $2 }' run/instance)"
wait "$make_pid" || true
for p in "${pids[@]}"; do
	[ "$p" = - ] && continue
	# a zombie (an orphan this PID 1 has not reaped yet) does not run
	if [ -e "/proc/$p" ] && ! grep -q ') Z ' "/proc/$p/stat" 2>/dev/null; then
		fail "PID $p of run/instance still runs after the stop"
	fi
done
echo "stopped by its PID: no process of run/instance left"
echo "fresh make run: ok"
