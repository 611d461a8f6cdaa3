"""TLS listeners speak TLS 1.3 and 1.2 only, with ECDHE + AEAD suites only
(no CBC, no RSA key exchange, no DHE), and ALPN http/1.1. Checked with
/usr/bin/openssl s_client against a gateway that holds an ECDSA and an RSA
certificate for the same name, so a refused RSA or ECDSA suite is refused
by policy, not for want of a matching certificate."""

import re

import pytest

import gwtest
from conftest import SMALL_TXT

# Lets OpenSSL 3's client offer what its default security level forbids
# (TLS 1.0/1.1, SHA-1 suites), so that a refusal comes from the server.
LEGACY = ("-cipher", "DEFAULT@SECLEVEL=0")

SANS = ["gw.test", "localhost", "127.0.0.1"]


@pytest.fixture
def gw(tls_gateway, tls_certs):
    g = tls_gateway([tls_certs.pair("gw.test", "ecdsa", SANS),
                     tls_certs.pair("gw.test", "rsa", SANS)])
    return g


def get_through(gw, tag, *args):
    """s_client with ARGS, a GET /static/small.txt?case=tag through it."""
    return gwtest.s_client(gw.tls_port, "-servername", "gw.test", *args,
                           request=gwtest.http_get_bytes(
                               "/static/small.txt?case=%s" % tag))


def assert_served(gw, tag, rc, out, protocol):
    sess = gwtest.s_client_session(out)
    assert sess is not None and sess[:2] == ("New", protocol), out
    assert re.search(r"^\s*Protocol\s*: %s$" % re.escape(protocol), out,
                     re.M), out
    assert "HTTP/1.1 200 OK\r\n" in out, out
    assert SMALL_TXT.decode() in out, out
    # the request reached nginx, marked as having come over https
    e = gw.nginx.wait_for_uri("/small.txt?case=%s" % tag)
    assert e["x_forwarded_proto"] == "https", e
    assert rc == 0, "s_client exit %d\n%s" % (rc, out)
    return sess


@pytest.mark.parametrize("args,protocol", [
    (("-tls1_3",), "TLSv1.3"),
    (("-tls1_2",), "TLSv1.2"),
    # the legacy flags alone do not make a handshake fail
    (("-tls1_2",) + LEGACY, "TLSv1.2"),
], ids=["tls1_3", "tls1_2", "tls1_2-seclevel0"])
def test_supported_protocols(gw, args, protocol):
    tag = args[0].strip("-") + str(len(args))
    rc, out = get_through(gw, tag, *args)
    sess = assert_served(gw, tag, rc, out, protocol)
    if protocol == "TLSv1.2":
        assert sess[2].startswith("ECDHE-") and (
            "-GCM-" in sess[2] or sess[2].endswith("CHACHA20-POLY1305")), \
            "TLS 1.2 negotiated %s, not ECDHE + AEAD" % sess[2]


@pytest.mark.parametrize("cipher", [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
])
def test_aead_tls12_suites_accepted(gw, cipher):
    tag = cipher.lower()
    rc, out = get_through(gw, tag, "-tls1_2", "-cipher", cipher)
    sess = assert_served(gw, tag, rc, out, "TLSv1.2")
    assert sess[2] == cipher, out


@pytest.mark.parametrize("args", [
    pytest.param(("-tls1_1",) + LEGACY, id="tls1_1"),
    pytest.param(("-tls1",) + LEGACY, id="tls1"),
    # Debian's OpenSSL 3 s_client is built without SSLv3 ("Unknown option:
    # -ssl3"): it cannot even offer it. test_tls_sslscan checks SSLv3 (and
    # SSLv2) disabled instead.
    pytest.param(("-ssl3",), id="ssl3", marks=pytest.mark.skip(
        reason="s_client has no -ssl3; covered by sslscan")),
])
def test_old_protocols_refused(gw, args):
    rc, out = gwtest.s_client(gw.tls_port, "-servername", "gw.test", *args)
    assert rc != 0, "s_client %s succeeded:\n%s" % (" ".join(args), out)
    assert gwtest.s_client_refused(out), \
        "no refusal (alert) from the server for %s:\n%s" % (args[0], out)
    assert "HTTP/1.1" not in out


@pytest.mark.parametrize("cipher", [
    "ECDHE-RSA-AES128-SHA",      # CBC, SHA-1 MAC
    "ECDHE-ECDSA-AES128-SHA",    # CBC, SHA-1 MAC
    "ECDHE-ECDSA-AES128-SHA256",  # CBC
    "ECDHE-RSA-AES256-SHA384",   # CBC
    "AES128-GCM-SHA256",         # RSA key exchange
    "AES256-GCM-SHA384",         # RSA key exchange
    "DHE-RSA-AES128-GCM-SHA256",  # finite-field DHE
    "DHE-RSA-CHACHA20-POLY1305",  # finite-field DHE
])
def test_weak_tls12_suites_refused(gw, cipher):
    rc, out = gwtest.s_client(gw.tls_port, "-servername", "gw.test",
                              "-tls1_2", "-cipher", cipher + ":@SECLEVEL=0")
    assert rc != 0, "the server accepted %s:\n%s" % (cipher, out)
    assert gwtest.s_client_refused(out), \
        "no refusal (alert) from the server for %s:\n%s" % (cipher, out)


def test_alpn_http11(gw):
    rc, out = get_through(gw, "alpn", "-alpn", "h2,http/1.1")
    assert_served(gw, "alpn", rc, out, "TLSv1.3")
    assert re.search(r"^ALPN protocol: http/1\.1$", out, re.M), out
