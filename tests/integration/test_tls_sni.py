"""SNI picks among several certificates: the first is the default (no SNI,
or a name no certificate holds); a.test has an ECDSA and an RSA
certificate, and the client's signature algorithms (or, in TLS 1.2, its
cipher suites) choose between them."""

import re
import ssl

import pytest

import gwtest


@pytest.fixture
def gw(tls_gateway, tls_certs):
    g = tls_gateway([tls_certs.pair("a.test", "ecdsa"),
                     tls_certs.pair("b.test", "ecdsa"),
                     tls_certs.pair("a.test", "rsa")])
    g.pairs = {"a-ecdsa": tls_certs.pair("a.test", "ecdsa"),
               "b-ecdsa": tls_certs.pair("b.test", "ecdsa"),
               "a-rsa": tls_certs.pair("a.test", "rsa")}
    return g


def served_der(out):
    """DER of the server's certificate shown by s_client."""
    m = re.search(r"-----BEGIN CERTIFICATE-----\n.*?"
                  r"-----END CERTIFICATE-----\n", out, re.S)
    assert m, "no certificate in s_client's output:\n%s" % out
    return ssl.PEM_cert_to_DER_cert(m.group(0))


CASES = [
    # (id, s_client args, expected pair, key summary)
    ("sni-b", ("-servername", "b.test"), "b-ecdsa", "ECDSA"),
    ("sni-a", ("-servername", "a.test"), "a-?", None),
    ("sni-unknown", ("-servername", "unknown.test"), "a-?", None),
    ("no-sni", ("-noservername",), "a-?", None),
    ("a-ecdsa-sigalgs", ("-servername", "a.test", "-sigalgs",
                         "ECDSA+SHA256"), "a-ecdsa", "ECDSA"),
    ("a-rsa-sigalgs", ("-servername", "a.test", "-sigalgs",
                       "RSA-PSS+SHA256:RSA+SHA256"), "a-rsa", "RSA"),
    ("a-rsa-sigalgs-no-sni", ("-noservername", "-sigalgs",
                              "RSA-PSS+SHA256:RSA+SHA256"), "a-rsa", "RSA"),
    ("b-tls12", ("-tls1_2", "-servername", "b.test"), "b-ecdsa", "ECDSA"),
    ("a-rsa-tls12-suite", ("-tls1_2", "-servername", "a.test", "-cipher",
                           "ECDHE-RSA-AES128-GCM-SHA256"), "a-rsa", "RSA"),
    ("a-ecdsa-tls12-suite", ("-tls1_2", "-servername", "a.test", "-cipher",
                             "ECDHE-ECDSA-AES128-GCM-SHA256"), "a-ecdsa",
     "ECDSA"),
]


@pytest.mark.parametrize("args,want,key", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_certificate_choice(gw, args, want, key):
    rc, out = gwtest.s_client(gw.tls_port, *args,
                              request=gwtest.http_get_bytes(
                                  "/static/small.txt", "a.test"))
    assert rc == 0, "s_client exit %d\n%s" % (rc, out)
    assert "HTTP/1.1 200 OK\r\n" in out, out
    der = served_der(out)
    names = [n for n in gw.pairs if gwtest.cert_der(gw.pairs[n][0]) == der]
    assert len(names) == 1, "served certificate is none of ours:\n%s" % out
    got = names[0]
    if want == "a-?":  # the default name; its key type is the client's pick
        assert got in ("a-ecdsa", "a-rsa"), (got, out)
        assert gwtest.s_client_subject(out) == "CN=a.test", out
    else:
        assert got == want, "served %s, wanted %s\n%s" % (got, want, out)
        assert gwtest.s_client_subject(out) == \
            "CN=" + ("b.test" if want.startswith("b") else "a.test"), out
    if key == "RSA":
        assert "Server public key is 2048 bit" in out, out
        assert re.search(r"^Peer signature type: RSA(-PSS)?$", out,
                         re.M), out
    elif key == "ECDSA":
        assert "Server public key is 256 bit" in out, out
        assert re.search(r"^Peer signature type: ECDSA$", out, re.M), out


def test_sni_with_verification(gw, tls_certs):
    """Python's ssl, verifying against the CA and checking the host name:
    each name gets a certificate valid for it."""
    ctx = gwtest.tls_client_context(cafile=str(tls_certs.ca_crt))
    for name in ("a.test", "b.test"):
        r = gwtest.tls_request(gw.tls_port, "GET", "/static/small.txt",
                               headers={"Host": name},
                               server_hostname=name, context=ctx)
        assert r.status == 200
    # a name nobody holds gets the default, which does not verify for it
    with pytest.raises(ssl.SSLCertVerificationError):
        gwtest.tls_request(gw.tls_port, "GET", "/static/small.txt",
                           server_hostname="c.test", context=ctx)
