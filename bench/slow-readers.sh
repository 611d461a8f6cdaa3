#!/usr/bin/env bash
# bench/slow-readers.sh — the memory slow readers cost: nginx, HAProxy and
# portcullis, each as one worker in front of the same upstream nginx.
#
# Method
#   * Upstream: Debian nginx serving /1m.bin (1 MiB) as in run.sh.
#   * For each target and run: start the proxy (one worker, pinned to
#     BENCH_PROXY_CPU), then bench/slow_readers.py opens SLOW_CLIENTS
#     (default 2000) connections, each sending GET /1m.bin and reading
#     nothing with a 4 KiB receive buffer. It records the VmRSS of the
#     serving process (nginx's worker, HAProxy, portcullis) before, once
#     every connection is open and the RSS has settled, and after they all
#     closed; then the proxy is stopped by PID.
#   * per-client KiB = (RSS held − RSS before) / clients: what one stalled
#     download costs the proxy's memory (its buffers, not the kernel's
#     socket buffers). RSS after: what it keeps once they are gone.
#   * Medians over SLOW_RUNS runs (default 3). Memory does not depend on
#     the machine's load the way throughput does, but glibc's arenas and
#     the kernel's socket auto-tuning add some noise.
#
# Environment: SLOW_CLIENTS (2000) SLOW_RUNS (3) SLOW_TARGETS ("nginx haproxy
#   portcullis") BENCH_PROXY_CPU (0) BENCH_RESULTS (bench/results)
#   PORTCULLIS (binary path)
# Output: BENCH_RESULTS/slow-readers.md, and the raw JSON lines beside it.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
PY=/usr/bin/python3
NGINX=/usr/sbin/nginx
HAPROXY=/usr/sbin/haproxy
PORTCULLIS=${PORTCULLIS:-$REPO_DIR/build/bin/portcullis}
CLIENTS=${SLOW_CLIENTS:-2000}
RUNS=${SLOW_RUNS:-3}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
read -r -a TARGETS <<<"${SLOW_TARGETS:-nginx haproxy portcullis}"
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}

LOG_TAG=slow DIE_WORD=error
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

# Every connection needs a descriptor here and two in the proxy.
ulimit -n 20000 2>/dev/null || die "cannot raise the descriptor limit to 20000"
[[ -x $PORTCULLIS ]] || die "portcullis binary not found at $PORTCULLIS"

# TARGET_start: sets T_PID (to stop) and T_SERVING (whose RSS counts).
nginx_start() {
  local port=$1 conf=$WORK/nginx-slow.conf
  nginx_proxy_conf nginx-slow on "listen 127.0.0.1:$port;" >"$conf"
  spawn "$PROXY_CPU" "$WORK/nginx.out" "$NGINX" -p "$WORK/" -e "$WORK/nginx.err" -c "$conf"
  T_PID=$SPAWNED
  wait_ready 10 "http://127.0.0.1:$port/small" "$DOCROOT/small" "$WORK/nginx.err" "$T_PID"
  T_SERVING=$(pgrep -P "$T_PID" | head -n 1)
}
haproxy_start() {
  local port=$1 conf=$WORK/haproxy-slow.cfg
  haproxy_conf 120s "bind 127.0.0.1:$port" >"$conf"
  spawn "$PROXY_CPU" "$WORK/haproxy.out" "$HAPROXY" -db -f "$conf"
  T_PID=$SPAWNED
  wait_ready 10 "http://127.0.0.1:$port/small" "$DOCROOT/small" "$WORK/haproxy.out" "$T_PID"
  T_SERVING=$T_PID
}
portcullis_start() {
  local port=$1 admin conf=$WORK/portcullis-slow.json
  alloc_port admin
  portcullis_conf "$port" "$admin" >"$conf"
  spawn "$PROXY_CPU" "$WORK/portcullis.out" "$PORTCULLIS" -c "$conf"
  T_PID=$SPAWNED
  wait_ready 10 "http://127.0.0.1:$port/small" "$DOCROOT/small" "$WORK/portcullis.out" "$T_PID"
  T_SERVING=$T_PID
}

make_work slow-readers
mkdir -p "$RESULTS"
RAW=$RESULTS/slow-readers.jsonl
: >"$RAW"
start_upstream ""
for run in $(seq "$RUNS"); do
  for t in "${TARGETS[@]}"; do
    alloc_port port
    "${t}_start" "$port"
    line=$("$PY" "$BENCH_DIR/slow_readers.py" --url "http://127.0.0.1:$port/1m.bin" \
      --pid "$T_SERVING" --clients "$CLIENTS") || die "$t: not every connection opened: $line"
    log "$t run $run: $line"
    printf '{"target": "%s", "run": %d, "result": %s}\n' "$t" "$run" "$line" >>"$RAW"
    stop_pid "$T_PID" 10 || log "$t had to be killed"
  done
done

"$PY" - "$RAW" "$CLIENTS" "$RUNS" >"$RESULTS/slow-readers.md" <<'EOF'
import json, statistics, sys
raw, clients, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(raw)]
print("## Slow readers: memory of %s stalled 1 MiB downloads (median of %s runs)\n" % (clients, runs))
print("| target | RSS before | RSS held | per client | RSS after they left | vs nginx (per client) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
med = {}
for t in dict.fromkeys(r["target"] for r in rows):
    rs = [r["result"] for r in rows if r["target"] == t]
    med[t] = {k: statistics.median(x[k] for x in rs)
              for k in ("rss_before_kib", "rss_held_kib", "rss_after_kib", "per_client_kib")}
for t, m in med.items():
    ratio = m["per_client_kib"] / med["nginx"]["per_client_kib"] if "nginx" in med and med["nginx"]["per_client_kib"] else float("nan")
    print("| %s | %.1f MiB | %.1f MiB | %.1f KiB | %.1f MiB | %.2f× |" % (
        t, m["rss_before_kib"] / 1024, m["rss_held_kib"] / 1024, m["per_client_kib"],
        m["rss_after_kib"] / 1024, ratio))
EOF
cat "$RESULTS/slow-readers.md"
