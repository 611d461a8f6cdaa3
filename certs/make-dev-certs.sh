#!/usr/bin/env bash
# make-dev-certs.sh - a local development CA and a server certificate
# signed by it, with the openssl CLI.
#
#   certs/make-dev-certs.sh [-d DIR] [NAME...]
#
# DIR defaults to certs/ beside this script; NAMEs (DNS names or IP
# addresses, the first one is also the CN) default to
# "localhost 127.0.0.1 prometheus.local". Writes into DIR:
#   dev-ca.key, dev-ca.crt   the CA: ECDSA P-256, 10 years, CA:TRUE
#   server.key, server.crt   ECDSA P-256, 825 days, serverAuth, the SANs
#                            (signed by the CA directly: no chain to add)
# Refuses to overwrite any of them: remove them first to start over. An
# existing CA (both dev-ca files) is reused to sign a new server
# certificate. Key files are mode 0600. Trust dev-ca.crt in the browser or
# with `curl --cacert certs/dev-ca.crt`.
set -euo pipefail

usage() {
	echo "usage: $0 [-d DIR] [NAME...]" >&2
	exit 2
}

die() {
	echo "make-dev-certs: $*" >&2
	exit 1
}

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
while getopts "d:h" opt; do
	case "$opt" in
	d) dir="$OPTARG" ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
if [ "$#" -eq 0 ]; then
	set -- localhost 127.0.0.1 prometheus.local
fi

command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
mkdir -p "$dir"

ca_key="$dir/dev-ca.key"
ca_crt="$dir/dev-ca.crt"
srv_key="$dir/server.key"
srv_crt="$dir/server.crt"

for f in "$srv_key" "$srv_crt"; do
	[ ! -e "$f" ] || die "$f exists; not overwriting it (remove it to make a new one)"
done
if [ -e "$ca_key" ] || [ -e "$ca_crt" ]; then
	if [ ! -e "$ca_key" ] || [ ! -e "$ca_crt" ]; then
		die "only one of $ca_key and $ca_crt exists; not overwriting it"
	fi
	reuse_ca=1
else
	reuse_ca=0
fi

# subjectAltName: IP: for address literals, DNS: for the rest.
san=""
for name in "$@"; do
	if [[ "$name" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || "$name" == *:* ]]; then
		san="${san:+$san,}IP:$name"
	elif [[ "$name" =~ ^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$ ]]; then
		san="${san:+$san,}DNS:$name"
	else
		die "\"$name\" is not a DNS name or an IP address"
	fi
done

# Files are made in a private directory inside DIR (so on the same file
# system), then linked into place: ln never replaces an existing file.
umask 077
work="$(mktemp -d "$dir/.make-dev-certs.XXXXXX")"
trap 'rm -rf "$work"' EXIT

place() { # place TMPFILE DEST MODE
	chmod "$3" "$1"
	ln "$1" "$2" 2>/dev/null || die "cannot create $2 (it exists now?); not overwriting it"
	rm -f "$1"
}

if [ "$reuse_ca" -eq 0 ]; then
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$work/ca.key" -out "$work/ca.crt" \
		-sha256 -days 3650 -subj "/CN=portcullis development CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" 2>/dev/null ||
		die "cannot make the CA"
	place "$work/ca.key" "$ca_key" 0600
	place "$work/ca.crt" "$ca_crt" 0644
fi

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/server.key" -out "$work/server.csr" \
	-subj "/CN=$1" 2>/dev/null || die "cannot make the server key"
cat >"$work/ext.cnf" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
EOF
# 825 days: the longest validity Apple platforms accept for a server
# certificate from a CA the user added.
openssl x509 -req -in "$work/server.csr" -CA "$ca_crt" -CAkey "$ca_key" \
	-CAcreateserial -CAserial "$work/ca.srl" -sha256 -days 825 \
	-extfile "$work/ext.cnf" -out "$work/server.crt" 2>/dev/null ||
	die "cannot sign the server certificate"
openssl verify -CAfile "$ca_crt" "$work/server.crt" >/dev/null ||
	die "the new server certificate does not verify"
place "$work/server.key" "$srv_key" 0600
place "$work/server.crt" "$srv_crt" 0644

echo "CA:     $ca_crt$([ "$reuse_ca" -eq 1 ] && echo ' (existing)')"
echo "server: $srv_crt and $srv_key for $san"
echo "trust:  curl --cacert $ca_crt https://HOST:PORT/ (or import it in the browser)"
