# shellcheck shell=bash
# One `make run` at a time (sourced by scripts/run-local.sh; bash).
#
# instance_claim RUN_DIR PORT...
#   Takes run/.instance.lock (flock, on fd 9, held until the caller exits)
#   and checks that every PORT is free on loopback, before anything in
#   RUN_DIR is written. Returns 1, with what is running on stderr, when
#   another `make run` holds the lock (its services, PIDs and ports, from
#   RUN_DIR/instance) or when a port is taken (by whom, from ss).
# instance_record RUN_DIR NAME PID PORT
#   Adds a running service to RUN_DIR/instance, for the report above.

instance_claim() {
	local run=$1 port busy=0 line
	shift
	exec 9>>"$run/.instance.lock" # append: opening it changes nothing
	if ! flock -n 9; then
		echo "run: another 'make run' is running from $run; nothing was started or changed." >&2
		if [ -s "$run/instance" ]; then
			echo "run: it runs (service, PID, port):" >&2
			sed 's/^/run:   /' "$run/instance" >&2
		fi
		echo "run: stop it with Ctrl-C in its terminal, or: kill $(head -n 1 "$run/instance" 2>/dev/null | awk '{print $2}')" >&2
		return 1
	fi
	for port in "$@"; do
		line=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)
		if [ -n "$line" ]; then
			echo "run: port $port is taken: $line" >&2
			busy=1
		fi
	done
	if [ $busy -eq 1 ]; then
		echo "run: nothing was started or changed; free the port(s) above first." >&2
		return 1
	fi
	: >"$run/instance"
}

instance_record() {
	printf '%-14s %-8s %s\n' "$2" "$3" "$4" >>"$1/instance"
}
