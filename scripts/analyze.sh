#!/usr/bin/env bash
# Static analysis of the C code in gateway/src, cost-exporter/src,
# gateway/fuzz and tests/unit: cppcheck, then clang-tidy with the checks of
# .clang-tidy. Each tool is one pass or one failure, and the last line is
# "N passed, M failed" (tests/run-all.sh counts it). `make analyze` runs it.
#
#   ANALYZE_JOBS=N   files analysed at once (default: nproc)
#
# Suppressions, each with its reason: inline where they concern one line
# (cppcheck-suppress, NOLINT), tools/analysis/cppcheck-suppressions.txt for
# the whole tree.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
jobs=${ANALYZE_JOBS:-$(nproc)}
dirs=(gateway/src cost-exporter/src gateway/fuzz tests/unit)
build="build-analyze"
passed=0
failed=0
tmp=$(mktemp -d /tmp/portcullis-analyze.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# verdict NAME STATUS DETAIL: one pass or failure.
verdict() {
	if [ "$2" -eq 0 ]; then
		echo "$1: ok ($3)"
		passed=$((passed + 1))
	else
		echo "$1: FAILED ($3)"
		failed=$((failed + 1))
	fi
}

# --- cppcheck. glibc's sys/queue.h is included into every file: without
# the TAILQ macros cppcheck stops at the first TAILQ_HEAD with a
# syntaxError and checks nothing else in that file.
start=$SECONDS
queue_h=$(echo '#include <sys/queue.h>' | cpp -H -o /dev/null 2>&1 |
	awk '$2 ~ /sys\/queue\.h$/ { print $2; exit }')
args=(--quiet -j "$jobs" --std=c11 --language=c
	--library=posix --library=gnu --library=openssl --library=libcurl
	-D_GNU_SOURCE '-DPORTCULLIS_VERSION="0"'
	-I gateway/src -I cost-exporter/src --include="$queue_h"
	'--enable=warning,portability,performance'
	--inline-suppr --error-exitcode=1
	--suppressions-list=tools/analysis/cppcheck-suppressions.txt)
if ! command -v cppcheck >/dev/null || [ -z "$queue_h" ]; then
	verdict cppcheck 1 "cppcheck or sys/queue.h missing: make deps"
else
	cppcheck "${args[@]}" "${dirs[@]}" >"$tmp/cppcheck.log" 2>&1
	rc=$?
	cat "$tmp/cppcheck.log"
	verdict cppcheck $rc "$(find "${dirs[@]}" -name '*.c' | wc -l) files, $((SECONDS - start)) s"
fi

# --- clang-tidy, on the compile commands of a clang Debug configuration
# (configured only, never built): no FORTIFY wrappers in the way of the
# analyzer, and clang's own flags. One file per process: clang-tidy 14
# carries analyzer state from one file to the next and then reports a
# va_start it has just seen as missing (valist.Uninitialized).
start=$SECONDS
tidy_one() { # FILE
	local log
	log=$tmp/tidy/$(tr / _ <<<"$1")
	clang-tidy -p "$build" --quiet "$root/$1" >"$log.out" 2>"$log.err"
	echo $? >"$log.rc"
}
export -f tidy_one
export tmp build root
mkdir -p "$tmp/tidy"
if ! command -v clang-tidy >/dev/null || ! command -v clang >/dev/null; then
	verdict clang-tidy 1 "clang-tidy or clang missing: make deps"
elif ! cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang \
	-DCMAKE_BUILD_TYPE=Debug >"$tmp/cmake.log" 2>&1; then
	cat "$tmp/cmake.log"
	verdict clang-tidy 1 "cmake -B $build failed"
else
	# The files of the compile commands under dirs, relative to root.
	mapfile -t files < <(/usr/bin/python3 -c '
import json, os, sys
root, db, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
for e in json.load(open(db)):
    f = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
    if any(f.startswith(d + "/") for d in dirs):
        print(f)' "$root" "$build/compile_commands.json" "${dirs[@]}" | sort -u)
	printf '%s\n' "${files[@]}" >"$tmp/tidy.list"
	# shellcheck disable=SC2016 # $1 is bash -c's own
	xargs -d '\n' -n 1 -P "$jobs" -a "$tmp/tidy.list" \
		bash -c 'tidy_one "$1"' _
	bad=0
	for f in "${files[@]}"; do
		log=$tmp/tidy/$(tr / _ <<<"$f")
		if [ "$(cat "$log.rc" 2>/dev/null)" != 0 ]; then
			bad=$((bad + 1))
			sed "s|$root/||" "$log.out"
			grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings' \
				"$log.err"
			echo "clang-tidy: $f: FAILED"
		fi
	done
	[ ${#files[@]} -eq 0 ] && bad=1 && echo "clang-tidy: no files in $build/compile_commands.json"
	verdict clang-tidy $((bad > 0)) "${#files[@]} files, $bad failed, $((SECONDS - start)) s"
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
