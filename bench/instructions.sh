#!/usr/bin/env bash
# bench/instructions.sh — instructions per request under callgrind: portcullis,
# nginx and HAProxy, each as ONE process in front of the same upstream.
#
# Method
#   * Upstream: Debian nginx, 1 worker (master + worker, NOT under valgrind),
#     sendfile on, keepalive_requests 1000000, access_log off, temp docroot:
#     /small (13 bytes "hello world!\n"), /64k.bin (65536 B), /1m.bin (1048576 B).
#   * Proxies, each one single process under
#       valgrind --tool=callgrind --callgrind-out-file=FILE
#     nginx       daemon off; master_process off; worker_processes 1;
#                 upstream keepalive 32, proxy_http_version 1.1, Connection "",
#                 access_log off (proxy_buffering at its default, on)
#     haproxy     -db, nbthread 1, mode http, http-reuse always, no logs
#     portcullis  {"workers": 1, "access_log": false, ...} as in run.sh (the
#                 worker is a thread of the one process; callgrind counts all
#                 threads together)
#   * For every row and proxy the proxy is started twice: once it serves N
#     requests, once N/INSTR_LOW_DIV (default N/5). Each time: start under
#     callgrind, poll until it returns the row's body (up to 60 s: valgrind
#     start-up is slow), send exactly that many keep-alive GETs from a stdlib
#     Python client over INSTR_CONNECTIONS (default 4) connections (one
#     request in flight per connection), checking status 200 and the exact
#     body of every response, then SIGTERM by PID and wait for callgrind to
#     write FILE. The total Ir comes from FILE's "totals:" line.
#       instructions/request = (I(N) - I(N/5)) / (N - N/5)
#     i.e. the slope between the two runs: start-up, the readiness probe,
#     opening the upstream connections and shutdown are the same in both and
#     cancel out.
#   * Instruction counts do not depend on machine load, so the numbers are
#     reproducible on a shared machine. They count user-space instructions
#     only: work the kernel does in syscalls (copies, epoll) is not included.
#     Timer wake-ups that happen while the (slowed-down) proxy runs do scale
#     with N and stay in the slope; they are small next to the request work.
#
# Environment: INSTR_N_SMALL (5000) INSTR_N_64K (2000) INSTR_N_1M (200)
#   INSTR_LOW_DIV (5) INSTR_CONNECTIONS (4) INSTR_TARGETS ("nginx haproxy
#   portcullis") INSTR_ROWS (row names, default all) INSTR_READY_WAIT (60 s)
#   BENCH_RESULTS (bench/results) PORTCULLIS (binary path; copied once at start,
#   so a rebuild during the run does not mix two binaries)
# Outputs: BENCH_RESULTS/instructions.md and .csv; BENCH_RESULTS/instructions/
#   holds the callgrind files, configs, logs and the per-run table.
# Default duration on a 2-core VM: about 6 minutes.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
PY=/usr/bin/python3
NGINX=/usr/sbin/nginx
HAPROXY=/usr/sbin/haproxy
VALGRIND=${VALGRIND:-valgrind}
PORTCULLIS=${PORTCULLIS:-$REPO_DIR/build/bin/portcullis}

LOW_DIV=${INSTR_LOW_DIV:-5}
CONNECTIONS=${INSTR_CONNECTIONS:-4}
READY_WAIT=${INSTR_READY_WAIT:-60}
read -r -a TARGETS <<<"${INSTR_TARGETS:-nginx haproxy portcullis}"
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}

# name   URL path   requests (N)
ALL_ROWS=(
  "small  /small    ${INSTR_N_SMALL:-5000}"
  "64k    /64k.bin  ${INSTR_N_64K:-2000}"
  "1m     /1m.bin   ${INSTR_N_1M:-200}"
)

# The setup layer shared with run.sh: log/die, spawn, stop_pid, alloc_port,
# start_upstream, the proxies' config writers; processes stopped by PID on exit.
LOG_TAG=instr DIE_WORD=error
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- proxies
# NAME_version: one line; NAME_config TAG PORT: write the config, set T_CMD
# (the command line, without valgrind).

nginx_version() { "$NGINX" -v 2>&1 | sed 's/^nginx version: //'; }
nginx_config() {
  local tag=$1 port=$2 conf=$WORK/nginx-$1.conf
  nginx_proxy_conf "nginx-$tag" off "listen 127.0.0.1:$port;" >"$conf"
  T_CMD=("$NGINX" -p "$WORK/" -e "$WORK/nginx-$tag.error.log" -c "$conf")
}

haproxy_version() { "$HAPROXY" -v | head -n 1 | sed 's/ - https.*//'; }
haproxy_config() {
  local port=$2 conf=$WORK/haproxy-$1.cfg
  haproxy_conf 120s "bind 127.0.0.1:$port" >"$conf"
  T_CMD=("$HAPROXY" -db -f "$conf")
}

portcullis_version() {
  echo "$("$PORTCULLIS" --version 2>&1 | head -n 1), sha256 $(sha256sum "$PORTCULLIS" | cut -c1-12)"
}
portcullis_config() {
  local port=$2 admin conf=$WORK/portcullis-$1.json
  alloc_port admin
  portcullis_conf "$port" "$admin" >"$conf"
  T_CMD=("$PORTCULLIS" -c "$conf")
}

# measure TARGET ROW PATH COUNT KIND: one callgrind run; appends to runs.tsv.
measure() {
  local t=$1 row=$2 path=$3 count=$4 kind=$5 port tag out logf pid status=ok ir="" loadout
  tag=$row-$kind
  alloc_port port
  "${t}_config" "$tag" "$port"
  out=$RAW/callgrind.$t.$tag.out
  logf=$RAW/$t.$tag.log
  rm -f "$out"
  spawn "" "$logf" "$VALGRIND" --tool=callgrind --callgrind-out-file="$out" "${T_CMD[@]}"
  pid=$SPAWNED
  if ! "$PY" "$BENCH_DIR/tools.py" check --wait "$READY_WAIT" --pid "$pid" \
      "http://127.0.0.1:$port$path" "$DOCROOT$path"; then
    log "$t did not answer $path correctly within ${READY_WAIT}s (log $logf):"
    tail -n 20 "$logf" >&2 || true
    status=fail
  elif ! loadout=$("$PY" "$BENCH_DIR/instructions.py" load --count "$count" \
      --connections "$CONNECTIONS" "http://127.0.0.1:$port$path" "$DOCROOT$path"); then
    log "$t failed during the $count requests of $row (log $logf)"
    status=fail
  elif ! kill -0 "$pid" 2>/dev/null; then
    log "$t exited during the run (log $logf)"; status=fail
  fi
  if ! stop_pid "$pid" 120; then
    log "$t (pid $pid) did not exit within 120 s of SIGTERM; killed"; status=fail
  fi
  if [[ $status == ok ]]; then
    if ir=$("$PY" "$BENCH_DIR/instructions.py" total "$out"); then
      log "$row  $t  $count requests: $(printf "%'d" "$ir") instructions ($loadout)"
    else
      status=fail; ir=""
    fi
  fi
  for f in "$WORK/$t-$tag".{conf,cfg,json,error.log}; do [[ -f $f ]] && cp "$f" "$RAW/"; done
  [[ $status == ok ]] || FAILED=1
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$path" "$t" "$kind" "$count" "$status" "$ir" >>"$RAW/runs.tsv"
}

# ---------------------------------------------------------------- preflight
for tool in "$NGINX" "$HAPROXY" "$PY" "$VALGRIND" callgrind_annotate; do
  command -v "$tool" >/dev/null || die "missing $tool"
done
for t in "${TARGETS[@]}"; do
  declare -F "${t}_config" >/dev/null || die "unknown target '$t' (nginx haproxy portcullis)"
done
if [[ " ${TARGETS[*]} " == *" portcullis "* ]]; then
  [[ -x $PORTCULLIS ]] || die "portcullis binary not found at $PORTCULLIS — build it first
  (cmake -S . -B build && cmake --build build), or measure the others only with
  INSTR_TARGETS=\"nginx haproxy\" (portcullis is never skipped silently)."
fi
[[ $LOW_DIV =~ ^[0-9]+$ && $LOW_DIV -ge 2 ]] || die "INSTR_LOW_DIV must be an integer >= 2"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "INSTR_CONNECTIONS must be a positive integer"
ROWS=()
for r in "${ALL_ROWS[@]}"; do
  read -r name _ n <<<"$r"
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n / LOW_DIV < 1)); then die "request count for $name ('$n') must be >= $LOW_DIV"; fi
  if [[ -z ${INSTR_ROWS:-} || " $INSTR_ROWS " == *" $name "* ]]; then ROWS+=("$r"); fi
done
((${#ROWS[@]})) || die "no row matches INSTR_ROWS='$INSTR_ROWS'"

make_work portcullis-instr
# Every run uses one snapshot of the binary, even if build/ is rebuilt meanwhile.
if [[ " ${TARGETS[*]} " == *" portcullis "* ]]; then
  cp "$PORTCULLIS" "$WORK/portcullis" || die "cannot copy $PORTCULLIS"
  PORTCULLIS=$WORK/portcullis
fi
RAW=$RESULTS/instructions
rm -rf "$RAW"; mkdir -p "$RAW"

counts=""
for r in "${ROWS[@]}"; do read -r n _ c <<<"$r"; counts+="$n $c / $((c / LOW_DIV)), "; done
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  printf 'host\t%s\n' "$(uname -srm)"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  printf 'valgrind\t%s\n' "$("$VALGRIND" --version)"
  for t in "${TARGETS[@]}"; do printf 'version_%s\t%s\n' "$t" "$("${t}_version")"; done
  printf 'setup\tnginx: master_process off, worker_processes 1; HAProxy: -db, nbthread 1; portcullis: workers 1\n'
  printf 'client\tPython http.client, %s keep-alive HTTP/1.1 connections, one request in flight each, every response checked (200 and exact body)\n' "$CONNECTIONS"
  printf 'counts\t%s\n' "${counts%, }"
  printf 'low_div\t%s\n' "$LOW_DIV"
} >"$RAW/meta.tsv"
printf 'row\tpath\ttarget\tkind\trequests\tstatus\tir\n' >"$RAW/runs.tsv"

log "${#ROWS[@]} rows x ${#TARGETS[@]} proxies x 2 callgrind runs ($(grep '^counts' "$RAW/meta.tsv" | cut -f2))"
start_upstream ""   # not pinned: nothing here is timed
cp "$WORK/upstream-nginx.conf" "$RAW/"

# ---------------------------------------------------------------- measure
FAILED=0
for r in "${ROWS[@]}"; do
  read -r name path n <<<"$r"
  for t in "${TARGETS[@]}"; do
    measure "$t" "$name" "$path" "$((n / LOW_DIV))" low
    measure "$t" "$name" "$path" "$n" high
  done
done

# ---------------------------------------------------------------- report
"$PY" "$BENCH_DIR/instructions.py" report "$RAW/runs.tsv" "$RESULTS" || FAILED=1
log "wrote $RESULTS/instructions.md and instructions.csv (callgrind files in $RAW)"
cat "$RESULTS/instructions.md"
if ((FAILED)); then
  die "some runs FAILED (see the table and the logs in $RAW)"
fi
