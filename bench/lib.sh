# shellcheck shell=bash
# bench/lib.sh — the setup layer shared by bench/run.sh and bench/instructions.sh.
# Sourced, never run. It measures nothing: it starts and stops processes
# (optionally pinned to a CPU), hands out ports, starts the upstream nginx and
# writes the proxies' configs; what to measure and how stays in the scripts.
#
# The sourcing script sets first:
#   BENCH_DIR   the bench/ directory (tools.py lives there)
#   PY NGINX    python3 and nginx binaries
#   LOG_TAG     prefix of log lines ("bench", "instr")
#   DIE_WORD    word before a fatal message ("ERROR", "error")
# and, before starting anything, WORK (its temp dir, see make_work; removed
# on exit). Sourcing installs the EXIT/INT/TERM traps: every process started
# with spawn is stopped by its PID on exit, never by name.
#
# Functions (details above each):
#   log MSG / die MSG                     stderr log line / log and exit 1
#   make_work PREFIX                      WORK = a new 755 temp dir /tmp/PREFIX.XXXXXX
#   spawn CPU LOGFILE CMD...              background CMD (pinned to CPU unless CPU is "")
#   stop_pid PID [SECONDS]                SIGTERM, wait, SIGKILL; 1 if it had to be killed
#   alloc_port VAR                        a free 127.0.0.1 port, never the same twice
#   wait_ready WAIT URL FILE LOG PID [-H "Name: value"]...
#                                         poll until URL serves FILE's exact bytes
#   start_upstream [CPU]                  the upstream nginx and its docroot
#   nginx_common NAME [on|off]            main-context lines of an nginx config
#   nginx_temp_paths NAME                 *_temp_path lines in the temp dir
#   nginx_proxy_location PATH [LINE]...   a proxying location block
#   nginx_proxy_conf NAME MASTER LISTEN [LOCATIONS] [HTTP_EXTRA]
#                                         a whole proxy nginx config
#   haproxy_conf TIMEOUT BIND [GLOBAL] [FRONTEND] [SECTIONS]
#                                         a whole HAProxy config
#   portcullis_conf PORT ADMIN [TOP] [LISTENER] [ROUTES]
#                                         a whole portcullis config
# Every config is the one-worker proxy in front of the upstream pool "up"
# (127.0.0.1:UP_PORT, 32 keep-alive connections, 1000000 requests each).

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%T)" "$*" >&2; }
die() { log "$DIE_WORD: $*"; exit 1; }

# ---------------------------------------------------------------- processes
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

# make_work PREFIX: WORK = a new temp dir (755: nginx workers read from it).
make_work() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$WORK"
}

# spawn CPU LOGFILE CMD... : start CMD in the background, pinned to CPU with
# taskset (CPU "" = not pinned), stdout and stderr to LOGFILE; sets SPAWNED to
# its PID (taskset execs, so it is the command's own PID; so is valgrind's).
spawn() {
  local cpu=$1 logfile=$2; shift 2
  if [[ -n $cpu ]]; then
    taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
  else
    "$@" >"$logfile" 2>&1 &
  fi
  SPAWNED=$!
  PIDS+=("$SPAWNED")
}

forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# stop_pid PID [SECONDS]: SIGTERM, wait up to SECONDS (default 5) for it to
# exit, then SIGKILL. Returns 1 if it had to be killed.
stop_pid() {
  local pid=$1 secs=${2:-5} rc=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; rc=1; fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
  return $rc
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

# wait_ready WAIT URL FILE LOG PID [-H "Name: value"]...: URL answers FILE's
# exact bytes within WAIT seconds (giving up early if PID exits); else prints
# the tail of LOG and returns 1.
wait_ready() {
  local wait=$1 url=$2 file=$3 logfile=$4 pid=$5; shift 5
  if ! "$PY" "$BENCH_DIR/tools.py" check --wait "$wait" --pid "$pid" "$@" "$url" "$file"; then
    log "log of the process ($logfile):"; tail -n 20 "$logfile" >&2 || true
    return 1
  fi
}

# ---------------------------------------------------------------- nginx
# nginx as root would switch workers to "nobody", which cannot read our temp dir.
nginx_user_line() { if [[ $EUID -eq 0 ]]; then echo "user $(id -un) $(id -gn);"; fi; }

# nginx_common NAME [MASTER]: main-context lines of a one-worker nginx in the
# foreground; pid and error log $WORK/NAME.{pid,error.log}; MASTER on
# (default) or off (then the one process is the worker).
nginx_common() {
  local name=$1 master=${2:-on}
  cat <<EOF
$(nginx_user_line)
worker_processes 1;
daemon off;
master_process $master;
pid $WORK/$name.pid;
error_log $WORK/$name.error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_temp_paths() { # NAME
  local d=$WORK/$1-temp t; mkdir -p "$d"
  for t in client_body proxy fastcgi uwsgi scgi; do echo "    ${t}_temp_path $d/$t;"; done
}

# nginx_proxy_location PATH [LINE]...: a location proxying PATH to the pool
# "up" over keep-alive HTTP/1.1; each LINE is one more directive in it.
nginx_proxy_location() {
  local path=$1 l; shift
  echo "        location $path {"
  echo "            proxy_pass http://up;"
  echo "            proxy_http_version 1.1;"
  echo "            proxy_set_header Connection \"\";"
  for l in "$@"; do echo "            $l"; done
  echo "        }"
}

# nginx_proxy_conf NAME MASTER LISTEN [LOCATIONS] [HTTP_EXTRA]: the config of
# a one-worker proxy nginx (see nginx_common for NAME and MASTER). LISTEN: the
# lines after "server {" (listen, ssl_*); LOCATIONS: the server's location
# blocks (default: nginx_proxy_location /); HTTP_EXTRA: more lines in the
# http block (another server). Access log off, 1000000 requests per client
# and per upstream connection, 32 idle upstream connections kept.
nginx_proxy_conf() {
  local name=$1 master=$2 listen=$3 locations=${4:-} extra=${5:-}
  [[ -n $locations ]] || locations=$(nginx_proxy_location /)
  nginx_common "$name" "$master"
  cat <<EOF
http {
$(nginx_temp_paths "$name")
    access_log off;
    keepalive_requests 1000000;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        $listen
$locations
    }
EOF
  if [[ -n $extra ]]; then printf '%s\n' "$extra"; fi
  echo "}"
}

# ---------------------------------------------------------------- upstream
# start_upstream [CPU]: Debian nginx, 1 worker (pinned to CPU if given),
# sendfile, keep-alive, access log off, serving $DOCROOT: /small (13 bytes
# "hello world!\n"), /64k.bin (65536 random bytes), /1m.bin (1048576).
# Sets DOCROOT, UP_PORT, UP_PID; dies if it does not serve /small within 10 s.
start_upstream() {
  local cpu=${1:-}
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
  spawn "$cpu" "$WORK/upstream.log" "$NGINX" -p "$WORK/" -e "$WORK/upstream.error.log" -c "$conf"
  UP_PID=$SPAWNED
  wait_ready 10 "http://127.0.0.1:$UP_PORT/small" "$DOCROOT/small" "$WORK/upstream.error.log" "$UP_PID" \
    || die "upstream nginx did not start"
  log "upstream nginx pid $UP_PID on 127.0.0.1:$UP_PORT${cpu:+ (CPU $cpu)}"
}

# ---------------------------------------------------------------- HAProxy
# haproxy_conf TIMEOUT BIND [GLOBAL] [FRONTEND] [SECTIONS]: the config of a
# one-thread HAProxy (-db) proxying everything to the upstream with
# http-reuse always. TIMEOUT: client/server/keep-alive timeout ("60s"); BIND:
# the frontend's bind line; GLOBAL, FRONTEND: more lines (indented) in those
# sections, before default_backend; SECTIONS: more sections at the end.
haproxy_conf() {
  local timeout=$1 bind=$2 global=${3:-} frontend=${4:-} sections=${5:-}
  printf 'global\n    nbthread 1\n    maxconn 4096\n'
  if [[ -n $global ]]; then printf '%s\n' "$global"; fi
  cat <<EOF
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client $timeout
    timeout server $timeout
    timeout http-keep-alive $timeout
frontend fe
    $bind
EOF
  if [[ -n $frontend ]]; then printf '%s\n' "$frontend"; fi
  printf '    default_backend be\nbackend be\n    server up 127.0.0.1:%s\n' "$UP_PORT"
  if [[ -n $sections ]]; then printf '%s\n' "$sections"; fi
}

# ---------------------------------------------------------------- portcullis
# portcullis_conf PORT ADMIN [TOP] [LISTENER] [ROUTES]: the config of a
# one-worker portcullis, access log off, admin on 127.0.0.1:ADMIN, the
# upstream pool "up" (keepalive 32), one listener on 127.0.0.1:PORT. TOP:
# more top-level members, each line ending in ","; LISTENER: more listener
# members, starting with ","; ROUTES: the routes array (default: one route
# "bench" for "/").
portcullis_conf() {
  local port=$1 admin=$2 top=${3:-} listener=${4:-}
  local routes=${5:-'[{"name": "bench", "path": "/", "upstream": "up"}]'}
  echo '{'
  echo '  "workers": 1,'
  echo '  "access_log": false,'
  if [[ -n $top ]]; then printf '%s\n' "$top"; fi
  cat <<EOF
  "admin": {"listen": "127.0.0.1:$admin"},
  "upstreams": {"up": {"servers": ["127.0.0.1:$UP_PORT"], "keepalive": 32}},
  "listeners": [
    {"listen": "127.0.0.1:$port"$listener,
     "routes": $routes}
  ]
}
EOF
}
