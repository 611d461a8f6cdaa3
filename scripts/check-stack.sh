#!/usr/bin/env bash
# Checks the stack's configuration with the real tools, offline:
#   promtool check config / check rules / test rules (every test file),
#   the rule coverage check (every alert tested and with a runbook),
#   amtool check-config and route and inhibition tests,
#   the blackbox exporter's configs (--config.check),
#   every Grafana panel query parsed by promtool,
#   yamllint on every YAML file of the stack, the compose gateway config
#   through `portcullis -t`, and the compose files' static checks.
# Prints "ok - STEP" or "not ok - STEP" (with the tool's output) per step
# and ends with "N passed, M failed". Takes a minute or two: the promtool
# rule tests, amtool and a live Alertmanager on loopback take most of it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
bin=${PORTCULLIS_BIN:-$root/build/bin/portcullis}
passed=0
failed=0
# shellcheck source=tests/counts.sh
. tests/counts.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT

step() { # NAME CMD...
	local name=$1
	shift
	if "$@" >"$out" 2>&1; then
		echo "ok - $name"
		passed=$((passed + 1))
	else
		echo "not ok - $name"
		sed 's/^/    /' "$out"
		failed=$((failed + 1))
	fi
}

# An inner script that prints "N passed, M failed" last: its cases count
# one by one.
suite() { # NAME CMD...
	local name=$1 rc p0=$passed f0=$failed
	shift
	"$@" >"$out" 2>&1
	rc=$?
	count_lines "$out"
	[ $rc -ne 0 ] && [ $failed -eq "$f0" ] && failed=$((failed + 1))
	if [ $failed -eq "$f0" ]; then
		echo "ok - $name ($((passed - p0)) cases)"
	else
		echo "not ok - $name ($((failed - f0)) of $((passed - p0 + failed - f0)) failed)"
		sed 's/^/    /' "$out"
	fi
}

step "promtool check config prometheus/prometheus.yml" \
	scripts/check-prometheus-config.sh
step "promtool check config scripts/local/prometheus.yml (make run)" \
	promtool check config scripts/local/prometheus.yml
step "promtool check rules" promtool check rules prometheus/rules/*.yml
for t in prometheus/tests/*_test.yml; do
	step "promtool test rules $t" promtool test rules "$t"
done
step "every alert tested, annotated and with a runbook" \
	/usr/bin/python3 tests/tools/check_rules.py "$root"
suite "alertmanager routes, inhibitions and templates" \
	alertmanager/tests/routes.sh
step "every Grafana panel query parses" \
	/usr/bin/python3 tests/tools/dashboard_queries.py
step "blackbox exporter --config.check blackbox/blackbox.yml" \
	prometheus-blackbox-exporter --config.check --config.file=blackbox/blackbox.yml
step "blackbox exporter --config.check scripts/local/blackbox.yml (make run)" \
	prometheus-blackbox-exporter --config.check \
	--config.file=scripts/local/blackbox.yml
step "yamllint" yamllint -s -c .yamllint prometheus alertmanager grafana \
	blackbox compose scripts/local .github
suite "GitHub workflows: schema, pinning, timeouts, permissions" \
	node tests/tools/check_workflows.js
step "terraform: offline checks (parse, variables, module calls, policy)" \
	/usr/bin/python3 tests/tools/check_terraform.py terraform
# terraform itself is not a project dependency (its registry is out of
# reach here, so `validate` runs in CI only); its formatter needs nothing.
if command -v terraform >/dev/null; then
	step "terraform fmt -check -recursive" \
		terraform fmt -check -recursive terraform
else
	echo "# terraform not installed: fmt -check runs in CI (ci.yml) only"
fi
step "portcullis -t -c gateway/portcullis.json (the compose config)" \
	tests/containers/check-gateway-config.sh "$bin"
suite "compose files (static)" env STACK=0 tests/containers/run.sh

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
