"""Debian's sslscan finds no weak protocol, cipher or key exchange on a TLS
listener that holds an RSA and an ECDSA certificate: TLS 1.2 and 1.3
enabled, SSLv2/SSLv3/TLS 1.0/TLS 1.1 disabled, every accepted suite an
ECDHE (or TLS 1.3) AEAD suite."""

import re
import subprocess

import pytest

SSLSCAN = "/usr/bin/sslscan"
SANS = ["gw.test", "localhost", "127.0.0.1"]

# TLS 1.3 suites are all AEAD; these are the ones OpenSSL knows.
TLS13_AEAD = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
              "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
              "TLS_AES_128_CCM_8_SHA256"}
TLS12_AEAD = re.compile(
    r"^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$")
WEAK_MARKS = ("CBC", "RC4", "3DES", "DES-", "NULL", "EXP", "MD5", "PSK",
              "SRP", "ANON", "ADH", "AECDH", "CAMELLIA", "ARIA", "SEED",
              "IDEA")


@pytest.fixture
def scan(tls_gateway, tls_certs):
    g = tls_gateway([tls_certs.pair("gw.test", "ecdsa", SANS),
                     tls_certs.pair("gw.test", "rsa", SANS)])
    p = subprocess.run([SSLSCAN, "--no-colour", "127.0.0.1:%d" % g.tls_port],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, "sslscan exit %d\n%s" % (p.returncode, out)
    assert "Connected to 127.0.0.1" in out, out
    assert g.proc.alive(), "the gateway died under sslscan\n" + \
        g.diagnostics()
    return out


def section(out, title):
    """The lines of sslscan's section `title` (up to the next blank line)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == title:
            body = []
            for l in lines[i + 1:]:
                if not l.strip():
                    break
                body.append(l)
            return body
    raise AssertionError("no %r section in sslscan's output:\n%s"
                         % (title, out))


def test_protocols(scan):
    got = {}
    for line in section(scan, "SSL/TLS Protocols:"):
        name, state = line.split()
        got[name] = state
    assert got == {"SSLv2": "disabled", "SSLv3": "disabled",
                   "TLSv1.0": "disabled", "TLSv1.1": "disabled",
                   "TLSv1.2": "enabled", "TLSv1.3": "enabled"}, scan


def test_only_aead_suites(scan):
    lines = section(scan, "Supported Server Cipher(s):")
    accepted = []
    for line in lines:
        m = re.match(r"^(Preferred|Accepted)\s+(TLSv1\.[0-3]|SSLv[23])\s+"
                     r"(\d+) bits\s+(\S+)\s*(.*)$", line)
        assert m, "unparsed sslscan cipher line %r" % line
        accepted.append(m.groups()[1:])
    versions = {a[0] for a in accepted}
    assert versions == {"TLSv1.2", "TLSv1.3"}, scan
    bad = []
    for version, bits, name, kx in accepted:
        if version == "TLSv1.3":
            ok = name in TLS13_AEAD
        else:
            ok = TLS12_AEAD.match(name) is not None
        upper = name.upper()
        if any(mark in upper for mark in WEAK_MARKS) or \
                upper.endswith("-SHA") or int(bits) < 128:
            ok = False
        # ECDHE shows as "Curve 25519 DHE 253" or "Curve P-256 DHE 256";
        # finite-field DHE as "DHE 2048 bits".
        if kx and not re.match(r"^Curve \S+ DHE \d+$", kx):
            ok = False
        if not ok:
            bad.append("%s %s %s" % (version, name, kx))
    assert not bad, "non-AEAD or weak suites accepted: %r\n%s" % (bad, scan)
    names = {a[2] for a in accepted}
    # both certificates serve: ECDSA and RSA suites are there
    assert any(n.startswith("ECDHE-ECDSA-") for n in names), scan
    assert any(n.startswith("ECDHE-RSA-") for n in names), scan


def test_no_weak_groups_or_known_flaws(scan):
    for line in section(scan, "Server Key Exchange Group(s):"):
        m = re.match(r"^(TLSv1\.[23])\s+(\d+) bits\s+(\S+)", line)
        assert m, "unparsed group line %r" % line
        version, bits, group = m.groups()
        assert int(bits) >= 112, "weak group %r" % line
        if version == "TLSv1.2":  # ECDHE only: no finite-field groups
            assert not group.startswith("ffdhe"), line
    assert "Insecure session renegotiation supported" not in scan, scan
    assert "Compression enabled" not in scan, scan
    for version in ("TLSv1.3", "TLSv1.2"):
        assert "%s not vulnerable to heartbleed" % version in scan, scan
