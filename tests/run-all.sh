#!/usr/bin/env bash
# Runs every test of the project and ends with one line, "N passed, N
# failed", summing the phases:
#   1. build, C unit tests and fuzz-corpus replay (ctest)
#   2. a short libFuzzer run of every fuzz target (FUZZ_SECONDS each)
#   3. the build types phases 1 and 8 do not build (Release, MinSizeRel;
#      Debug too when 8 is skipped), with warnings as errors: built only,
#      in the background during 2
#   4. static analysis (scripts/analyze.sh: cppcheck, clang-tidy), also in
#      the background during 2
#   5. the stack's configs with the real tools (scripts/check-stack.sh:
#      promtool, amtool, rule coverage, dashboards, yamllint)
#   6. integration tests against real Prometheus, Alertmanager and nginx
#      (test_hardening.py reads the binaries' ELF)
#   7. the compose stack in podman containers (tests/containers/run.sh)
#   8. phases 1 and 6 again with the gateway built with ASan+UBSan (Debug)
# Every build has warnings as errors (-DPORTCULLIS_WERROR=ON). Set
# SKIP_FUZZ=1, SKIP_ANALYSIS=1, SKIP_STACK=1, SKIP_INTEGRATION=1,
# SKIP_CONTAINERS=1 or SKIP_SANITIZE=1 to leave a phase out while
# iterating.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
jobs=$(nproc)
passed=0
failed=0
log_dir=$(mktemp -d /tmp/portcullis-test.XXXXXX)
side_pid=
trap '[ -n "$side_pid" ] && kill "$side_pid" 2>/dev/null; rm -rf "$log_dir"' EXIT

phase() { printf '\n=== %s\n' "$*"; }

# shellcheck source=tests/counts.sh
. tests/counts.sh

# unit DIR CMAKE_ARGS...: configure, build and ctest one build tree.
unit() {
	local dir=$1
	shift
	if ! cmake -S . -B "$dir" "$@" >"$log_dir/cmake.log" 2>&1 ||
		! cmake --build "$dir" -j "$jobs" >>"$log_dir/cmake.log" 2>&1; then
		cat "$log_dir/cmake.log"
		echo "build of $dir failed"
		failed=$((failed + 1))
		return 1
	fi
	(cd "$dir" && ctest --output-on-failure -j "$jobs") 2>&1 | tee "$log_dir/ctest.log"
	count_ctest "$log_dir/ctest.log"
}

# integration BIN: the gateway BIN, and the cost exporter beside it.
integration() {
	local bin=$1
	PORTCULLIS_BIN="$bin" \
		PORTCULLIS_COST_EXPORTER_BIN="$(dirname "$bin")/portcullis-cost-exporter" \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider \
		tests/integration 2>&1 | tee "$log_dir/pytest.log"
	count_pytest "$log_dir/pytest.log"
}

# The side work (phases 3 and 4) needs no result of the others: it runs
# in the background, on the core a fuzzer leaves free (libFuzzer runs one
# target at a time, one thread), so it adds no time when phase 2 runs.
# Its output is shown, and counted, after phase 2.
side_types=(Release MinSizeRel)
# Phase 8 is the Debug build; without it, a plain Debug build stands in.
[ "${SKIP_SANITIZE:-0}" = 1 ] && side_types+=(Debug)
side_jobs=$jobs
[ "${SKIP_FUZZ:-0}" != 1 ] && side_jobs=1
side_start() {
	(
		for t in "${side_types[@]}"; do
			dir=build-${t,,}
			if cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$t" \
				-DPORTCULLIS_WERROR=ON >"$log_dir/$dir.log" 2>&1 &&
				cmake --build "$dir" -j "$side_jobs" \
					>>"$log_dir/$dir.log" 2>&1; then
				echo 0 >"$log_dir/$dir.rc"
			else
				echo 1 >"$log_dir/$dir.rc"
			fi
		done
		if [ "${SKIP_ANALYSIS:-0}" != 1 ]; then
			ANALYZE_JOBS=$side_jobs scripts/analyze.sh \
				>"$log_dir/analyze.log" 2>&1
		fi
	) &
	side_pid=$!
	side_began=$SECONDS
}
side_report() {
	local waited=$SECONDS t dir
	wait "$side_pid"
	side_pid=
	phase "every build type with warnings as errors (built only;" \
		"$((SECONDS - side_began)) s in the background," \
		"$((SECONDS - waited)) s waited for)"
	for t in "${side_types[@]}"; do
		dir=build-${t,,}
		if [ "$(cat "$log_dir/$dir.rc" 2>/dev/null)" = 0 ]; then
			echo "$dir ($t): built"
			passed=$((passed + 1))
		else
			tail -60 "$log_dir/$dir.log"
			echo "$dir ($t): FAILED"
			failed=$((failed + 1))
		fi
	done
	if [ "${SKIP_ANALYSIS:-0}" != 1 ]; then
		phase "static analysis (scripts/analyze.sh: cppcheck, clang-tidy)"
		cat "$log_dir/analyze.log"
		count_lines "$log_dir/analyze.log"
	fi
}

phase "unit tests (build/)"
unit build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTCULLIS_WERROR=ON
have_bin=$?

side_start

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
	phase "fuzzing (${FUZZ_SECONDS:=30}s per target)"
	if cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPORTCULLIS_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTCULLIS_WERROR=ON \
		>"$log_dir/fuzz-build.log" 2>&1 &&
		cmake --build build-fuzz -j "$jobs" >>"$log_dir/fuzz-build.log" 2>&1; then
		for fz in build-fuzz/bin/fuzz_*; do
			name=$(basename "$fz")
			corpus="$root/gateway/fuzz/corpus/${name#fuzz_}"
			work=$(mktemp -d "$log_dir/$name.XXXX")
			dict=()
			[ -f "gateway/fuzz/${name#fuzz_}.dict" ] &&
				dict=("-dict=$root/gateway/fuzz/${name#fuzz_}.dict")
			if (cd "$work" && "$root/$fz" -max_total_time="$FUZZ_SECONDS" \
				-print_final_stats=1 "${dict[@]}" \
				"$work" "$corpus") >"$log_dir/$name.log" 2>&1; then
				echo "$name: ok ($(grep -E 'stat::number_of_executed_units' \
					"$log_dir/$name.log" | awk '{print $2}') runs)"
				passed=$((passed + 1))
			else
				tail -40 "$log_dir/$name.log"
				echo "$name: FAILED (crash input saved in $work)"
				failed=$((failed + 1))
			fi
		done
	else
		cat "$log_dir/fuzz-build.log"
		echo "fuzz build failed"
		failed=$((failed + 1))
	fi
fi

side_report

if [ "${SKIP_STACK:-0}" != 1 ]; then
	phase "the stack's configuration (promtool, amtool, dashboards, yamllint)"
	scripts/check-stack.sh 2>&1 | tee "$log_dir/stack.log"
	count_lines "$log_dir/stack.log"
fi

if [ "${SKIP_INTEGRATION:-0}" != 1 ]; then
	phase "integration tests"
	if [ $have_bin -eq 0 ]; then
		integration "$root/build/bin/portcullis"
	else
		failed=$((failed + 1))
	fi
fi

if [ "${SKIP_CONTAINERS:-0}" != 1 ]; then
	phase "the compose stack in containers (podman)"
	if [ "$(id -u)" -ne 0 ] || ! command -v podman >/dev/null; then
		# make deps installs podman; this only happens without root.
		echo "containers: SKIPPED: needs root and podman (make deps)"
	else
		tests/containers/run.sh 2>&1 | tee "$log_dir/containers.log"
		count_lines "$log_dir/containers.log"
	fi
fi

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
	phase "unit tests under ASan+UBSan (build-asan/)"
	# A 4 MiB quarantine still catches use-after-free of recent frees and
	# keeps RSS meaningful for the streaming tests' memory bound.
	export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:exitcode=99:quarantine_size_mb=4
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	if unit build-asan -DCMAKE_BUILD_TYPE=Debug -DPORTCULLIS_SANITIZE=ON \
		-DPORTCULLIS_WERROR=ON &&
		[ "${SKIP_INTEGRATION:-0}" != 1 ]; then
		phase "integration tests under ASan+UBSan"
		integration "$root/build-asan/bin/portcullis"
	fi
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
