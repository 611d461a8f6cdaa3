#!/usr/bin/env bash
# Installs the Debian 12 packages portcullis needs, by group:
#   run    build the gateway and the cost exporter (make build) and serve
#          them with scripts/run-local.sh (make run)
#   test   run's, and what tests/run-all.sh and its phases need (make
#          test), with the npm tools of tools/node/ (the npm registry)
#   bench  the build's, and what bench/run.sh needs (make bench)
#   all    every group (make deps; also with no argument)
# scripts/deps.sh [GROUP...] installs what is missing, quietly and quickly
# when nothing is; scripts/deps.sh --list GROUP... prints the packages a
# fresh machine gets, one a line, and installs nothing
# (tests/integration/test_deps_groups.py reads it).
set -euo pipefail

# The build (`make build`): CMake, make and the C compiler, the libraries
# CMakeLists.txt asks pkg-config for, cmocka for the unit tests a default
# configure includes, libsystemd-dev (the gateway links it for sd_notify,
# gateway/src/notify.c). No g++: the project is C only (clang brings its own C++
# runtime for libFuzzer).
build_pkgs=(
	gcc make libc6-dev cmake pkg-config
	libevent-dev libssl-dev libcjson-dev libcurl4-openssl-dev libcrypt-dev
	zlib1g-dev libcmocka-dev libsystemd-dev
)
# What scripts/run-local.sh and scripts/local/instance.sh start and call
# beyond Debian's required packages (coreutils, grep, sed, mawk, bash):
# the four services, curl (readiness), ss (a port's owner), flock (one
# instance at a time).
run_pkgs=(
	prometheus prometheus-alertmanager prometheus-node-exporter
	prometheus-blackbox-exporter
	curl iproute2 util-linux
)
# Every phase of tests/run-all.sh: clang for the fuzzers, the static
# analysers, pytest and its peers (nginx, varnishtest, openssl s_client,
# sslscan, dnsmasq, htpasswd, mkpasswd, botocore, cryptography's OCSP
# response builder, shellcheck), yamllint
# for the stack checks and the container phase (podman, debootstrap).
# Node.js runs the npm tools of tools/node/ (HCL parser, JSON-schema
# validator): the machine's own when it has one, else Debian's.
test_pkgs=(
	clang libclang-rt-14-dev clang-format clang-tidy cppcheck
	python3-pytest python3-websocket python3-h11 python3-hypothesis
	python3-botocore python3-cryptography python3-yaml yamllint shellcheck
	# make install's tests: systemd-analyze verify of the unit, man
	# --warnings of the man pages (tests/integration/test_install.py)
	systemd man-db groff-base
	nginx-light varnish openssl procps ca-certificates dnsmasq-base sslscan
	apache2-utils whois
	podman runc conmon containernetworking-plugins iptables
	golang-github-containernetworking-plugin-dnsname podman-compose
	debootstrap
)
test_node_pkgs=(nodejs npm)
# bench/run.sh: the proxies it compares, its load generator and chart,
# and the tools of its TLS and basic-auth rows (openssl, gcc for the wrk
# shim, htpasswd), pgrep and python3 for its helpers.
bench_pkgs=(
	nginx-light haproxy wrk gnuplot-nox python3 openssl apache2-utils procps
)

usage() {
	echo "usage: scripts/deps.sh [--list] [run|test|bench|all]..." >&2
	exit 2
}

list=0
if [ "${1:-}" = --list ]; then
	list=1
	shift
fi
[ $# -eq 0 ] && set -- all
groups=()
pkgs=()
node=0
for g in "$@"; do
	case $g in
	run) pkgs+=("${build_pkgs[@]}" "${run_pkgs[@]}") ;;
	test)
		pkgs+=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}")
		node=1
		;;
	bench) pkgs+=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
	all)
		pkgs+=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}"
			"${bench_pkgs[@]}")
		node=1
		;;
	*) usage ;;
	esac
	groups+=("$g")
done
# Each package once, in the order first named.
declare -A seen=()
unique=()
for p in "${pkgs[@]}"; do
	[ -n "${seen[$p]:-}" ] && continue
	seen[$p]=1
	unique+=("$p")
done
pkgs=("${unique[@]}")

if [ $list -eq 1 ]; then
	[ $node -eq 1 ] && pkgs+=("${test_node_pkgs[@]}")
	printf '%s\n' "${pkgs[@]}"
	exit 0
fi
if [ $node -eq 1 ]; then
	command -v node >/dev/null || pkgs+=(nodejs)
	command -v npm >/dev/null || pkgs+=(npm)
fi

# One dpkg-query for them all: a package never installed is not listed.
declare -A installed=()
while read -r p status; do
	[ "$status" = installed ] && installed[$p]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" \
	2>/dev/null || true)
missing=()
for p in "${pkgs[@]}"; do
	[ -n "${installed[$p]:-}" ] || missing+=("$p")
done

cd "$(dirname "$0")/.."
npm_tools() { # the pinned npm packages, when the lock file is newer
	[ $node -eq 1 ] || return 0
	[ tools/node/node_modules/.package-lock.json -nt tools/node/package-lock.json ] ||
		npm ci --prefix tools/node --ignore-scripts --no-audit --no-fund
}
if [ ${#missing[@]} -eq 0 ]; then
	npm_tools
	exit 0
fi

echo "deps: ${groups[*]}: installing ${#missing[@]} of its ${#pkgs[@]} packages (and what they depend on): ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || {
		echo "deps: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	}
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Packaged daemons (nginx, prometheus, the blackbox exporter...) must not
# start system-wide services: the project runs its own instances on loopback.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	made_policy=1
fi
remove_policy() {
	if [ $made_policy -eq 1 ]; then $sudo rm -f "$policy"; fi
}
trap remove_policy EXIT
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
npm_tools
