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
#   * Basic-auth rows (profiles tlsauth_apr1, tlsauth_bcrypt10): the tls-small
#     setup (ECDSA, keep-alive, GET /small, 32 connections) with the whole
#     server behind HTTP basic auth: one user "bench" whose password is made
#     up at run time, in an htpasswd file made at run time with
#     `htpasswd -nbm` ($apr1$, Apache MD5) or `htpasswd -nbB -C 10` (bcrypt
#     $2y$ cost 10). wrk sends the right "Authorization: Basic ..." header on
#     every request (wrk -H; the body check sends it too), and before the runs
#     each proxy must answer 401 without it. What this measures differs by
#     design: portcullis verifies a credential once (on a verifier thread,
#     single flight) and then accepts the same Authorization value from its
#     cache (cache_ttl, 5 m by default), so its rows price the cached path and
#     compare with its own tls-small row (the headline: tlsauth-bcrypt10 /
#     tls-small requests/s, and the p99 difference); nginx (auth_basic +
#     auth_basic_user_file) and HAProxy (userlist, `http-request auth unless
#     { http_auth(...) }`) hash on every request, on their one event loop, so
#     with bcrypt they collapse to what one core hashes (~15 req/s) and their
#     rows show that. HAProxy checks userlist passwords with crypt(3)
#     (libcrypt); Debian's libcrypt has bcrypt but no $apr1$, so before
#     starting HAProxy for an auth profile the script asks libcrypt
#     (tools.py crypt-check) and shows the cell as n/a with that reason when
#     it cannot check the hash (nginx implements $apr1$ itself). None of the
#     three forwards the Authorization header upstream (portcullis's default;
#     nginx proxy_set_header Authorization "", HAProxy del-header). portcullis
#     runs the realm at its defaults (cache_ttl 5m, max_failures 10 per 5m,
#     1 verifier thread); its auth counters (portcullis_auth_requests_total
#     by result, portcullis_auth_verifications_total = hashes computed) are
#     read around every run into runs.tsv. tls-small runs in another profile
#     block (minutes earlier), so profile tlsauth_bcrypt10 also has a route
#     /open/ without a realm, and row tlsauth-open (GET /open/small, same
#     TLS setup, same request bytes, Authorization header included) runs in
#     the same rounds as tlsauth-bcrypt10: the report gives the headline
#     against both references.
#   * Wrong-password storm (profiles storm, storm_noguard): one TLS listener
#     (ECDSA) with two routes to the same upstream, /open/ (no auth) and
#     /locked/ (the bcrypt-10 realm); the docroot has open/small and
#     locked/small. Per target, row "storm-alone" is wrk on /open/small
#     alone, row "storm" is the same wrk on /open/small while a second wrk
#     (the storm client) sends GET /locked/small, every request with a
#     different wrong password, over BENCH_STORM_CONNECTIONS (8) keep-alive
#     connections, each waiting BENCH_STORM_DELAY_MS (20 ms) between a
#     response and its next request (so at most ~400 req/s: far more than a
#     bcrypt-10 hasher keeps up with, while the client itself stays cheap).
#     The storm starts BENCH_STORM_RAMP (1 s) before the /open/ warm-up and is
#     stopped (SIGINT, wrk then prints its summary; a Lua hook counts the
#     answers by status) after the measured run. The report gives /open/
#     requests/s under the storm as a % of alone. portcullis runs twice:
#     profile storm with the realm's default brute-force guard (after 10
#     failures from 127.0.0.1 the storm gets 429 without hashing), profile
#     storm_noguard ("max_failures": 0, portcullis only: every wrong password
#     is hashed on the verifier thread, or refused with 503 when its queue is
#     full). nginx and HAProxy have no such guard: every storm request is a
#     bcrypt on their event loop. Passwords differ per request so that no
#     cache or single flight can merge them (a guessing attack does that too).
#     Where each process runs: every proxy process, all its threads
#     (portcullis's verifier thread included), on CPU 0 (BENCH_PROXY_CPU) as
#     in every row, so hashing competes with the event loop there exactly as
#     in nginx and HAProxy; the /open/ wrk, the upstream AND the storm client
#     on CPU 1 (BENCH_STORM_CPU, default BENCH_LOAD_CPU), never on the proxy's
#     core. The storm client's own CPU on CPU 1 is measured over the run
#     (runs.tsv storm_cpu_ticks) and reported, since it slows the load side a
#     little for every target alike.
#   * Auth and storm profiles: wrk gets --timeout 10s (a proxy that bcrypts
#     every request answers 32 queued connections in ~2 s, and wrk's default
#     2 s would drop those latencies from its statistics), and the script
#     waits after every warm-up and every measured run until the proxy is
#     idle (CPU < 2 ticks in 0.5 s, up to 20 s: settle): a proxy that hashes
#     synchronously still works through the requests of the connections wrk
#     just closed, and that work must not fall into the next measurement on
#     the shared proxy core.
#
# Rows are (name, URL path, config profile); a profile is the per-target
# config tweak (plain, metrics_off, tls_*, tlsnew_*, tlsauth_*, storm*,
# policy). Each
# target's start function receives the profile and builds its config for it,
# or returns 2 for "not applicable" (cell shown as n/a, with T_NOTE as the
# reason when it set one).
#
# The setup layer (spawn/stop by PID, CPU pinning, ports, upstream, config
# writers) is bench/lib.sh, shared with bench/instructions.sh.
#
# Environment: BENCH_DURATION BENCH_RUNS BENCH_WARMUP BENCH_CONNECTIONS
#   BENCH_THREADS BENCH_TARGETS ("direct nginx haproxy portcullis")
#   BENCH_ROWS (row names, default all) BENCH_PROXY_CPU BENCH_LOAD_CPU
#   BENCH_STORM_CPU BENCH_STORM_CONNECTIONS BENCH_STORM_DELAY_MS
#   BENCH_STORM_RAMP BENCH_RESULTS PORTCULLIS (binary path)
# Default duration: 44 measured cells (plain 3 rows x 4 targets,
# small-nometrics 1, five TLS rows x 3 proxies, three tlsauth rows x 3 but
# HAProxy's apr1 n/a, storm 2 rows x 3 + 2 portcullis-only) x 3 runs x
# (8+1 s, plus ~2-3 s of settling and storm ramp in the auth and storm rows)
# ~ 25 min.
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
STORM_CPU=${BENCH_STORM_CPU:-$LOAD_CPU}
STORM_CONNECTIONS=${BENCH_STORM_CONNECTIONS:-8}
STORM_DELAY_MS=${BENCH_STORM_DELAY_MS:-20}
STORM_RAMP=${BENCH_STORM_RAMP:-1}
# the policy rows' rate limit per client address: far above what one wrk
# on one core sends, so it is checked on every request and never refuses
POLICY_RATE=1000000 POLICY_BURST=100000
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
  # TLS (ECDSA) keep-alive as tls-small, behind basic auth, the right password
  # on every request: $apr1$ hash, bcrypt cost 10 (portcullis: compare with
  # its tls-small row). tlsauth-open: the same server and the same request
  # (header included) on a route without auth, interleaved with
  # tlsauth-bcrypt10: the no-auth reference measured in the same rounds.
  "tlsauth-apr1     /small       tlsauth_apr1"
  "tlsauth-open     /open/small  tlsauth_bcrypt10"
  "tlsauth-bcrypt10 /small       tlsauth_bcrypt10"
  # /open/ alone, then /open/ while a wrong-password storm hits /locked/
  # (bcrypt 10); see storm_row. portcullis with its default brute-force guard
  # (storm) and with the guard off (storm_noguard, portcullis only)
  "storm-alone          /open/small  storm"
  "storm                /open/small  storm"
  "storm-noguard-alone  /open/small  storm_noguard"
  "storm-noguard        /open/small  storm_noguard"
  # route policies, one server: /policy/ with an allow list (the client's
  # range), a rate limit far above what the run sends and three response
  # headers set; policy-plain: /open/ on the same server with none of it,
  # interleaved with it in the same rounds (the reference)
  "policy-plain  /open/small    policy"
  "policy        /policy/small  policy"
)
# storm_row NAME: the row's /open/ run happens during a wrong-password storm.
storm_row() { case $1 in storm | storm-noguard) ;; *) return 1 ;; esac; }

# Request headers per profile, one "Name: value" per line. Sent by wrk and by
# the body check alike.
profile_headers() {
  case $1 in
    tlsnew_*) echo "Connection: close" ;;  # the proxy closes, wrk reconnects
    tlsauth_*) echo "Authorization: $AUTH_HEADER" ;;  # the right password
    *) ;;
  esac
}
# profile_wrk_args PROFILE: more wrk options for that profile.
profile_wrk_args() {
  case $1 in
    tlsauth_* | storm | storm_noguard) echo "--timeout 10s" ;;
    *) ;;
  esac
}
# profile_settle PROFILE: wait for the proxy to go idle after every warm-up
# and every run (see settle).
profile_settle() { [[ $1 == tlsauth_* || $1 == storm || $1 == storm_noguard ]]; }
# profile_auth PROFILE: which htpasswd file ("apr1" or "bcrypt10") protects
# the profile's protected path; fails for a profile without auth.
profile_auth() {
  case $1 in
    tlsauth_apr1) echo apr1 ;;
    tlsauth_bcrypt10 | storm | storm_noguard) echo bcrypt10 ;;
    *) return 1 ;;
  esac
}
# profile_locked PROFILE: a URL path that needs the password in that profile.
profile_locked() {
  case $1 in
    tlsauth_*) echo /small ;;                  # the whole server
    storm | storm_noguard) echo /locked/small ;;  # only /locked/
    *) return 1 ;;
  esac
}
profile_storm() { [[ $1 == storm || $1 == storm_noguard ]]; }

# profile_tls PROFILE: the certificate key type ("ecdsa" or "rsa") of a TLS
# profile; fails for a plain-HTTP profile.
profile_tls() {
  case $1 in
    tls_ecdsa|tlsnew_ecdsa|tlsauth_*|storm|storm_noguard) echo ecdsa ;;
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
# The setup layer shared with instructions.sh: log/die, spawn (pinned),
# stop_pid, alloc_port, wait_ready, start_upstream, the proxies' config
# writers; processes stopped by PID on exit.
LOG_TAG=bench DIE_WORD=ERROR
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

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

# ---------------------------------------------------------------- basic auth
# make_auth: the user "bench" with a password made up now, in two htpasswd
# files made by Apache's htpasswd: $WORK/auth/apr1.htpasswd ($apr1$, -m) and
# $WORK/auth/bcrypt10.htpasswd (bcrypt $2y$, -B -C 10). Sets AUTH_USER,
# AUTH_PASSWORD and AUTH_HEADER ("Basic base64(user:password)").
make_auth() {
  local d=$WORK/auth
  mkdir -p "$d"
  AUTH_USER=bench
  AUTH_PASSWORD=$(openssl rand -hex 12)
  htpasswd -nbm "$AUTH_USER" "$AUTH_PASSWORD" | head -n 1 >"$d/apr1.htpasswd"
  htpasswd -nbB -C 10 "$AUTH_USER" "$AUTH_PASSWORD" | head -n 1 >"$d/bcrypt10.htpasswd"
  # shellcheck disable=SC2016  # literal $ signs
  grep -q '^bench:\$apr1\$' "$d/apr1.htpasswd" || die 'htpasswd -nbm made no $apr1$ hash'
  # shellcheck disable=SC2016
  grep -q '^bench:\$2y\$10\$' "$d/bcrypt10.htpasswd" || die 'htpasswd -nbB -C 10 made no bcrypt hash'
  chmod 644 "$d"/*   # readable by nginx workers if they run as another user
  AUTH_HEADER="Basic $(printf '%s:%s' "$AUTH_USER" "$AUTH_PASSWORD" | base64 -w0)"
}
htpasswd_file() { echo "$WORK/auth/$1.htpasswd"; }       # KIND (apr1, bcrypt10)
htpasswd_hash() { cut -d: -f2- "$(htpasswd_file "$1")"; }  # KIND

# write_storm_lua: $WORK/storm.lua, the storm client's wrk script. Arguments
# (after "--"): USER DELAY_MS. Every request carries "Authorization: Basic"
# with USER and a password never used before ("wrong-N"); after each response
# the connection waits DELAY_MS before its next request (wrk's delay()); the
# answers are counted per status and printed at the end as "storm status
# CODE COUNT" lines (the one wrk thread's table, copied out by done()).
write_storm_lua() {
  cat >"$WORK/storm.lua" <<'EOF'
local b64c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local function ch(k) return b64c:sub(k + 1, k + 1) end
    out[#out + 1] = ch(math.floor(n / 262144) % 64) .. ch(math.floor(n / 4096) % 64)
      .. (b and ch(math.floor(n / 64) % 64) or "=") .. (c and ch(n % 64) or "=")
  end
  return table.concat(out)
end

local user, delay_ms, n = "bench", 20, 0
statuses = {}
local threads = {}

function setup(thread) table.insert(threads, thread) end

function init(args)
  user = args[1] or user
  delay_ms = tonumber(args[2]) or delay_ms
end

function request()
  n = n + 1
  return wrk.format(nil, nil, {["Authorization"] = "Basic " .. b64(user .. ":wrong-" .. n)})
end

function delay() return delay_ms end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, count in pairs(t:get("statuses")) do
      io.write(string.format("storm status %d %d\n", code, count))
    end
  end
end
EOF
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
#                         none); return 2 if PROFILE does not apply (T_NOTE:
#                         why, if it is not obvious).
# Stopping is generic (stop_pid T_PID).

# target_applies TARGET PROFILE: TARGET has a config for PROFILE (else n/a).
target_applies() {
  case $1:$2 in
    direct:plain) ;;                                  # the upstream speaks plain HTTP only
    nginx:plain | haproxy:plain | portcullis:plain) ;;
    portcullis:metrics_off) ;;                        # a portcullis-only switch
    nginx:tls_* | haproxy:tls_* | portcullis:tls_*) ;;
    nginx:tlsnew_* | haproxy:tlsnew_* | portcullis:tlsnew_*) ;;
    nginx:tlsauth_* | haproxy:tlsauth_* | portcullis:tlsauth_*) ;;
    nginx:storm | haproxy:storm | portcullis:storm) ;;
    portcullis:storm_noguard) ;;                      # the guard is portcullis's
    nginx:policy | haproxy:policy | portcullis:policy) ;;
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
  local profile=$1 port status conf tls="" listen scheme=http locations="" auth=() kind
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
  if kind=$(profile_auth "$profile"); then
    # the upstream does not get the Authorization header (as with portcullis)
    auth=('auth_basic "bench";' "auth_basic_user_file $(htpasswd_file "$kind");"
          'proxy_set_header Authorization "";')
    if profile_storm "$profile"; then
      locations="$(nginx_proxy_location /open/)
$(nginx_proxy_location /locked/ "${auth[@]}")"
    else   # everything but /open/ (the tlsauth-open reference)
      locations="$(nginx_proxy_location / "${auth[@]}")
$(nginx_proxy_location /open/)"
    fi
  fi
  local zone=""
  if [[ $profile == policy ]]; then
    locations="$(nginx_proxy_location /open/)
$(nginx_proxy_location /policy/ 'allow 127.0.0.0/8;' 'deny all;' \
    "limit_req zone=bench burst=$POLICY_BURST nodelay;" 'limit_req_status 429;' \
    'add_header X-Content-Type-Options nosniff always;' \
    'add_header X-Frame-Options DENY always;' \
    'add_header Referrer-Policy no-referrer always;')"
    zone="    limit_req_zone \$binary_remote_addr zone=bench:10m rate=${POLICY_RATE}r/s;"
  fi
  nginx_proxy_conf "proxy-$profile" on "$listen" "$locations" \
"$zone
    server {   # connection counters for the harness (idle during a run)
        listen 127.0.0.1:$status;
        location = /status { stub_status; }
    }" >"$conf"
  T_LOG=$WORK/proxy-$profile.error.log
  spawn "$PROXY_CPU" "$WORK/nginx-$profile.out" "$NGINX" -p "$WORK/" -e "$T_LOG" -c "$conf"
  T_PID=$SPAWNED; T_URL="$scheme://127.0.0.1:$port"
  T_SERVING="nginx_worker_pid $T_PID"
  T_COUNTERS="nginx http://127.0.0.1:$status/status"
}
nginx_worker_pid() { pgrep -P "$1" | head -n 1; }  # children of the master, by PID

haproxy_version() { "$HAPROXY" -v | head -n 1 | sed 's/ - https.*//'; }
haproxy_start() {
  local profile=$1 port conf tls="" bind global scheme=http sock kind front="" users="" why
  target_applies haproxy "$profile" || return 2
  if kind=$(profile_auth "$profile"); then
    # HAProxy checks userlist passwords with crypt(3): ask libcrypt first.
    if ! why=$("$PY" "$BENCH_DIR/tools.py" crypt-check "$(htpasswd_hash "$kind")" "$AUTH_PASSWORD"); then
      T_NOTE="HAProxy checks userlist passwords with crypt(3); $why"
      log "haproxy ($profile): n/a: $T_NOTE"
      return 2
    fi
    users="userlist bench_users
    user $AUTH_USER password $(htpasswd_hash "$kind")"
    # storm: /locked/ only; tlsauth: everything but /open/ (tlsauth-open)
    front="    acl open path_beg /open/"
    if profile_storm "$profile"; then
      front+="
    acl locked path_beg /locked/"
    else
      front+="
    acl locked path_beg /"
    fi
    # the upstream does not get the Authorization header (as with portcullis)
    front+="
    http-request auth realm bench if locked !open !{ http_auth(bench_users) }
    http-request del-header Authorization if locked !open"
  fi
  if [[ $profile == policy ]]; then
    # allow list, a per-address request rate in a stick table (the limit far
    # above the run's rate), three response headers on /policy/ only
    front="    acl policy path_beg /policy/
    stick-table type ip size 100k expire 30s store http_req_rate(1s)
    http-request deny deny_status 403 if policy !{ src 127.0.0.0/8 }
    http-request track-sc0 src if policy
    http-request deny deny_status 429 if policy { sc_http_req_rate(0) gt $POLICY_RATE }
    http-request set-var(txn.policy) bool(1) if policy
    http-response set-header X-Content-Type-Options nosniff if { var(txn.policy) -m bool }
    http-response set-header X-Frame-Options DENY if { var(txn.policy) -m bool }
    http-response set-header Referrer-Policy no-referrer if { var(txn.policy) -m bool }"
  fi
  tls=$(profile_tls "$profile") || tls=""
  alloc_port port; conf=$WORK/haproxy-$profile.cfg; sock=$WORK/haproxy-$profile.sock
  bind="bind 127.0.0.1:$port"
  global="    stats socket $sock mode 600"
  if [[ -n $tls ]]; then
    scheme=https
    bind="bind 127.0.0.1:$port ssl crt $(pem_file "$tls")"
    # session cache (tune.ssl.cachesize, 20000 by default) and tickets: on
    global+="
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphers $TLS_CIPHERS
    ssl-default-bind-curves $TLS_GROUPS"
  fi
  haproxy_conf 60s "$bind" "$global" "$front" "$users" >"$conf"
  T_LOG=$WORK/haproxy-$profile.log
  spawn "$PROXY_CPU" "$T_LOG" "$HAPROXY" -db -f "$conf"
  T_PID=$SPAWNED; T_URL="$scheme://127.0.0.1:$port"
  T_SERVING="echo $T_PID"
  T_COUNTERS="haproxy $sock"
}

portcullis_version() { "$PORTCULLIS" --version 2>&1 | head -n 1; }
portcullis_start() {
  local profile=$1 port admin conf metrics=true tls="" top listener_tls=false scheme=http
  local kind routes="" guard="" realm=""
  target_applies portcullis "$profile" || return 2
  [[ $profile == metrics_off ]] && metrics=false  # what recording the SLI metrics costs
  tls=$(profile_tls "$profile") || tls=""
  alloc_port port; alloc_port admin; conf=$WORK/portcullis-$profile.json
  top="  \"metrics\": $metrics,"
  if [[ -n $tls ]]; then
    scheme=https; listener_tls=true
    # ciphers: the same list as its default, explicit as in the other two
    top+="
  \"tls\": {\"certificates\": [{\"cert\": \"$(cert_file "$tls")\", \"key\": \"$(key_file "$tls")\"}],
          \"ciphers\": \"$TLS_CIPHERS\"},"
  fi
  if kind=$(profile_auth "$profile"); then
    realm=bench
    # the realm at its defaults, but for storm_noguard: the brute-force guard off
    [[ $profile == storm_noguard ]] && guard=", \"max_failures\": 0"
    top+="
  \"realms\": {\"bench\": {\"htpasswd\": \"$(htpasswd_file "$kind")\"$guard}},"
    if profile_storm "$profile"; then
      routes='[{"name": "open", "path": "/open/", "upstream": "up"},
                {"name": "locked", "path": "/locked/", "upstream": "up", "realm": "bench"}]'
    else   # and /open/ without a realm (the tlsauth-open reference)
      routes='[{"name": "bench", "path": "/", "upstream": "up", "realm": "bench"},
                {"name": "open", "path": "/open/", "upstream": "up"}]'
    fi
  fi
  if [[ $profile == policy ]]; then
    routes='[{"name": "open", "path": "/open/", "upstream": "up"},
                {"name": "policy", "path": "/policy/", "upstream": "up",
                 "allow": ["127.0.0.0/8"],
                 "rate_limit": {"rate": "'"$POLICY_RATE"'/s", "burst": '"$POLICY_BURST"'},
                 "headers": {"set": {"X-Content-Type-Options": "nosniff",
                                     "X-Frame-Options": "DENY",
                                     "Referrer-Policy": "no-referrer"}}}]'
  fi
  portcullis_conf "$port" "$admin" "$top" ", \"tls\": $listener_tls" "$routes" >"$conf"
  T_LOG=$WORK/portcullis-$profile.log
  spawn "$PROXY_CPU" "$T_LOG" "$PORTCULLIS" -c "$conf"
  T_PID=$SPAWNED; T_URL="$scheme://127.0.0.1:$port"
  T_SERVING="echo $T_PID"
  T_COUNTERS="portcullis http://127.0.0.1:$admin/metrics 127.0.0.1:$port${realm:+ $realm}"
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
{ taskset -c "$PROXY_CPU" true && taskset -c "$LOAD_CPU" true && taskset -c "$STORM_CPU" true; } 2>/dev/null \
  || die "cannot pin to CPUs $PROXY_CPU, $LOAD_CPU and $STORM_CPU (see BENCH_PROXY_CPU/BENCH_LOAD_CPU/BENCH_STORM_CPU)"
[[ $DURATION =~ ^[0-9]+$ && $RUNS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] \
  || die "BENCH_DURATION, BENCH_RUNS, BENCH_WARMUP must be integers (seconds, count)"
[[ $STORM_CONNECTIONS =~ ^[1-9][0-9]*$ && $STORM_DELAY_MS =~ ^[0-9]+$ && $STORM_RAMP =~ ^[0-9]+$ ]] \
  || die "BENCH_STORM_CONNECTIONS, BENCH_STORM_DELAY_MS, BENCH_STORM_RAMP must be integers"

ROWS=()
for r in "${ALL_ROWS[@]}"; do
  read -r name _ _ <<<"$r"
  if [[ -z ${BENCH_ROWS:-} || " $BENCH_ROWS " == *" $name "* ]]; then ROWS+=("$r"); fi
done
((${#ROWS[@]})) || die "no row matches BENCH_ROWS='$BENCH_ROWS'"
WANT_TLS=0 WANT_AUTH=0 WANT_STORM=0 WANT_POLICY=0
for r in "${ROWS[@]}"; do
  read -r _ _ p <<<"$r"
  [[ $p == policy ]] && WANT_POLICY=1
  profile_tls "$p" >/dev/null && WANT_TLS=1
  profile_auth "$p" >/dev/null && WANT_AUTH=1
  profile_storm "$p" && WANT_STORM=1
done
if ((WANT_TLS)); then
  for tool in openssl gcc; do command -v "$tool" >/dev/null || die "missing $tool (TLS rows)"; done
fi
if ((WANT_AUTH)); then
  command -v htpasswd >/dev/null || die "missing htpasswd (auth rows; Debian package apache2-utils)"
  command -v base64 >/dev/null || die "missing base64 (auth rows)"
fi

make_work portcullis-bench
RAW=$RESULTS/raw
rm -rf "$RAW"; mkdir -p "$RAW"
SHIM=""
if ((WANT_TLS)); then make_certs; build_shim; fi
AUTH_USER="" AUTH_PASSWORD="" AUTH_HEADER=""
if ((WANT_AUTH)); then
  make_auth
  ((WANT_STORM)) && write_storm_lua
  # portcullis must understand realms; never drop it silently
  if [[ " ${TARGETS[*]} " == *" portcullis "* ]]; then
    cat >"$WORK/realm-check.json" <<EOF
{"upstreams": {"up": {"servers": ["127.0.0.1:9"]}},
 "realms": {"bench": {"htpasswd": "$(htpasswd_file bcrypt10)"}},
 "listeners": [{"listen": "127.0.0.1:9", "routes": [{"name": "r", "path": "/", "upstream": "up", "realm": "bench"}]}]}
EOF
    if ! out=$("$PORTCULLIS" -t -c "$WORK/realm-check.json" 2>&1); then
      die "this portcullis ($PORTCULLIS) does not accept a \"realms\" config yet:
$out
  The auth and storm rows need it; run the others (BENCH_ROWS) or without
  portcullis (BENCH_TARGETS)."
    fi
  fi
fi

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
  ((WANT_AUTH)) && newconn_note+="; auth and storm rows: --timeout 10s"
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
  if ((WANT_AUTH)); then
    # shellcheck disable=SC2016  # literal $apr1$ and $2y$
    printf 'auth_settings\tone user, password made up at run time; htpasswd files made at run time with htpasswd -nbm ($apr1$) and htpasswd -nbB -C 10 (bcrypt $2y$ cost 10); the right Authorization: Basic header on every wrk request; nginx auth_basic + auth_basic_user_file; HAProxy userlist + http-request auth unless http_auth() (crypt(3)); portcullis realm "bench" at its defaults (cache_ttl 5m, max_failures 10 per 5m, 1 verifier thread); none forwards Authorization upstream\n'
  fi
  if ((WANT_STORM)); then
    printf 'storm_settings\tstorm client: wrk -t1 -c%s --timeout 10s on CPU %s (with wrk and the upstream; never the proxy CPU %s), GET /locked/small with a different wrong password per request, %s ms between a response and the next request on a connection (<= %s req/s), started %s s before the /open/ warm-up and stopped (SIGINT) after the measured run; /locked/ is the bcrypt-10 realm; storm_noguard: portcullis with "max_failures": 0\n' \
      "$STORM_CONNECTIONS" "$STORM_CPU" "$PROXY_CPU" "$STORM_DELAY_MS" \
      "$(( STORM_DELAY_MS > 0 ? STORM_CONNECTIONS * 1000 / STORM_DELAY_MS : 0 ))" "$STORM_RAMP"
  fi
} >"$RAW/meta.tsv"
printf 'profile\trow\tpath\ttarget\trun\tstatus\tfile\tserving_pid\tcpu_ticks\twall_s\trequests\ths_full\ths_resumed\ths_other_cipher\ttls\tsrv_conns\tsrv_tls\tnote' >"$RAW/runs.tsv"
printf '\tauth_ok\tauth_cached\tauth_denied\tauth_throttled\tauth_unavailable\tauth_hashes\tstorm_file\tstorm_cpu_ticks\n' >>"$RAW/runs.tsv"
printf 'profile\ttarget\tvmhwm_kb\n' >"$RAW/rss.tsv"

ncells=0 extra_s=0
for r in "${ROWS[@]}"; do
  read -r name _ p <<<"$r"
  for t in "${TARGETS[@]}"; do
    target_applies "$t" "$p" || continue
    ncells=$((ncells + 1))
    profile_settle "$p" && extra_s=$((extra_s + RUNS * 2))
    storm_row "$name" && extra_s=$((extra_s + RUNS * STORM_RAMP))
  done
done
log "$ncells measured cells x $RUNS runs x (${WARMUP}s warm-up + ${DURATION}s) ~ $(( (ncells * RUNS * (DURATION + WARMUP + 1) + extra_s) / 60 + 1 )) min"

HDR_ARGS=()
start_upstream "$LOAD_CPU"
cp "$WORK/upstream-nginx.conf" "$RAW/"
if ((WANT_AUTH)); then   # /open/ and /locked/ routes of the auth profiles: the same small file
  mkdir -p "$DOCROOT/open" "$DOCROOT/locked"
  cp "$DOCROOT/small" "$DOCROOT/open/small"; cp "$DOCROOT/small" "$DOCROOT/locked/small"
fi
if ((WANT_AUTH)); then cp "$WORK"/auth/*.htpasswd "$RAW/"; fi
if ((WANT_POLICY)); then   # /open/ and /policy/ of the policy profile: the same small file
  mkdir -p "$DOCROOT/open" "$DOCROOT/policy"
  cp "$DOCROOT/small" "$DOCROOT/open/small"; cp "$DOCROOT/small" "$DOCROOT/policy/small"
fi

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

# settle PID: wait until PID is idle (< 2 ticks of CPU in 0.5 s), at most
# 20 s: a proxy that hashes passwords on its event loop still works through
# the requests of connections wrk has just closed, and that must not overlap
# the next measurement on the proxy core. Logs when it took more than 1 s.
settle() {
  local pid=$1 a b i
  for ((i = 1; i <= 40; i++)); do
    cpu_ticks "$pid" a; sleep 0.5; cpu_ticks "$pid" b
    [[ -n $a && -n $b ]] || return 0
    if ((b - a < 2)); then
      ((i > 2)) && log "  (waited $(awk -v i="$i" 'BEGIN { print i / 2 }') s for pid $pid to go idle)"
      return 0
    fi
  done
  log "  pid $pid still busy after 20 s of settling"
}

# run_wrk URL OUTFILE SECONDS EXTRA...: https runs get the TLS shim (a full
# handshake on every connection; with BENCH_TLS_STATS set, it writes its
# handshake counts there at exit).
run_wrk() {
  local url=$1 out=$2 secs=$3 pre=(); shift 3
  [[ $url == https://* ]] && pre=(env "LD_PRELOAD=$SHIM")
  taskset -c "$LOAD_CPU" "${pre[@]}" "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency "$@" "$url" >"$out" 2>&1
}

# start_storm URL OUTFILE: the storm client (storm.lua, see write_storm_lua)
# against URL in the background on STORM_CPU, through the TLS shim like every
# https wrk; runs until stop_storm (its -d is only a cap). Sets STORM_PID.
start_storm() {
  local url=$1 out=$2 pre=()
  [[ $url == https://* ]] && pre=(env "LD_PRELOAD=$SHIM")
  spawn "$STORM_CPU" "$out" "${pre[@]}" "$WRK" -t1 -c"$STORM_CONNECTIONS" \
    -d"$((STORM_RAMP + WARMUP + DURATION + 120))s" --timeout 10s --latency \
    -s "$WORK/storm.lua" "$url" -- "$AUTH_USER" "$STORM_DELAY_MS"
  STORM_PID=$SPAWNED
}
# stop_storm: SIGINT (wrk stops, prints its summary and the status counts).
stop_storm() {
  kill -INT "$STORM_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$STORM_PID" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$STORM_PID" 2 || log "the storm client did not stop on SIGINT; killed"
}

# counters TARGET VAR: the proxy's counters so far ("- -" where unknown), from
# tools.py counters: "accepted_connections tls_handshakes", and for
# portcullis in an auth profile six more: the realm's auth requests by result
# (ok cached denied throttled unavailable) and hashes computed.
counters() {
  local c v="- -"
  read -r -a c <<<"${COUNTERS[$1]}"
  ((${#c[@]})) && v=$("$PY" "$BENCH_DIR/tools.py" counters "${c[@]}" 2>/dev/null || echo "- -")
  printf -v "$2" '%s' "$v"
}
# delta A B: B - A, or "" if either is unknown.
delta() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && echo $(($2 - $1)) || echo ""; }

FAILED=0
profiles=$(for r in "${ROWS[@]}"; do read -r _ _ p <<<"$r"; echo "$p"; done | awk '!seen[$0]++')
for profile in $profiles; do
  header_args "$profile"
  read -r -a WRK_ARGS <<<"$(profile_wrk_args "$profile")"
  declare -A URL=() PID=() LOGF=() SERVING=() COUNTERS=() STATE=() NOTE=()
  for t in "${TARGETS[@]}"; do
    T_URL=""; T_PID=""; T_LOG=""; T_SERVING=""; T_COUNTERS=""; T_NOTE=""
    rc=0; "${t}_start" "$profile" || rc=$?
    if ((rc == 2)); then STATE[$t]=na; NOTE[$t]=$T_NOTE; continue; fi
    ((rc == 0)) || die "could not start $t for profile $profile"
    URL[$t]=$T_URL; PID[$t]=$T_PID; LOGF[$t]=$T_LOG; SERVING[$t]=$T_SERVING; COUNTERS[$t]=$T_COUNTERS
    NOTE[$t]=""
    read -r _ first_path _ < <(for r in "${ROWS[@]}"; do echo "$r"; done | awk -v p="$profile" '$3==p' | head -n 1)
    if wait_ready 10 "$T_URL$first_path" "$DOCROOT${first_path}" "$T_LOG" "${T_PID:-$UP_PID}" "${HDR_ARGS[@]}"; then
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
      expect=()
      # the policy route must really carry its three response headers
      [[ $path == /policy/* ]] && expect=(--expect "X-Content-Type-Options: nosniff" \
        --expect "X-Frame-Options: DENY" --expect "Referrer-Policy: no-referrer")
      if ! "$PY" "$BENCH_DIR/tools.py" check "${HDR_ARGS[@]}" "${expect[@]}" "${URL[$t]}$path" "$DOCROOT$path"; then
        log "$t returned a wrong body or fields for $path; its cells in profile $profile are marked FAIL"
        STATE[$t]=fail; FAILED=1
      fi
    done
  done
  # Auth profiles: the protected path answers 401 without credentials (a
  # missing header is no failure for portcullis's guard) and the file with
  # the right password.
  if locked=$(profile_locked "$profile"); then
    for t in "${TARGETS[@]}"; do
      [[ ${STATE[$t]} == up ]] || continue
      code=$("$PY" "$BENCH_DIR/tools.py" status "${URL[$t]}$locked" 2>&1 || true)
      if [[ $code != 401 ]]; then
        log "$t answered '$code' (want 401) for $locked without credentials; its cells in profile $profile are marked FAIL"
        STATE[$t]=fail; FAILED=1
      elif ! "$PY" "$BENCH_DIR/tools.py" check -H "Authorization: $AUTH_HEADER" "${URL[$t]}$locked" "$DOCROOT$locked"; then
        log "$t did not serve $locked with the right password; its cells in profile $profile are marked FAIL"
        STATE[$t]=fail; FAILED=1
      fi
    done
  fi

  for run in $(seq "$RUNS"); do
    # rotate the target order each run so nobody is always first after a pause
    n=${#TARGETS[@]}; order=()
    for i in $(seq 0 $((n - 1))); do order+=("${TARGETS[$(( (i + run - 1) % n ))]}"); done
    for r in "${ROWS[@]}"; do
      read -r name path p <<<"$r"; [[ $p == "$profile" ]] || continue
      for t in "${order[@]}"; do
        out="$RAW/$name.$t.run$run.txt"; status=ok; spid=""; cpu=""; wall=""; reqs=""
        hs=("" "" "" ""); sconns=""; stls=""; note=""; auth=("" "" "" "" "" ""); sfile=""; scpu=""
        case ${STATE[$t]} in
          na) status=na; out=""; note=${NOTE[$t]} ;;
          fail) status=fail; out="" ;;
          up)
            if [[ -n ${PID[$t]} ]] && ! kill -0 "${PID[$t]}" 2>/dev/null; then
              log "$t died (see ${LOGF[$t]}):"; tail -n 20 "${LOGF[$t]}" >&2 || true
              cp "${LOGF[$t]}" "$RAW/" 2>/dev/null || true
              STATE[$t]=fail; FAILED=1; status=fail; out=""
            else
              busy=""   # the serving PID, for settle (auth and storm profiles)
              if profile_settle "$profile" && [[ -n ${SERVING[$t]} ]]; then busy=$(${SERVING[$t]} || true); fi
              if storm_row "$name"; then
                sfile="$name.$t.run$run.storm.txt"
                start_storm "${URL[$t]}$(profile_locked "$profile")" "$RAW/$sfile"
                sleep "$STORM_RAMP"
              fi
              if ((WARMUP > 0)); then
                run_wrk "${URL[$t]}$path" /dev/null "$WARMUP" "${HDR_ARGS[@]}" "${WRK_ARGS[@]}" || true
                # no settling during a storm: the proxy is meant to be busy then
                if [[ -n $busy && -z $sfile ]]; then settle "$busy"; fi
              fi
              # The proxy's connection counters, outside the CPU window below.
              c0=""; c1=""
              counters "$t" c0
              # CPU time of the serving process right around the measured run.
              spid=""; t0=""; t1=""; w0=""; w1=""; s0=""; s1=""
              [[ -n ${SERVING[$t]} ]] && spid=$(${SERVING[$t]} || true)
              if [[ -n $spid ]]; then cpu_ticks "$spid" t0; w0=$EPOCHREALTIME; fi
              [[ -n $sfile ]] && cpu_ticks "$STORM_PID" s0
              stats="$RAW/$name.$t.run$run.tls"; rm -f "$stats"
              BENCH_TLS_STATS=$stats run_wrk "${URL[$t]}$path" "$out" "$DURATION" "${HDR_ARGS[@]}" "${WRK_ARGS[@]}" || status=fail
              [[ -n $sfile ]] && cpu_ticks "$STORM_PID" s1
              if [[ -n $spid ]]; then
                cpu_ticks "$spid" t1; w1=$EPOCHREALTIME
                # a different (respawned) serving process makes the difference meaningless
                [[ $(${SERVING[$t]} || true) == "$spid" ]] || t1=""
              fi
              counters "$t" c1
              [[ -n $sfile ]] && stop_storm
              [[ -n $busy ]] && settle "$busy"
              if [[ -n $t0 && -n $t1 ]]; then
                cpu=$((t1 - t0))
                wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
              fi
              [[ -n $s0 && -n $s1 ]] && scpu=$((s1 - s0))
              reqs=$(awk '/ requests in / {print $1; exit}' "$out")
              rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
              read -r -a C0 <<<"$c0"; read -r -a C1 <<<"$c1"
              sconns=$(delta "${C0[0]-}" "${C1[0]-}"); stls=$(delta "${C0[1]-}" "${C1[1]-}")
              for i in 0 1 2 3 4 5; do auth[i]=$(delta "${C0[i + 2]-}" "${C1[i + 2]-}"); done
              [[ -f $stats ]] && IFS=$'\t' read -r -a hs <"$stats"
              # tlsnew: every request on its own connection, a full handshake each
              if [[ $status == ok ]] && profile_newconn "$profile"; then
                note=$(newconn_check "$out" "${hs[0]}" "${hs[1]}" "$sconns")
                if [[ -n $note ]]; then
                  status=fail; FAILED=1
                  log "$name $t run $run: new-connection check failed: $note"
                fi
              fi
              log "run $run/$RUNS  $name  $t  ${rps:-?} req/s${cpu:+  proxy CPU ${cpu} ticks in ${wall} s}${hs[0]:+  handshakes ${hs[0]} full / ${hs[1]} resumed}${sconns:+  accepted $sconns}${auth[5]:+  auth ok/cached/denied/throttled/unavailable ${auth[0]}/${auth[1]}/${auth[2]}/${auth[3]}/${auth[4]}, ${auth[5]} hashes}${sfile:+  storm: $(grep -h '^storm status' "$RAW/$sfile" | awk '{printf "%s%s x%s", sep, $3, $4; sep=", "}')}"
            fi ;;
        esac
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$profile" "$name" "$path" "$t" "$run" \
          "$status" "${out##*/}" "$spid" "$cpu" "$wall" "$reqs" "${hs[0]}" "${hs[1]}" "${hs[2]}" "${hs[3]}" \
          "$sconns" "$stls" "$note" >>"$RAW/runs.tsv"
        printf '\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${auth[@]}" "$sfile" "$scpu" >>"$RAW/runs.tsv"
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
      stop_pid "${PID[$t]}" || true
    fi
  done
  unset URL PID LOGF SERVING COUNTERS STATE NOTE
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
