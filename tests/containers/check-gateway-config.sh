#!/usr/bin/env bash
# portcullis -t on gateway/portcullis.json, the compose config, outside a
# container. Its htpasswd files live at container paths (/run/secrets/...),
# so the check runs in a private mount namespace with a throw-away /run that
# holds a generated htpasswd file for each; nothing on the host changes.
# Usage: tests/containers/check-gateway-config.sh [PORTCULLIS_BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-${PORTCULLIS_BIN:-build/bin/portcullis}}")
config=$(realpath gateway/portcullis.json)
[ -x "$bin" ] || {
	echo "check-gateway-config: no $bin (make build)" >&2
	exit 2
}
# root: a mount namespace; otherwise a user namespace with one as well.
ns=(unshare --mount)
[ "$(id -u)" -eq 0 ] || ns=(unshare --map-root-user --mount)
line=$(head -c 18 /dev/urandom | base64 | "$bin" passwd -C 4 check)
# shellcheck disable=SC2016 # expanded by the inner shell
exec "${ns[@]}" sh -euc '
	mount -t tmpfs -o mode=0755 portcullis-check /run
	mkdir /run/secrets
	for f in $(grep -o "/run/secrets/[A-Za-z0-9_.-]*" "$2" | sort -u); do
		printf "%s\n" "$3" > "$f"
	done
	exec "$1" -t -c "$2"
' check "$bin" "$config" "$line"
