# Sourced by the test runners (tests/run-all.sh, scripts/check-stack.sh,
# tests/containers/run.sh): each function adds the results a log reports to
# the caller's $passed and $failed; a log without its summary line counts as
# one failure.
# shellcheck shell=bash

# count_ctest LOG: ctest's "N% tests passed, F tests failed out of T".
count_ctest() {
	local line total fail
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -1)
	if [ -z "$line" ]; then
		failed=$((failed + 1))
		return
	fi
	fail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
	passed=$((passed + total - fail))
	failed=$((failed + fail))
}

# count_pytest LOG: pytest's summary line, "99 passed in 52.8s" (-q) or
# "=== 1 failed, 98 passed in 50.1s ===".
count_pytest() {
	local line p f e
	line=$(grep -E '[0-9]+ (passed|failed|errors?)\b.* in [0-9.]+s' "$1" | tail -1)
	if [ -z "$line" ]; then
		failed=$((failed + 1))
		return
	fi
	p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
	f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
	e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || echo 0)
	passed=$((passed + p))
	failed=$((failed + f + e))
}

# count_lines LOG: a last line "N passed, M failed" (this project's runners).
count_lines() {
	local line
	line=$(tail -1 "$1")
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
	else
		failed=$((failed + 1))
	fi
}
