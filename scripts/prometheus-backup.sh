#!/usr/bin/env bash
# Back up and restore Prometheus's data: a TSDB snapshot taken through the
# admin API (POST /api/v1/admin/tsdb/snapshot: hard links to the persisted
# blocks plus the in-memory head written out as one more block), packed
# with a manifest and checksums; restored with the archive checked first
# and the data verified by queries afterwards.
#
#   prometheus-backup.sh backup  [TARGET] [--out DIR] [--s3 s3://BUCKET/PREFIX] [--keep N]
#   prometheus-backup.sh restore [TARGET] [--force] ARCHIVE|s3://BUCKET/KEY
#   prometheus-backup.sh verify  [TARGET] ARCHIVE|s3://BUCKET/KEY
#   prometheus-backup.sh check   ARCHIVE|s3://BUCKET/KEY
#
# TARGET is the compose stack (the default) or a Prometheus of its own:
#   --project NAME   compose project (default $COMPOSE_PROJECT_NAME, else
#                    portcullis, the `name:` of compose/docker-compose.yml)
#   --engine CMD     docker or podman (default: docker if installed, else podman)
#   --url URL        a native Prometheus: its base URL with any route prefix,
#                    e.g. http://127.0.0.1:19090/prometheus (make run)
#   --data-dir DIR   ... and its --storage.tsdb.path
#
# In the compose stack, Prometheus is reached inside the stack's network
# (`ENGINE exec <gateway> curl http://prometheus:9090/...`), so no gateway
# password is needed; its containers are found by their compose labels.
# Prometheus must run with --web.enable-admin-api (docker-compose.yml does;
# the gateway keeps /api/v1/admin/ behind the realm prometheus-admin).
#
# The archive, prometheus-<snapshot>.tar.gz, holds manifest.json
# (format, time, Prometheus version, blocks with their time ranges, a
# check query's answer, the sha256 of SHA256SUMS), SHA256SUMS (sha256 of
# every file under data/) and data/ (the snapshot: one directory per
# block); beside it, <archive>.sha256 is the archive's own checksum.
#
# backup:  --out DIR (default /var/backups/portcullis), --s3 s3://BUCKET/PREFIX
#          (uploads the archive and its .sha256 with `aws s3 cp`), --keep N
#          (keeps the newest N archives in DIR).
# restore: checks the archive whole before touching anything, refuses a
#          non-empty data directory (or volume) without --force, then
#          replaces its contents with the archive's blocks. Compose: stops
#          Prometheus, replaces the volume's contents from a one-off
#          container of the same image, starts it, waits until ready and
#          verifies. Native: Prometheus must be stopped (the script checks);
#          start it yourself, then run `verify`.
# verify:  queries a running Prometheus: the check query at the backup's
#          time must count at least the series it counted then, and every
#          block's last minutes must hold data.
# check:   the archive's checksums and manifest only, offline.
#
# Other options: --tmpdir DIR (scratch space for an archive's unpacked copy;
# default $TMPDIR, else /var/tmp), --timeout SECONDS (how long restore waits
# for Prometheus to be ready; 300).
# Exit status: 0 done, 1 failure, 2 usage, 3 the archive failed its checks
# (nothing was changed), 4 refused (data present without --force, or a
# native Prometheus still running), 5 --s3 without the aws CLI (the archive
# is kept locally).
set -euo pipefail

readonly FORMAT=portcullis-prometheus-backup/1
readonly CHECK_QUERY='count({__name__=~".+"})'
prog="prometheus-backup"

cmd=
mode=
url=
data_dir=
project=${COMPOSE_PROJECT_NAME:-portcullis}
engine=
out=/var/backups/portcullis
s3=
keep=
force=0
tmpdir=${TMPDIR:-/var/tmp}
timeout=300
archive=
work=
snapshot=

usage() { # [STATUS]: the help above; on stderr unless asked for
	if [ "${1:-2}" = 0 ]; then
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
	fi
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	say "usage: see above"
	exit 2
}

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { # [-CODE] MESSAGE
	local code=1
	if [[ ${1:-} =~ ^-[0-9]+$ ]]; then
		code=${1#-}
		shift
	fi
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit "$code"
}

cleanup() {
	local rc=$?
	# A snapshot's head block is a copy: never leave one behind.
	if [ -n "$snapshot" ] && [ "$mode" = native ]; then
		rm -rf "${data_dir:?}/snapshots/$snapshot" || say "could not remove snapshot $snapshot"
	elif [ -n "$snapshot" ]; then
		"$engine" exec "$prometheus" rm -rf "/prometheus/snapshots/$snapshot" ||
			say "could not remove /prometheus/snapshots/$snapshot; remove it by hand"
	fi
	[ -n "$work" ] && rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

parse_args() {
	[ $# -gt 0 ] || usage
	case $1 in
	backup | restore | verify | check) cmd=$1 ;;
	-h | --help | help) usage 0 ;;
	*) die -2 "unknown command \"$1\" (backup, restore, verify, check; --help)" ;;
	esac
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--url | --data-dir | --project | --engine | --out | --s3 | --keep | --tmpdir | --timeout)
			[ $# -ge 2 ] || die -2 "$1 needs a value"
			case $1 in
			--url) url=${2%/} ;;
			--data-dir) data_dir=${2%/} ;;
			--project) project=$2 ;;
			--engine) engine=$2 ;;
			--out) out=$2 ;;
			--s3) s3=${2%/} ;;
			--keep) keep=$2 ;;
			--tmpdir) tmpdir=$2 ;;
			--timeout) timeout=$2 ;;
			esac
			shift 2
			;;
		--force) force=1 && shift ;;
		-h | --help) usage 0 ;;
		-*) die -2 "unknown option $1 (--help)" ;;
		*)
			[ -z "$archive" ] || die -2 "one archive only (\"$archive\", \"$1\")"
			archive=$1
			shift
			;;
		esac
	done
	case $cmd in
	backup) [ -z "$archive" ] || die -2 "backup takes no archive (--out DIR)" ;;
	*) [ -n "$archive" ] || die -2 "$cmd needs an archive" ;;
	esac
	if [ -n "$keep" ] && ! [[ $keep =~ ^[1-9][0-9]*$ ]]; then
		die -2 "--keep: \"$keep\" is not a positive number"
	fi
	[[ $timeout =~ ^[1-9][0-9]*$ ]] || die -2 "--timeout: \"$timeout\" is not a number of seconds"
	if [ -n "$s3" ] && ! [[ $s3 =~ ^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$ ]]; then
		die -2 "--s3: \"$s3\" is not s3://BUCKET[/PREFIX]"
	fi
	[[ $project =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die -2 "--project: \"$project\" is not a compose project name"
	# absolute: tar and the swap change directories
	out=$(realpath -m "$out")
	tmpdir=$(realpath -m "$tmpdir")
	[ -z "$data_dir" ] || data_dir=$(realpath -m "$data_dir")
	if [ -n "$url" ] || [ -n "$data_dir" ]; then
		mode=native
		case $cmd in
		backup) [ -n "$url" ] || die -2 "backup of a native Prometheus needs --url and --data-dir"
			[ -n "$data_dir" ] || die -2 "backup of a native Prometheus needs --url and --data-dir" ;;
		restore) [ -n "$data_dir" ] || die -2 "restore of a native Prometheus needs --data-dir (and --url to make sure it is stopped)" ;;
		verify) [ -n "$url" ] || die -2 "verify of a native Prometheus needs --url" ;;
		esac
		[ -z "$url" ] || [[ $url =~ ^https?://[^[:space:]]+$ ]] || die -2 "--url: \"$url\" is not an http(s) URL"
	else
		mode=compose
	fi
}

# --- talking to Prometheus --------------------------------------------------

# http METHOD PATH [curl args...]: prints the body, a newline and the
# status code (000 when nothing answered).
http() {
	local method=$1 path=$2
	shift 2
	if [ "$mode" = native ]; then
		curl -sS --max-time 120 -X "$method" -w '\n%{http_code}' "$@" "$url$path" 2>/dev/null ||
			printf '\n000'
	else
		"$engine" exec "$gateway" curl -sS --max-time 120 -X "$method" \
			-w '\n%{http_code}' "$@" "http://prometheus:9090$path" 2>/dev/null ||
			printf '\n000'
	fi
}

where() {
	if [ "$mode" = native ]; then
		echo "$url"
	else
		echo "prometheus:9090 (compose project $project)"
	fi
}

# json_field NAME: the first string or number value of "NAME" in stdin
# (Prometheus's compact JSON and the manifest's one-key-per-line layout).
json_field() {
	sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}]*.*/\1/p" | head -1
}

# query_count TIME: the check query's value at TIME (0 with no series).
query_count() {
	local resp code body
	resp=$(http GET /api/v1/query -G --data-urlencode "query=$CHECK_QUERY" \
		--data-urlencode "time=$1")
	code=${resp##*$'\n'}
	body=${resp%$'\n'*}
	[ "$code" = 200 ] || die "query at $(where) answered $code: ${body:0:300}"
	if [[ $body =~ \"value\":\[[0-9.e+-]+,\"([0-9]+)\"\] ]]; then
		echo "${BASH_REMATCH[1]}"
	elif [[ $body =~ \"result\":\[\] ]]; then
		echo 0
	else
		die "unexpected query answer from $(where): ${body:0:300}"
	fi
}

wait_ready() {
	local deadline=$((SECONDS + timeout)) resp
	while :; do
		resp=$(http GET /-/ready)
		[ "${resp##*$'\n'}" = 200 ] && return 0
		[ $SECONDS -lt $deadline ] || die "Prometheus not ready at $(where) after ${timeout}s"
		sleep 2
	done
}

# --- compose ------------------------------------------------------------------

# container SERVICE [-a]: the id of the project's container of SERVICE.
container() {
	local ids
	ids=$("$engine" ps -q ${2:+"$2"} \
		--filter "label=com.docker.compose.project=$project" \
		--filter "label=com.docker.compose.service=$1") ||
		die "$engine ps failed"
	[ -n "$ids" ] || return 1
	[ "$(wc -l <<<"$ids")" -eq 1 ] || die "more than one $1 container in project $project"
	echo "$ids"
}

compose_setup() {
	if [ -z "$engine" ]; then
		if command -v docker >/dev/null; then engine=docker; else engine=podman; fi
	fi
	command -v "$engine" >/dev/null || die "$engine not found (--engine docker|podman)"
	prometheus=$(container prometheus -a) ||
		die "no prometheus container in compose project \"$project\" ($engine; --project NAME)"
	if [ "$cmd" != restore ] || [ "$(state "$prometheus")" = running ]; then
		gateway=$(container gateway) ||
			die "the gateway of compose project \"$project\" is not running: its curl reaches Prometheus"
	fi
}

state() { "$engine" inspect -f '{{.State.Status}}' "$1"; }

# --- archives -----------------------------------------------------------------

# fetch ARCHIVE: a local path to it (s3:// is downloaded into $work).
fetch() {
	local src=$1
	if [[ $src != s3://* ]]; then
		[ -f "$src" ] || die "no archive $src"
		echo "$src"
		return
	fi
	command -v aws >/dev/null || die -5 "the aws CLI is not installed: download $src yourself"
	aws s3 cp --only-show-errors "$src" "$work/${src##*/}" >&2 || die "aws s3 cp $src failed"
	aws s3 cp --only-show-errors "$src.sha256" "$work/${src##*/}.sha256" >&2 ||
		say "no $src.sha256 in S3; checking the archive's contents only"
	echo "$work/${src##*/}"
}

# unpack ARCHIVE DIR: checks ARCHIVE and unpacks it into DIR; exits 3 with
# the reason when anything does not match.
unpack() {
	local a=$1 dir=$2 want got bad listed present
	if [ -f "$a.sha256" ]; then
		want=$(awk 'NR == 1 {print $1}' "$a.sha256")
		got=$(sha256sum "$a" | awk '{print $1}')
		[ "$want" = "$got" ] ||
			die -3 "$a: checksum mismatch (sha256 $got, $a.sha256 says $want): the archive is damaged; nothing was changed"
	else
		say "no $a.sha256 beside the archive; checking its contents only"
	fi
	listed=$(tar -tzf "$a" 2>"$work/tar.err") ||
		die -3 "$a: not a readable .tar.gz ($(grep -v -e 'not recoverable' -e '^$' "$work/tar.err" | head -2 | paste -sd ' ')); nothing was changed"
	bad=$(grep -vxE 'manifest\.json|SHA256SUMS|data/?|data/[A-Za-z0-9._/-]+' <<<"$listed" |
		head -3 || true)
	[ -z "$bad" ] || die -3 "$a: unexpected member(s): $bad; nothing was changed"
	! grep -qE '(^|/)\.\.(/|$)' <<<"$listed" || die -3 "$a: a member path contains \"..\""
	mkdir -p "$dir"
	tar -xzf "$a" -C "$dir" --no-same-owner ||
		die -3 "$a: unpacking failed; nothing was changed"
	if ! [ -f "$dir/manifest.json" ] || ! [ -f "$dir/SHA256SUMS" ] || ! [ -d "$dir/data" ]; then
		die -3 "$a: manifest.json, SHA256SUMS or data/ missing; nothing was changed"
	fi
	[ -z "$(find "$dir" ! -type f ! -type d)" ] || die -3 "$a: holds links or special files"
	[ "$(json_field format <"$dir/manifest.json")" = "$FORMAT" ] ||
		die -3 "$a: manifest.json is not $FORMAT"
	want=$(json_field sha256sums <"$dir/manifest.json")
	got=$(sha256sum "$dir/SHA256SUMS" | awk '{print $1}')
	[ "$want" = "$got" ] || die -3 "$a: SHA256SUMS does not match the manifest's sha256sums"
	if ! bad=$(cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS 2>&1); then
		die -3 "$a: checksum mismatch: $(head -5 <<<"$bad" | tr '\n' ' ')- the archive is damaged; nothing was changed"
	fi
	listed=$(sed 's/^[0-9a-f]\{64\}  //' "$dir/SHA256SUMS" | sort)
	present=$(cd "$dir" && find data -type f | sort)
	[ "$listed" = "$present" ] ||
		die -3 "$a: files under data/ differ from SHA256SUMS: $(diff <(echo "$listed") <(echo "$present") | grep '^[<>]' | head -3 | tr '\n' ' ')"
	while read -r ulid; do
		[ -f "$dir/data/$ulid/meta.json" ] || die -3 "$a: block $ulid of the manifest is not in data/"
	done < <(blocks_of "$dir/manifest.json" | awk '{print $1}')
	[ "$(find "$dir/data" -mindepth 1 -maxdepth 1 | wc -l)" -eq "$(blocks_of "$dir/manifest.json" | wc -l)" ] ||
		die -3 "$a: data/ holds other entries than the manifest's blocks"
}

# blocks_of MANIFEST: "ULID MIN_TIME MAX_TIME" per block.
blocks_of() {
	sed -n 's/^    {"ulid": "\([0-9A-Z]*\)", "min_time": \([0-9-]*\), "max_time": \([0-9-]*\),.*/\1 \2 \3/p' "$1"
}

json_str() { # a JSON string of $1
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/\\t}
	s=${s//$'\n'/\\n}
	printf '"%s"' "$s"
}

# --- backup -------------------------------------------------------------------

backup() {
	local resp code body version revision check_time check_value name src blocks meta
	local ulid mint maxt samples series bytes min_all='' max_all='' nfiles nbytes base first=1

	mkdir -p "$out" || die "cannot make $out"
	[ -w "$out" ] || die "$out is not writable"
	if [ -n "$s3" ] && ! command -v aws >/dev/null; then
		say "--s3: the aws CLI is not installed; the archive will stay in $out only"
	fi

	resp=$(http GET /api/v1/status/buildinfo)
	code=${resp##*$'\n'}
	body=${resp%$'\n'*}
	[ "$code" = 200 ] || die "Prometheus at $(where) answered $code to /api/v1/status/buildinfo: ${body:0:200}"
	version=$(json_field version <<<"$body")
	revision=$(json_field revision <<<"$body")

	# What the check query counts now; every sample behind it is older than
	# the snapshot, so a restore must count at least as many.
	check_time=$(date +%s.%3N)
	check_value=$(query_count "$check_time")

	resp=$(http POST /api/v1/admin/tsdb/snapshot)
	code=${resp##*$'\n'}
	body=${resp%$'\n'*}
	if [[ $body == *"admin APIs disabled"* ]]; then
		die "Prometheus at $(where) runs without --web.enable-admin-api: the snapshot needs it"
	fi
	[ "$code" = 200 ] || die "snapshot at $(where) answered $code: ${body:0:300}"
	name=$(json_field name <<<"$body")
	[[ $name =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]+$ ]] || die "unexpected snapshot answer: ${body:0:300}"

	snapshot=$name
	if [ "$mode" = native ]; then
		src=$data_dir/snapshots/$name
		[ -d "$src" ] ||
			die "snapshot $name is not in $data_dir/snapshots: is --data-dir the --storage.tsdb.path of the Prometheus at $url? (remove snapshots/$name from its real data directory)"
	else
		src=$work/data
		"$engine" cp "$prometheus:/prometheus/snapshots/$name" "$src" >/dev/null ||
			die "$engine cp of /prometheus/snapshots/$name failed"
	fi
	[ -z "$(find "$src" ! -type f ! -type d)" ] || die "the snapshot holds links or special files"

	blocks=
	for meta in "$src"/*/meta.json; do
		[ -f "$meta" ] || continue
		ulid=$(json_field ulid <"$meta")
		mint=$(json_field minTime <"$meta")
		maxt=$(json_field maxTime <"$meta")
		samples=$(json_field numSamples <"$meta")
		series=$(json_field numSeries <"$meta")
		bytes=$(du -sb "${meta%/meta.json}" | awk '{print $1}')
		[[ $ulid =~ ^[0-9A-Z]{26}$ && $mint =~ ^-?[0-9]+$ && $maxt =~ ^-?[0-9]+$ ]] ||
			die "unreadable block meta: $meta"
		[ "$ulid" = "$(basename "${meta%/meta.json}")" ] || die "$meta names block $ulid"
		{ [ -z "$min_all" ] || [ "$mint" -lt "$min_all" ]; } && min_all=$mint
		{ [ -z "$max_all" ] || [ "$maxt" -gt "$max_all" ]; } && max_all=$maxt
		[ $first = 1 ] || blocks+=$',\n'
		first=0
		blocks+="    {\"ulid\": \"$ulid\", \"min_time\": $mint, \"max_time\": $maxt, \"samples\": ${samples:-0}, \"series\": ${series:-0}, \"bytes\": $bytes}"
	done
	[ -n "$blocks" ] || die "snapshot $name holds no block: Prometheus has no data yet"
	[ "$(find "$src" -mindepth 1 -maxdepth 1 | wc -l)" -eq "$(grep -c '"ulid"' <<<"$blocks")" ] ||
		die "snapshot $name holds other entries than blocks"

	(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) |
		sed 's,  \./,  data/,' >"$work/SHA256SUMS"
	nfiles=$(wc -l <"$work/SHA256SUMS")
	nbytes=$(du -sb "$src" | awk '{print $1}')
	{
		printf '{\n'
		printf '  "format": "%s",\n' "$FORMAT"
		printf '  "created": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		printf '  "snapshot": "%s",\n' "$name"
		printf '  "source": %s,\n' "$(json_str "$(where)${data_dir:+, data dir $data_dir}")"
		printf '  "prometheus_version": %s,\n' "$(json_str "$version")"
		printf '  "prometheus_revision": %s,\n' "$(json_str "$revision")"
		printf '  "min_time": %s,\n' "$min_all"
		printf '  "max_time": %s,\n' "$max_all"
		printf '  "check_query": %s,\n' "$(json_str "$CHECK_QUERY")"
		printf '  "check_time": %s,\n' "$check_time"
		printf '  "check_value": %s,\n' "$check_value"
		printf '  "files": %s,\n' "$nfiles"
		printf '  "bytes": %s,\n' "$nbytes"
		printf '  "sha256sums": "%s",\n' "$(sha256sum "$work/SHA256SUMS" | awk '{print $1}')"
		printf '  "blocks": [\n%s\n  ]\n}\n' "$blocks"
	} >"$work/manifest.json"

	base=prometheus-$name.tar.gz
	tar -czf "$out/.$base.partial" --sort=name --owner=0 --group=0 --numeric-owner \
		-C "$work" manifest.json SHA256SUMS \
		-C "$src" --transform 's,^\.,data,' . ||
		{ rm -f "$out/.$base.partial"; die "writing $out/$base failed"; }
	mv "$out/.$base.partial" "$out/$base"
	(cd "$out" && sha256sum "$base" >"$base.sha256")
	say "$out/$base: $(grep -c '"ulid"' <<<"$blocks") blocks, $nfiles files, $nbytes bytes," \
		"$(date -u -d "@$((min_all / 1000))" +%FT%TZ) to $(date -u -d "@$((max_all / 1000))" +%FT%TZ)"
	echo "$out/$base"

	if [ -n "$keep" ]; then
		find "$out" -maxdepth 1 -name 'prometheus-*.tar.gz' -printf '%f\n' | sort -r |
			tail -n +$((keep + 1)) | while read -r old; do
			rm -f "$out/$old" "$out/$old.sha256"
			say "removed $out/$old (--keep $keep)"
		done
	fi
	if [ -n "$s3" ]; then
		command -v aws >/dev/null ||
			die -5 "--s3: the aws CLI is not installed; $out/$base was not uploaded (copy it and its .sha256 to $s3 yourself)"
		if ! aws s3 cp --only-show-errors "$out/$base" "$s3/$base" ||
			! aws s3 cp --only-show-errors "$out/$base.sha256" "$s3/$base.sha256"; then
			die "aws s3 cp to $s3 failed; the archive is kept in $out"
		fi
		say "uploaded to $s3/$base"
	fi
}

# --- restore ------------------------------------------------------------------

# Runs in the target (this host or a one-off container of Prometheus's
# image, busybox or Debian): unpacks the tar on stdin next to the data,
# then replaces the directory's contents with it. $1 is the data directory.
# shellcheck disable=SC2016 # expanded by that shell
readonly SWAP='set -eu
cd "$1"
rm -rf .restore-tmp
mkdir .restore-tmp
tar -x -f - -C .restore-tmp
for f in * .[!.]* ..?*; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	[ "$f" = .restore-tmp ] || rm -rf "$f"
done
for f in .restore-tmp/*; do mv "$f" .; done
rmdir .restore-tmp'

# looks_like_tsdb DIR: whether a non-empty DIR is a Prometheus data directory.
looks_like_tsdb() {
	[ -d "$1/wal" ] || [ -d "$1/chunks_head" ] ||
		[ -n "$(find "$1" -mindepth 2 -maxdepth 2 -name meta.json -print -quit)" ]
}

restore_native() {
	local staged=$1 pids entries owner
	if [ -n "$url" ] && [ "$(http GET /-/ready | tail -1)" != 000 ]; then
		die -4 "Prometheus answers at $url: stop it before restoring into $data_dir"
	fi
	mkdir -p "$data_dir"
	pids=$(find /proc/[0-9]*/fd -lname "$(realpath "$data_dir")/*" 2>/dev/null |
		cut -d/ -f3 | sort -u | paste -sd ' ' || true)
	[ -z "$pids" ] || die -4 "process(es) $pids have files open in $data_dir: stop Prometheus first"
	entries=$(find "$data_dir" -mindepth 1 -maxdepth 1 -printf '%f ')
	entries=${entries% }
	entries=${entries:0:200}
	if [ -n "$entries" ]; then
		[ "$force" = 1 ] ||
			die -4 "$data_dir is not empty ($entries): --force replaces its contents"
		looks_like_tsdb "$data_dir" ||
			die -4 "$data_dir is not empty and does not look like a Prometheus data directory ($entries); not touching it"
	fi
	tar -C "$staged/data" -cf - . | sh -c "$SWAP" swap "$data_dir" ||
		die "replacing the contents of $data_dir failed"
	owner=$(stat -c %u:%g "$data_dir")
	[ "$(id -u)" != 0 ] || chown -R "$owner" "$data_dir"
	say "restored $(blocks_of "$staged/manifest.json" | wc -l) blocks into $data_dir;" \
		"start Prometheus, then: $0 verify --url URL ARCHIVE"
}

restore_compose() {
	local staged=$1 mounts vtype vname vsource mount image user entries was limit opts
	mounts=$("$engine" inspect -f \
		'{{range .Mounts}}{{if eq .Destination "/prometheus"}}{{.Type}} {{.Name}} {{.Source}}{{end}}{{end}}' \
		"$prometheus")
	read -r vtype vname vsource <<<"$mounts"
	case $vtype in
	volume) mount=$vname ;;
	bind) mount=$vsource ;;
	*) die "Prometheus's /prometheus is not a volume or bind mount (${mounts:-none})" ;;
	esac
	image=$("$engine" inspect -f '{{.Image}}' "$prometheus")
	user=$("$engine" inspect -f '{{.Config.User}}' "$prometheus")
	# The one-off container is Prometheus's own twin: same image, user,
	# volume and ulimits (podman's default nofile can exceed the host's).
	opts=(--rm -i --network none --cap-drop ALL --security-opt no-new-privileges)
	[ -z "$user" ] || opts+=(--user "$user")
	for limit in $("$engine" inspect -f \
		'{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}} {{end}}' "$prometheus"); do
		limit=${limit#RLIMIT_}
		limit=${limit,,}
		[[ $limit =~ ^[a-z]+=-?[0-9]+:-?[0-9]+$ ]] && opts+=(--ulimit "$limit")
	done
	one_off() { # CMD ARGS...: sh -c CMD in that container
		"$engine" run "${opts[@]}" -v "$mount:/prometheus" --entrypoint /bin/sh "$image" -c "$@"
	}
	# shellcheck disable=SC2016
	entries=$(one_off 'ls -A "$1" | head -5 | tr "\n" " "' ls /prometheus </dev/null) ||
		die "could not look into $mount"
	[ -z "$entries" ] || [ "$force" = 1 ] ||
		die -4 "the data volume $mount is not empty ($entries): --force replaces Prometheus's data"

	was=$(state "$prometheus")
	if [ "$was" = running ]; then
		say "stopping Prometheus ($engine stop; alerts and the SLO gap until it is back)"
		"$engine" stop -t 60 "$prometheus" >/dev/null || die "$engine stop failed"
	fi
	if ! tar -C "$staged/data" -cf - . | one_off "$SWAP" swap /prometheus; then
		"$engine" start "$prometheus" >/dev/null || true
		die "replacing the contents of $mount failed; Prometheus started again on what is there"
	fi
	"$engine" start "$prometheus" >/dev/null || die "$engine start $prometheus failed"
	[ -n "${gateway:-}" ] || gateway=$(container gateway) ||
		die "restored, but the gateway is not running: start it, then run verify"
	say "restored $(blocks_of "$staged/manifest.json" | wc -l) blocks into $mount; waiting for Prometheus"
	wait_ready
	# A restarted container may have a new address; a reload makes the
	# gateway resolve it now rather than within its resolve_interval.
	"$engine" kill -s HUP "$gateway" >/dev/null || say "could not send HUP to the gateway"
	verify_staged "$staged"
}

# verify_staged DIR: the checks of `verify` against an unpacked archive.
verify_staged() {
	local m=$1/manifest.json t want got ulid mint maxt at n failed=0
	t=$(json_field check_time <"$m")
	want=$(json_field check_value <"$m")
	got=$(query_count "$t")
	if [ "$got" -lt "$want" ]; then
		say "at $(date -u -d "@${t%.*}" +%FT%TZ) $(where) counts $got series; the backup counted $want"
		failed=1
	fi
	while read -r ulid mint maxt; do
		at=$(((maxt - 1) / 1000)).$(printf '%03d' $(((maxt - 1) % 1000)))
		n=$(query_count "$at")
		if [ "$n" -eq 0 ]; then
			say "block $ulid ($(date -u -d "@$((mint / 1000))" +%FT%TZ) to $(date -u -d "@$((maxt / 1000))" +%FT%TZ)):" \
				"no data at its end; older than the retention (--storage.tsdb.retention.time)?"
			failed=1
		fi
	done < <(blocks_of "$m")
	[ $failed = 0 ] || die "verification against $(where) failed"
	say "verified: $got series at the backup's time (backup: $want), every block's data present"
}

main() {
	parse_args "$@"
	[ "$cmd" = check ] || [ "$mode" = native ] || compose_setup
	if [ "$mode" = native ] || [ "$cmd" = check ]; then
		command -v curl >/dev/null || [ "$cmd" = check ] || die "curl not found"
	fi
	mkdir -p "$tmpdir"
	work=$(mktemp -d "$tmpdir/prometheus-backup.XXXXXX")
	case $cmd in
	backup) backup ;;
	*)
		local a
		a=$(fetch "$archive")
		unpack "$a" "$work/staged"
		case $cmd in
		check) say "$a: ok ($(blocks_of "$work/staged/manifest.json" | wc -l) blocks, checksums match)" ;;
		verify) verify_staged "$work/staged" ;;
		restore) if [ "$mode" = native ]; then restore_native "$work/staged"; else restore_compose "$work/staged"; fi ;;
		esac
		;;
	esac
}

main "$@"
