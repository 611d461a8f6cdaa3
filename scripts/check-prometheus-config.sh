#!/usr/bin/env bash
# promtool check config on prometheus/prometheus.yml as compose mounts it:
# its /etc/prometheus/ paths (rules, file_sd) pointed at the repository, so
# the rule files and file_sd targets are checked with it (on the file as it
# is, the rule glob would match nothing here and check no rule).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|/etc/prometheus/|$PWD/prometheus/|g" prometheus/prometheus.yml \
	>"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"
