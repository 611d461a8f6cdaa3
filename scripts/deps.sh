#!/usr/bin/env bash
# Installs the Debian 12 packages portcullis builds, tests and benchmarks
# with. Quiet and quick when everything is there already.
set -euo pipefail

pkgs=(
	build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
	clang-tidy cppcheck
	libevent-dev libssl-dev libcjson-dev libcmocka-dev
	libcurl4-openssl-dev libcrypt-dev zlib1g-dev
	# sd_notify for the systemd unit (gateway/src/notify.c)
	libsystemd-dev
	# make install's tests: systemd-analyze verify of the unit, man
	# --warnings of the man pages (tests/integration/test_install.py)
	systemd man-db groff-base
	prometheus prometheus-alertmanager prometheus-node-exporter
	prometheus-blackbox-exporter
	python3-pytest python3-websocket python3-h11 python3-hypothesis
	nginx-light haproxy wrk varnish gnuplot-nox
	openssl curl procps iproute2 ca-certificates dnsmasq-base sslscan
	apache2-utils whois python3-botocore
	python3-yaml yamllint
	podman runc conmon containernetworking-plugins iptables
	golang-github-containernetworking-plugin-dnsname podman-compose
	debootstrap
)

# Node.js runs the npm tools of tools/node/ (HCL parser, JSON-schema
# validator): the machine's own when it has one, else Debian's.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
npm_tools() { # the pinned npm packages, when the lock file is newer
	[ tools/node/node_modules/.package-lock.json -nt tools/node/package-lock.json ] ||
		npm ci --prefix tools/node --ignore-scripts --no-audit --no-fund
}
cd "$(dirname "$0")/.."
if [ ${#missing[@]} -eq 0 ]; then
	npm_tools
	exit 0
fi

echo "deps: installing ${missing[*]}"
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
trap '[ $made_policy -eq 1 ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
npm_tools
