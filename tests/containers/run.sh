#!/usr/bin/env bash
# The compose stack in containers, end to end, under podman:
#   1. a debian:bookworm-slim base image, made with debootstrap when missing
#      (no registry is reachable; cached as an image, rebuilt only if gone)
#   2. the images of compose/docker-compose.test.yml: the gateway from
#      gateway/Dockerfile, the cost exporter from cost-exporter/Dockerfile,
#      Prometheus, Alertmanager, node-exporter and the blackbox exporter
#      from Debian's packages, a
#      Grafana stand-in and the test's fake AWS (tests/containers/images/)
#   3. make run on a fresh Debian 12 container of that base image, with
#      only what scripts/deps.sh run installs, answering through the
#      gateway and stopped by its PID (tests/containers/fresh_make_run.sh,
#      in a copy of the working tree; FRESH_RUN=0 leaves it out)
#   4. pytest: test_compose_file.py (static checks, podman-compose's parse,
#      portcullis -t) and test_stack.py (the stack up on 127.0.0.1 with
#      free ports, checked through the gateway, torn down with its volumes)
# Ends with "N passed, M failed". Needs root (rootful podman), podman,
# podman-compose, debootstrap; apt inside the builds reaches deb.debian.org.
# STACK=0 runs only the static checks (no image, no container); NO_CACHE=1
# builds every image from scratch (the base image is kept).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=tests/counts.sh
. tests/counts.sh
passed=0
failed=0
started=$(date +%s)
log_dir=$(mktemp -d /tmp/portcullis-containers.XXXXXX)
base=docker.io/library/debian:bookworm-slim
ulimits=(--ulimit nofile=16384:16384 --ulimit nproc=4096:4096)
PORTCULLIS_TEST_PROJECT="pctest$$$(head -c 2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PORTCULLIS_TEST_PROJECT

# Whatever pytest leaves behind (a kill mid-run): containers, volumes and
# the network of this run's project, found by its label.
cleanup() {
	local label="label=io.podman.compose.project=$PORTCULLIS_TEST_PROJECT" ids
	mapfile -t ids < <(podman ps -aq --filter "$label" 2>/dev/null)
	[ ${#ids[@]} -gt 0 ] && podman rm -f -t 5 "${ids[@]}" >/dev/null 2>&1
	mapfile -t ids < <(podman volume ls -q --filter "$label" 2>/dev/null)
	[ ${#ids[@]} -gt 0 ] && podman volume rm -f "${ids[@]}" >/dev/null 2>&1
	mapfile -t ids < <(podman network ls -q --filter "$label" 2>/dev/null)
	[ ${#ids[@]} -gt 0 ] && podman network rm -f "${ids[@]}" >/dev/null 2>&1
	rm -rf "$log_dir" ${fresh_src:+"$fresh_src"}
}
fresh_src=
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { # NAME CMD...: counts one check, shows the log when it fails
	local name=$1 t0=$SECONDS
	shift
	if "$@" >"$log_dir/step.log" 2>&1; then
		echo "ok - $name ($((SECONDS - t0))s)"
		passed=$((passed + 1))
		return 0
	fi
	echo "not ok - $name"
	grep -v "unable to get systemd connection" "$log_dir/step.log" | tail -40 | sed 's/^/    /'
	failed=$((failed + 1))
	return 1
}

make_base() {
	podman image exists "$base" && return 0
	local dir
	dir=$(mktemp -d /var/tmp/portcullis-rootfs.XXXXXX)
	# The official image's sources (with updates and security), and no
	# package cache.
	debootstrap --variant=minbase --include=ca-certificates bookworm "$dir" \
		http://deb.debian.org/debian &&
		printf 'deb http://deb.debian.org/debian %s main\n' \
			bookworm bookworm-updates >"$dir/etc/apt/sources.list" &&
		printf 'deb http://deb.debian.org/debian-security bookworm-security main\n' \
			>>"$dir/etc/apt/sources.list" &&
		rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* &&
		tar -C "$dir" -c . | podman import - localhost/debian:bookworm-slim &&
		podman tag localhost/debian:bookworm-slim "$base"
	local rc=$?
	rm -rf "$dir"
	return $rc
}

build() { # TAG CONTEXT [DOCKERFILE]
	local cache=()
	[ "${NO_CACHE:-0}" = 1 ] && cache=(--no-cache)
	podman build --format docker "${ulimits[@]}" --pull=never "${cache[@]}" \
		-t "$1" ${3:+-f "$3"} "$2"
}

fresh_make_run() {
	fresh_src=$(mktemp -d /var/tmp/portcullis-fresh.XXXXXX)
	tar -C . --exclude=./.git --exclude=./build --exclude='./build-*' \
		--exclude=./run --exclude=./tools/node/node_modules \
		--exclude=./bench/results -c . | tar -C "$fresh_src" -x &&
		podman run --rm --pull=never "${ulimits[@]}" \
			--label "io.podman.compose.project=$PORTCULLIS_TEST_PROJECT" \
			-v "$fresh_src:/src" "$base" \
			bash /src/tests/containers/fresh_make_run.sh
	local rc=$?
	rm -rf "$fresh_src"
	fresh_src=
	return $rc
}

if [ "${STACK:-1}" != 0 ]; then
	step "base image $base" make_base || true
	pids=()
	for name in prometheus alertmanager node-exporter blackbox-exporter grafana; do
		build "localhost/portcullis-test/$name:latest" \
			"tests/containers/images/$name" >"$log_dir/build-$name.log" 2>&1 &
		pids+=("$!:$name")
	done
	build localhost/portcullis-test/gateway:latest . gateway/Dockerfile \
		>"$log_dir/build-gateway.log" 2>&1 &
	pids+=("$!:gateway")
	build localhost/portcullis-test/cost-exporter:latest . cost-exporter/Dockerfile \
		>"$log_dir/build-cost-exporter.log" 2>&1 &
	pids+=("$!:cost-exporter")
	# context tests/: the image carries tests/tools/fake_aws.py itself
	build localhost/portcullis-test/fake-aws:latest tests \
		tests/containers/images/fake-aws/Containerfile \
		>"$log_dir/build-fake-aws.log" 2>&1 &
	pids+=("$!:fake-aws")
	for entry in "${pids[@]}"; do
		step "image ${entry#*:}" wait "${entry%%:*}" ||
			grep -v "unable to get systemd" "$log_dir/build-${entry#*:}.log" | tail -30
	done
	if [ "${FRESH_RUN:-1}" != 0 ] &&
		step "make run on a fresh Debian 12 with scripts/deps.sh run only" \
			fresh_make_run; then
		grep -E '^(the run group added|through the gateway)' \
			"$log_dir/step.log" | sed 's/^/    /'
	fi
	tests=(tests/containers)
else
	tests=(tests/containers/test_compose_file.py)
fi

/usr/bin/python3 -m pytest -q -p no:cacheprovider -rs "${tests[@]}" 2>&1 |
	tee "$log_dir/pytest.log"
count_pytest "$log_dir/pytest.log"
echo "containers: $(($(date +%s) - started))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
