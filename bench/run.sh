#!/usr/bin/env bash
# bench/run.sh — portcullis against nginx and HAProxy, on this machine, in one run.
#
# Method
#   * One upstream for everybody: Debian nginx, 1 worker, sendfile on,
#     keepalive_requests 1000000, access_log off, serving a temp docroot:
#     /small (13 bytes "hello world!\n"), /64k.bin (65536 B), /1m.bin (1048576 B).
#   * Targets (each a set of shell functions, see "Targets" below):
#       direct      wrk -> upstream, no proxy: the ceiling of the load side
#       nginx       Debian nginx, 1 worker, upstream keepalive 32, proxy_buffering on
#       haproxy     Debian HAProxy, nbthread 1, http-reuse always
#       portcullis  build/bin/portcullis, workers 1, upstream keepalive 32
#     Every proxy runs with ONE worker process/thread. The three proxies also
#     allow 1000000 requests per client connection, so that no target
#     reconnects in the middle of a run (nginx's default is 1000).
#   * Pinning (the machine has 2 cores): the proxy under test runs on CPU 0
#     (BENCH_PROXY_CPU); the upstream nginx AND wrk share CPU 1
#     (BENCH_LOAD_CPU). The proxy has a core to itself and the load side is
#     identical for every target. Consequence: "direct" has wrk and the
#     upstream on one core, so it is the limit of the load side, not of the
#     machine. It is a reference, not a strict ceiling: for tiny bodies a
#     proxy on the other core batches requests to the upstream and can come
#     out slightly ahead of it.
#   * Load: wrk on 127.0.0.1 with keep-alive, -t1 -c32 (BENCH_THREADS,
#     BENCH_CONNECTIONS), BENCH_DURATION seconds (default 8) after a 1 s
#     warm-up (BENCH_WARMUP) before every measurement. BENCH_RUNS runs per
#     cell (default 3). All targets of a config profile run at the same time
#     (idle ones cost nothing) and the runs are interleaved round-robin
#     (run 1 of every cell, then run 2, ...) so that a noisy neighbour hurts
#     all targets alike rather than one of them.
#   * Reported per cell: the median requests/s, and p50/p99 latency of that
#     median run (median_low: always a real run). Peak RSS is VmHWM of the
#     serving process (nginx worker, haproxy, portcullis) read from
#     /proc/PID/status after all runs of that target.
#   * Proxy CPU (load-independent efficiency). For small bodies the load side
#     (wrk + upstream on CPU 1) saturates before the proxy does, so requests/s
#     ends up the same for every proxy and says little about them. So
#     immediately before and after every measured run (not the warm-up) of a
#     proxy target the script reads utime+stime (fields 14+15 of
#     /proc/PID/stat, in clock ticks, CLK_TCK from `getconf CLK_TCK`, kept in
#     meta.tsv) of that same serving process (for portcullis this counts all
#     of its threads; nginx's master is idle and not counted) and the wall
#     time between the two readings, and records in runs.tsv: serving_pid,
#     cpu_ticks (the difference), wall_s, and requests (wrk's "N requests
#     in"). The report derives per run
#       CPU us/req = (cpu_ticks / CLK_TCK) / requests * 1e6   (lower = cheaper)
#       CPU util   = (cpu_ticks / CLK_TCK) / wall_s           (as %)
#     and shows the median over the runs, plus "CPU/req vs nginx" (target /
#     nginx, lower is better). CPU util tells whether the proxy was the
#     bottleneck (near 100 %) or was waiting for the load side (well below).
#     Ticks are 10 ms at CLK_TCK=100 and utime and stime are truncated
#     separately, so a difference is off by up to ~2 ticks (20 ms): with runs
#     of >= 4 s (hundreds of ticks) and thousands of requests that is ~1 % or
#     less; with shorter runs or a nearly idle proxy it grows. No value is
#     recorded for "direct" (no proxy), or if the serving PID changed.
#   * Outputs in bench/results/ (BENCH_RESULTS): bench.md, bench.csv,
#     bench.png (gnuplot), and raw/ with every wrk output, the configs and
#     the tables (meta.tsv, runs.tsv incl. the CPU ticks, rss.tsv).
#
#   * TLS rows (profiles tls_ecdsa, tls_rsa, tlsnew_ecdsa, tlsnew_rsa): the
#     three proxies terminate TLS towards wrk (https URL) and talk plain HTTP
#     to the same upstream ("direct" is n/a). Certificates are made at run
#     time in the temp dir with the openssl CLI: ECDSA P-256 and RSA 2048,
#     self-signed, CN=bench.test, SAN DNS:bench.test + IP:127.0.0.1. Same
#     settings everywhere: TLS 1.2 + 1.3, TLS 1.2 ciphers TLS_CIPHERS below
#     (portcullis's default list, given explicitly to all three), key
#     exchange groups X25519:P-256:P-384 (portcullis's), TLS 1.3 suites
#     OpenSSL's default, session cache + tickets on.
#       tls_*      keep-alive, as the plain rows (32 connections, each one
#                  handshake at the start of a wrk run);
#       tlsnew_*   one request per connection: wrk sends "Connection: close",
#                  the proxy closes after the response and wrk reconnects, so
#                  requests/s = new TLS connections/s. wrk would resume the
#                  previous session on each reconnect (SSL_clear keeps it), so
#                  every https wrk run is LD_PRELOADed with wrk_tls_shim.c
#                  (compiled at run time), which drops the session before the
#                  next connect: every connection is a FULL handshake. The shim
#                  also counts the handshakes (full / resumed) and notes the
#                  protocol, cipher, group and server key; the proxies'
#                  accepted-connection counters (portcullis /metrics, nginx
#                  stub_status, HAProxy "show info") are read around every
#                  run. A tlsnew run is marked FAIL unless resumed == 0,
#                  requests <= full handshakes and requests <= accepted
#                  connections, both at most requests + connections + socket
#                  errors + 4 (see newconn_check).
#
# Rows are (name, URL path, config profile); a profile is the per-target
# config tweak (plain, metrics_off, tls_*, tlsnew_*; tls_auth later). Each
# target's start function receives the profile and builds its config for it,
# or returns 2 for "not applicable" (cell shown as n/a).
#
# Environment: BENCH_DURATION BENCH_RUNS BENCH_WARMUP BENCH_CONNECTIONS
#   BENCH_THREADS BENCH_TARGETS ("direct nginx haproxy portcullis")
#   BENCH_ROWS (row names, default all) BENCH_PROXY_CPU BENCH_LOAD_CPU
#   BENCH_RESULTS PORTCULLIS (binary path)
# Default duration: 28 measured cells (plain 3 rows x 4 targets,
# small-nometrics 1, five TLS rows x 3 proxies) x 3 runs x (8+1 s) ~ 13 min.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
PY=/usr/bin/python3
NGINX=/usr/sbin/nginx
HAPROXY=/usr/sbin/haproxy
WRK=/usr/bin/wrk
PORTCULLIS=${PORTCULLIS:-$REPO_DIR/build/bin/portcullis}

DURATION=${BENCH_DURATION:-8}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
read -r -a TARGETS <<<"${BENCH_TARGETS:-direct nginx haproxy portcullis}"
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}

# ---------------------------------------------------------------- rows
# name      URL path    profile (per-target config tweak)
ALL_ROWS=(
  "small    /small      plain"
  "64k      /64k.bin    plain"
  "1m       /1m.bin     plain"
  # portcullis alone, request metrics off: compare with its "small" row to
  # see what recording the SLI metrics costs
  "small-nometrics /small metrics_off"
  # TLS termination (ECDSA P-256 / RSA 2048 certificate), keep-alive
  "tls-small       /small     tls_ecdsa"
  "tls-64k         /64k.bin   tls_ecdsa"
  "tls-small-rsa   /small     tls_rsa"
  # new TLS connections: one request per connection, full handshake each
  # (requests/s = connections/s)
  "tlsnew-ecdsa    /small     tlsnew_ecdsa"
  "tlsnew-rsa      /small     tlsnew_rsa"
  # Later, for example:
  # "tls-auth      /small  tls_auth"     (TLS + basic auth, bcrypt cost 10)
)

# Request headers per profile, one "Name: value" per line (e.g. for tls_auth:
# "Authorization: Basic ..."). Sent by wrk and by the body check alike.
profile_headers() {
  case $1 in
    tlsnew_*) echo "Connection: close" ;;  # the proxy closes, wrk reconnects
    *) ;;
  esac
}

# profile_tls PROFILE: the certificate key type ("ecdsa" or "rsa") of a TLS
# profile; fails for a plain-HTTP profile.
profile_tls() {
  case $1 in
    tls_ecdsa|tlsnew_ecdsa) echo ecdsa ;;
    tls_rsa|tlsnew_rsa) echo rsa ;;
    *) return 1 ;;
  esac
}
# profile_newconn PROFILE: true when every request is on a new connection.
profile_newconn() { [[ $1 == tlsnew_* ]]; }

# TLS settings shared by the three proxies. TLS_CIPHERS (TLS 1.2) is the list
# portcullis uses by default (gateway/src/tls.c TLS_CIPHERS_DEFAULT), passed
# explicitly to all three; TLS_GROUPS is portcullis's fixed group list. TLS 1.3
# suites stay at OpenSSL's default in all three.
TLS_CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
TLS_GROUPS="X25519:P-256:P-384"
# header_args PROFILE: sets HDR_ARGS to (-H "Name: value" ...)
header_args() {
  local h; HDR_ARGS=()
  while IFS= read -r h; do [[ -n $h ]] && HDR_ARGS+=(-H "$h"); done < <(profile_headers "$1")
}

# ---------------------------------------------------------------- helpers
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PIDS=()   # every process we started, stopped by PID on exit
WORK=""
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn CPU LOGFILE CMD... : start CMD pinned to CPU in the background;
# sets SPAWNED to its PID (taskset execs, so it is the command's own PID).
spawn() {
  local cpu=$1 logfile=$2; shift 2
  taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
  SPAWNED=$!
  PIDS+=("$SPAWNED")
}

stop_pid() {
  local pid=$1 p keep=()
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# alloc_port VAR: a free port on 127.0.0.1, never one handed out before in this run.
USED_PORTS=()
alloc_port() {
  local p
  while :; do
    p=$("$PY" "$BENCH_DIR/tools.py" free-port)
    [[ " ${USED_PORTS[*]} " == *" $p "* ]] || break
  done
  USED_PORTS+=("$p")
  printf -v "$1" '%s' "$p"
}

# wait_ready URL FILE LOG PID: the target answers FILE's exact bytes at URL.
wait_ready() {
  local url=$1 file=$2 logfile=$3 pid=$4
  if ! "$PY" "$BENCH_DIR/tools.py" check --wait 10 --pid "$pid" "${HDR_ARGS[@]}" "$url" "$file"; then
    log "log of the process ($logfile):"; tail -n 20 "$logfile" >&2 || true
    return 1
  fi
}

# nginx as root would switch workers to "nobody", which cannot read our temp dir.
nginx_user_line() { if [[ $EUID -eq 0 ]]; then echo "user $(id -un) $(id -gn);"; fi; }

nginx_common() { # NAME: main-context lines shared by both nginx instances
  local name=$1
  cat <<EOF
$(nginx_user_line)
worker_processes 1;
daemon off;
master_process on;
pid $WORK/$name.pid;
error_log $WORK/$name.error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_temp_paths() { # NAME
  local d=$WORK/$1-temp t; mkdir -p "$d"
  for t in client_body proxy fastcgi uwsgi scgi; do echo "    ${t}_temp_path $d/$t;"; done
}

# ---------------------------------------------------------------- TLS
# make_certs: self-signed ECDSA P-256 and RSA 2048 certificates for bench.test
# in $WORK/certs (never in the repo): TYPE.crt, TYPE.key, and TYPE.pem (cert +
# key in one file, as HAProxy wants it).
make_certs() {
  local d=$WORK/certs type newkey
  mkdir -p "$d"
  for type in ecdsa rsa; do
    newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    [[ $type == rsa ]] && newkey=(-newkey rsa:2048)
    openssl req -x509 "${newkey[@]}" -nodes -days 30 -subj "/CN=bench.test" \
      -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
      -keyout "$d/$type.key" -out "$d/$type.crt" >"$d/$type.openssl.log" 2>&1 \
      || { cat "$d/$type.openssl.log" >&2; die "openssl could not make the $type certificate"; }
    cat "$d/$type.crt" "$d/$type.key" >"$d/$type.pem"
  done
  chmod 644 "$d"/*   # readable by nginx workers if they run as another user
}
cert_file() { echo "$WORK/certs/$1.crt"; }  # TYPE
key_file() { echo "$WORK/certs/$1.key"; }
pem_file() { echo "$WORK/certs/$1.pem"; }

# build_shim: compile wrk_tls_shim.c (see there) into $WORK; sets SHIM.
build_shim() {
  SHIM=$WORK/wrk_tls_shim.so
  gcc -O2 -shared -fPIC -o "$SHIM" "$BENCH_DIR/wrk_tls_shim.c" -ldl -lssl -lcrypto \
    >"$WORK/shim.log" 2>&1 \
    || { cat "$WORK/shim.log" >&2; die "could not build bench/wrk_tls_shim.c (needs gcc and libssl-dev)"; }
}

# ---------------------------------------------------------------- upstream
start_upstream() {
  DOCROOT=$WORK/docroot; mkdir -p "$DOCROOT"
  printf 'hello world!\n' >"$DOCROOT/small"
  head -c 65536 /dev/urandom >"$DOCROOT/64k.bin"
  head -c 1048576 /dev/urandom >"$DOCROOT/1m.bin"
  alloc_port UP_PORT
  local conf=$WORK/upstream-nginx.conf
  { nginx_common upstream; cat <<EOF
http {
$(nginx_temp_paths upstream)
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$UP_PORT;
        root $DOCROOT;
        location / { }
    }
}
EOF
  } >"$conf"
  spawn "$LOAD_CPU" "$WORK/upstream.log" "$NGINX" -p "$WORK/" -e "$WORK/upstream.error.log" -c "$conf"
  UP_PID=$SPAWNED
  wait_ready "http://127.0.0.1:$UP_PORT/small" "$DOCROOT/small" "$WORK/upstream.error.log" "$UP_PID" \
    || die "upstream nginx did not start"
  log "upstream nginx pid $UP_PID on 127.0.0.1:$UP_PORT (CPU $LOAD_CPU)"
}

# ---------------------------------------------------------------- targets
# A target NAME provides:
#   NAME_version          one line for the header
#   NAME_start PROFILE    start it (pinned to PROXY_CPU) for that profile and set
#                         T_URL (scheme://host:port), T_PID (process to stop),
#                         T_LOG, T_SERVING (fn printing the PID whose VmHWM counts,
#                         or "" for none), T_COUNTERS (arguments of
#                         "tools.py counters", which prints the proxy's accepted
#                         connections and TLS handshakes so far, or "" for
#                         none); return 2 if PROFILE does not apply.
# Stopping is generic (stop_pid T_PID).

# target_applies TARGET PROFILE: TARGET has a config for PROFILE (else n/a).
target_applies() {
  case $1:$2 in
    direct:plain) ;;                                  # the upstream speaks plain HTTP only
    nginx:plain | haproxy:plain | portcullis:plain) ;;
    portcullis:metrics_off) ;;                        # a portcullis-only switch
    nginx:tls_* | haproxy:tls_* | portcullis:tls_*) ;;
    nginx:tlsnew_* | haproxy:tlsnew_* | portcullis:tlsnew_*) ;;
    *) return 1 ;;
  esac
}

direct_version() { echo "upstream nginx, no proxy"; }
direct_start() {
  target_applies direct "$1" || return 2
  T_URL="http://127.0.0.1:$UP_PORT"; T_PID=""; T_LOG=$WORK/upstream.error.log
  T_SERVING=""; T_COUNTERS=""
}

nginx_version() { "$NGINX" -v 2>&1 | sed 's/^nginx version: //'; }
nginx_start() {
  local profile=$1 port status conf tls="" listen scheme=http
  target_applies nginx "$profile" || return 2
  tls=$(profile_tls "$profile") || tls=""
  alloc_port port; alloc_port status; conf=$WORK/nginx-$profile.conf
  listen="listen 127.0.0.1:$port;"
  if [[ -n $tls ]]; then
    scheme=https
    listen="listen 127.0.0.1:$port ssl;
        ssl_certificate $(cert_file "$tls");
        ssl_certificate_key $(key_file "$tls");
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $TLS_CIPHERS;
        ssl_ecdh_curve $TLS_GROUPS;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;"
  fi
  { nginx_common "proxy-$profile"; cat <<EOF
http {
$(nginx_temp_paths "proxy-$profile")
    access_log off;
    keepalive_requests 1000000;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        $listen
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {   # connection counters for the harness (idle during a run)
        listen 127.0.0.1:$status;
        location = /status { stub_status; }
    }
}
EOF
  } >"$conf"
  T_LOG=$WORK/proxy-$profile.error.log
  spawn "$PROXY_CPU" "$WORK/nginx-$profile.out" "$NGINX" -p "$WORK/" -e "$T_LOG" -c "$conf"
  T_PID=$SPAWNED; T_URL="$scheme://127.0.0.1:$port"
  T_SERVING="nginx_worker_pid $T_PID"
  T_COUNTERS="nginx http://127.0.0.1:$status/status"
}
nginx_worker_pid() { pgrep -P "$1" | head -n 1; }  # children of the master, by PID

haproxy_version() { "$HAPROXY" -v | head -n 1 | sed 's/ - https.*//'; }
haproxy_start() {
  local profile=$1 port conf tls="" bind global_tls="" scheme=http sock
  target_applies haproxy "$profile" || return 2
  tls=$(profile_tls "$profile") || tls=""
  alloc_port port; conf=$WORK/haproxy-$profile.cfg; sock=$WORK/haproxy-$profile.sock
  bind="bind 127.0.0.1:$port"
  if [[ -n $tls ]]; then
    scheme=https
    bind="bind 127.0.0.1:$port ssl crt $(pem_file "$tls")"
    # session cache (tune.ssl.cachesize, 20000 by default) and tickets: on
    global_tls="    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphers $TLS_CIPHERS
    ssl-default-bind-curves $TLS_GROUPS"
  fi
  cat >"$conf" <<EOF
global
    nbthread 1
    maxconn 4096
    stats socket $sock mode 600
$global_tls
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    $bind
    default_backend be
backend be
    server up 127.0.0.1:$UP_PORT
EOF
  T_LOG=$WORK/haproxy-$profile.log
  spawn "$PROXY_CPU" "$T_LOG" "$HAPROXY" -db -f "$conf"
  T_PID=$SPAWNED; T_URL="$scheme://127.0.0.1:$port"
  T_SERVING="echo $T_PID"
  T_COUNTERS="haproxy $sock"
}

portcullis_version() { "$PORTCULLIS" --version 2>&1 | head -n 1; }
portcullis_start() {
  local profile=$1 port admin conf metrics=true tls="" tls_block="" listener_tls=false scheme=http
  target_applies portcullis "$profile" || return 2
  [[ $profile == metrics_off ]] && metrics=false  # what recording the SLI metrics costs
  tls=$(profile_tls "$profile") || tls=""
  alloc_port port; alloc_port admin; conf=$WORK/portcullis-$profile.json
  if [[ -n $tls ]]; then
    scheme=https; listener_tls=true
    # ciphers: the same list as its default, explicit as in the other two
    tls_block="\"tls\": {\"certificates\": [{\"cert\": \"$(cert_file "$tls")\", \"key\": \"$(key_file "$tls")\"}],
          \"ciphers\": \"$TLS_CIPHERS\"},"
  fi
  cat >"$conf" <<EOF
{
  "workers": 1,
  "access_log": false,
  "metrics": $metrics,
  "admin": {"listen": "127.0.0.1:$admin"},
  $tls_block
  "upstreams": {"up": {"servers": ["127.0.0.1:$UP_PORT"], "keepalive": 32}},
  "listeners": [
    {"listen": "127.0.0.1:$port", "tls": $listener_tls,
     "routes": [{"name": "bench", "path": "/", "upstream": "up"}]}
  ]
}
EOF
  T_LOG=$WORK/portcullis-$profile.log
  spawn "$PROXY_CPU" "$T_LOG" "$PORTCULLIS" -c "$conf"
  T_PID=$SPAWNED; T_URL="$scheme://127.0.0.1:$port"
  T_SERVING="echo $T_PID"
  T_COUNTERS="portcullis http://127.0.0.1:$admin/metrics 127.0.0.1:$port"
}

# ---------------------------------------------------------------- preflight
for tool in "$NGINX" "$HAPROXY" "$WRK" "$PY" /usr/bin/gnuplot taskset pgrep getconf; do
  command -v "$tool" >/dev/null || die "missing $tool"
done
CLK_TCK=$(getconf CLK_TCK)   # units of utime/stime in /proc/PID/stat
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"
for t in "${TARGETS[@]}"; do
  declare -F "${t}_start" >/dev/null || die "unknown target '$t'"
done
if [[ " ${TARGETS[*]} " == *" portcullis "* ]]; then
  [[ -x $PORTCULLIS ]] || die "portcullis binary not found at $PORTCULLIS — build it first
  (cmake -S . -B build && cmake --build build), or run the other targets only with
  BENCH_TARGETS=\"direct nginx haproxy\" (portcullis is never skipped silently)."
fi
{ taskset -c "$PROXY_CPU" true && taskset -c "$LOAD_CPU" true; } 2>/dev/null \
  || die "cannot pin to CPUs $PROXY_CPU and $LOAD_CPU (see BENCH_PROXY_CPU/BENCH_LOAD_CPU)"
[[ $DURATION =~ ^[0-9]+$ && $RUNS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] \
  || die "BENCH_DURATION, BENCH_RUNS, BENCH_WARMUP must be integers (seconds, count)"

ROWS=()
for r in "${ALL_ROWS[@]}"; do
  read -r name _ _ <<<"$r"
  if [[ -z ${BENCH_ROWS:-} || " $BENCH_ROWS " == *" $name "* ]]; then ROWS+=("$r"); fi
done
((${#ROWS[@]})) || die "no row matches BENCH_ROWS='$BENCH_ROWS'"
WANT_TLS=0
for r in "${ROWS[@]}"; do read -r _ _ p <<<"$r"; profile_tls "$p" >/dev/null && WANT_TLS=1; done
if ((WANT_TLS)); then
  for tool in openssl gcc; do command -v "$tool" >/dev/null || die "missing $tool (TLS rows)"; done
fi

WORK=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
chmod 755 "$WORK"
RAW=$RESULTS/raw
rm -rf "$RAW"; mkdir -p "$RAW"
SHIM=""
if ((WANT_TLS)); then make_certs; build_shim; fi

# ---------------------------------------------------------------- metadata
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  printf 'host\t%s\n' "$(uname -srm)"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'runs\t%s\n' "$RUNS"
  printf 'duration\t%s\n' "$DURATION"
  printf 'warmup\t%s\n' "$WARMUP"
  printf 'clk_tck\t%s\n' "$CLK_TCK"
  newconn_note=""
  for r in "${ROWS[@]}"; do
    read -r _ _ p <<<"$r"; profile_newconn "$p" && newconn_note="; tlsnew rows: Connection: close, one request per connection"
  done
  printf 'wrk_args\t-t%s -c%s -d%ss --latency (keep-alive, 127.0.0.1%s)\n' "$THREADS" "$CONNECTIONS" "$DURATION" "$newconn_note"
  printf 'pinning\tproxy under test on CPU %s; upstream nginx and wrk on CPU %s\n' "$PROXY_CPU" "$LOAD_CPU"
  printf 'wrk\t%s\n' "$("$WRK" -v 2>&1 | head -n 1 | sed 's/ Copyright.*//')"
  printf 'targets\t%s\n' "${TARGETS[*]}"
  for t in "${TARGETS[@]}"; do printf 'version_%s\t%s\n' "$t" "$("${t}_version")"; done
  printf 'rows\t'; for r in "${ROWS[@]}"; do read -r n _ _ <<<"$r"; printf '%s ' "$n"; done; echo
  printf 'connections\t%s\n' "$CONNECTIONS"
  if ((WANT_TLS)); then
    printf 'openssl\t%s\n' "$(openssl version)"
    printf 'tls_settings\tcertificates self-signed CN=bench.test (ECDSA P-256 / RSA 2048), made at run time; TLS 1.2+1.3; TLS 1.2 ciphers %s; groups %s; TLS 1.3 suites OpenSSL default; session cache and tickets on\n' "$TLS_CIPHERS" "$TLS_GROUPS"
    printf 'newconn_profiles\t'
    for r in "${ROWS[@]}"; do read -r _ _ p <<<"$r"; if profile_newconn "$p"; then echo "$p"; fi; done \
      | awk '!seen[$0]++' | tr '\n' ' '; echo
  fi
} >"$RAW/meta.tsv"
printf 'profile\trow\tpath\ttarget\trun\tstatus\tfile\tserving_pid\tcpu_ticks\twall_s\trequests\ths_full\ths_resumed\ths_other_cipher\ttls\tsrv_conns\tsrv_tls\tnote\n' >"$RAW/runs.tsv"
printf 'profile\ttarget\tvmhwm_kb\n' >"$RAW/rss.tsv"

ncells=0
for r in "${ROWS[@]}"; do
  read -r _ _ p <<<"$r"
  for t in "${TARGETS[@]}"; do target_applies "$t" "$p" && ncells=$((ncells + 1)); done
done
log "$ncells measured cells x $RUNS runs x (${WARMUP}s warm-up + ${DURATION}s) ~ $(( ncells * RUNS * (DURATION + WARMUP + 1) / 60 + 1 )) min"

HDR_ARGS=()
start_upstream
cp "$WORK/upstream-nginx.conf" "$RAW/"

# ---------------------------------------------------------------- measure
# newconn_check WRK_OUT FULL RESUMED ACCEPTED: prints why a one-request-per-
# connection run does not measure what it should (nothing if it does). Every
# completed request needs its own connection and handshake, so
# REQUESTS <= FULL and REQUESTS <= ACCEPTED. The excess is bounded: at most
# CONNECTIONS connections are still without a response when wrk stops, plus
# one per wrk socket error, plus wrk's own probe connection and the counter
# reads (nginx's stub_status request, HAProxy's CLI connection): slack 4.
# No handshake may be a resumption.
newconn_check() {
  local out=$1 full=$2 resumed=$3 acc=$4 reqs errs max why=()
  reqs=$(awk '/ requests in / {print $1; exit}' "$out"); reqs=${reqs:-0}
  errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10; exit}' "$out")
  max=$(( reqs + CONNECTIONS + ${errs:-0} + 4 ))
  if [[ ! $full =~ ^[0-9]+$ ]]; then
    why+=("no handshake counts from the wrk shim")
  else
    ((resumed == 0)) || why+=("$resumed resumed handshakes")
    ((full >= reqs && full <= max)) || why+=("$full full handshakes for $reqs requests")
  fi
  if [[ -n $acc ]]; then
    ((acc >= reqs && acc <= max)) || why+=("$acc connections accepted by the proxy for $reqs requests")
  fi
  ((reqs > 0)) || why+=("no requests")
  local IFS=';'; echo "${why[*]}"
}

# cpu_ticks PID VAR: set VAR to utime+stime (fields 14+15 of /proc/PID/stat)
# in clock ticks, or to "" if the process is gone. Bash builtins only, so the
# reading itself is quick. Fields are counted after the ")" that closes the
# command name (field 2), which may itself contain spaces.
cpu_ticks() {
  local st f
  printf -v "$2" '%s' ""
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 0
  read -r -a f <<<"${st##*) }"   # f[0] is field 3 (state): utime = f[11], stime = f[12]
  printf -v "$2" '%s' "$(( f[11] + f[12] ))"
}

# run_wrk URL OUTFILE SECONDS EXTRA...: https runs get the TLS shim (a full
# handshake on every connection; with BENCH_TLS_STATS set, it writes its
# handshake counts there at exit).
run_wrk() {
  local url=$1 out=$2 secs=$3 pre=(); shift 3
  [[ $url == https://* ]] && pre=(env "LD_PRELOAD=$SHIM")
  taskset -c "$LOAD_CPU" "${pre[@]}" "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency "$@" "$url" >"$out" 2>&1
}

# counters TARGET VAR: "accepted_connections tls_handshakes" of the proxy so
# far ("- -" where unknown), from tools.py counters.
counters() {
  local c=${COUNTERS[$1]} v="- -"
  [[ -n $c ]] && v=$("$PY" "$BENCH_DIR/tools.py" counters $c 2>/dev/null || echo "- -")
  printf -v "$2" '%s' "$v"
}
# delta A B: B - A, or "" if either is unknown.
delta() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && echo $(($2 - $1)) || echo ""; }

FAILED=0
profiles=$(for r in "${ROWS[@]}"; do read -r _ _ p <<<"$r"; echo "$p"; done | awk '!seen[$0]++')
for profile in $profiles; do
  header_args "$profile"
  declare -A URL=() PID=() LOGF=() SERVING=() COUNTERS=() STATE=()
  for t in "${TARGETS[@]}"; do
    T_URL=""; T_PID=""; T_LOG=""; T_SERVING=""; T_COUNTERS=""
    rc=0; "${t}_start" "$profile" || rc=$?
    if ((rc == 2)); then STATE[$t]=na; continue; fi
    ((rc == 0)) || die "could not start $t for profile $profile"
    URL[$t]=$T_URL; PID[$t]=$T_PID; LOGF[$t]=$T_LOG; SERVING[$t]=$T_SERVING; COUNTERS[$t]=$T_COUNTERS
    read -r _ first_path _ < <(for r in "${ROWS[@]}"; do echo "$r"; done | awk -v p="$profile" '$3==p' | head -n 1)
    if wait_ready "$T_URL$first_path" "$DOCROOT${first_path}" "$T_LOG" "${T_PID:-$UP_PID}"; then
      STATE[$t]=up
      log "$t ($profile) ready at $T_URL${T_PID:+ pid $T_PID}"
    else
      STATE[$t]=fail; FAILED=1
      log "$t ($profile) FAILED to start or to answer correctly; its cells are marked FAIL"
    fi
    for f in "$WORK/$t-$profile".{conf,cfg,json}; do [[ -f $f ]] && cp "$f" "$RAW/"; done
  done

  # Check every row's body through every target once, before measuring.
  for r in "${ROWS[@]}"; do
    read -r name path p <<<"$r"; [[ $p == "$profile" ]] || continue
    for t in "${TARGETS[@]}"; do
      [[ ${STATE[$t]} == up ]] || continue
      if ! "$PY" "$BENCH_DIR/tools.py" check "${HDR_ARGS[@]}" "${URL[$t]}$path" "$DOCROOT$path"; then
        log "$t returned a wrong body for $path; its cells in profile $profile are marked FAIL"
        STATE[$t]=fail; FAILED=1
      fi
    done
  done

  for run in $(seq "$RUNS"); do
    # rotate the target order each run so nobody is always first after a pause
    n=${#TARGETS[@]}; order=()
    for i in $(seq 0 $((n - 1))); do order+=("${TARGETS[$(( (i + run - 1) % n ))]}"); done
    for r in "${ROWS[@]}"; do
      read -r name path p <<<"$r"; [[ $p == "$profile" ]] || continue
      for t in "${order[@]}"; do
        out="$RAW/$name.$t.run$run.txt"; status=ok; spid=""; cpu=""; wall=""; reqs=""
        hs=("" "" "" ""); sconns=""; stls=""; note=""
        case ${STATE[$t]} in
          na) status=na; out="" ;;
          fail) status=fail; out="" ;;
          up)
            if [[ -n ${PID[$t]} ]] && ! kill -0 "${PID[$t]}" 2>/dev/null; then
              log "$t died (see ${LOGF[$t]}):"; tail -n 20 "${LOGF[$t]}" >&2 || true
              cp "${LOGF[$t]}" "$RAW/" 2>/dev/null || true
              STATE[$t]=fail; FAILED=1; status=fail; out=""
            else
              if ((WARMUP > 0)); then
                run_wrk "${URL[$t]}$path" /dev/null "$WARMUP" "${HDR_ARGS[@]}" || true
              fi
              # The proxy's connection counters, outside the CPU window below.
              counters "$t" c0
              # CPU time of the serving process right around the measured run.
              spid=""; t0=""; t1=""; w0=""; w1=""
              [[ -n ${SERVING[$t]} ]] && spid=$(${SERVING[$t]} || true)
              if [[ -n $spid ]]; then cpu_ticks "$spid" t0; w0=$EPOCHREALTIME; fi
              stats="$RAW/$name.$t.run$run.tls"; rm -f "$stats"
              BENCH_TLS_STATS=$stats run_wrk "${URL[$t]}$path" "$out" "$DURATION" "${HDR_ARGS[@]}" || status=fail
              if [[ -n $spid ]]; then
                cpu_ticks "$spid" t1; w1=$EPOCHREALTIME
                # a different (respawned) serving process makes the difference meaningless
                [[ $(${SERVING[$t]} || true) == "$spid" ]] || t1=""
              fi
              counters "$t" c1
              if [[ -n $t0 && -n $t1 ]]; then
                cpu=$((t1 - t0))
                wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
              fi
              reqs=$(awk '/ requests in / {print $1; exit}' "$out")
              rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
              read -r a0 h0 <<<"$c0"; read -r a1 h1 <<<"$c1"
              sconns=$(delta "$a0" "$a1"); stls=$(delta "$h0" "$h1")
              [[ -f $stats ]] && IFS=$'\t' read -r -a hs <"$stats"
              # tlsnew: every request on its own connection, a full handshake each
              if [[ $status == ok ]] && profile_newconn "$profile"; then
                note=$(newconn_check "$out" "${hs[0]}" "${hs[1]}" "$sconns")
                if [[ -n $note ]]; then
                  status=fail; FAILED=1
                  log "$name $t run $run: new-connection check failed: $note"
                fi
              fi
              log "run $run/$RUNS  $name  $t  ${rps:-?} req/s${cpu:+  proxy CPU ${cpu} ticks in ${wall} s}${hs[0]:+  handshakes ${hs[0]} full / ${hs[1]} resumed}${sconns:+  accepted $sconns}"
            fi ;;
        esac
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$name" "$path" "$t" "$run" \
          "$status" "${out##*/}" "$spid" "$cpu" "$wall" "$reqs" "${hs[0]}" "${hs[1]}" "${hs[2]}" "${hs[3]}" \
          "$sconns" "$stls" "$note" >>"$RAW/runs.tsv"
      done
    done
  done

  # Peak RSS of the serving process, after all runs of this profile.
  for t in "${TARGETS[@]}"; do
    [[ ${STATE[$t]} == na ]] && continue
    kb=""
    if [[ -n ${SERVING[$t]} ]]; then
      spid=$(${SERVING[$t]} || true)
      [[ -n $spid ]] && kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$spid/status" 2>/dev/null || true)
    fi
    printf '%s\t%s\t%s\n' "$profile" "$t" "$kb" >>"$RAW/rss.tsv"
    if [[ -n ${PID[$t]} ]]; then
      cp "${LOGF[$t]}" "$RAW/" 2>/dev/null || true
      stop_pid "${PID[$t]}"
    fi
  done
  unset URL PID LOGF SERVING COUNTERS STATE
done

printf 'loadavg_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.tsv"

# ---------------------------------------------------------------- report
"$PY" "$BENCH_DIR/report.py" "$RAW" "$RESULTS"
gnuplot -e "datadir='$RAW'; outfile='$RESULTS/bench.png'" "$BENCH_DIR/chart.gp" \
  || { log "gnuplot failed"; FAILED=1; }
log "wrote $RESULTS/bench.md, bench.csv, bench.png (raw wrk output in $RAW)"
cat "$RESULTS/bench.md"
if ((FAILED)); then
  die "some cells FAILED (see the table and the logs in $RAW)"
fi
