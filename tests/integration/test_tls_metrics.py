"""TLS on the admin listener's /metrics: one expiry gauge per certificate
and TLS listener (subject in RFC 2253 form, value = notAfter), handshakes
counted by result; and the access log's "tls" field ("TLSv1.3",
"TLSv1.2", null on plain HTTP)."""

import json
import urllib.parse

import pytest

import gwtest
from conftest import SMALL_TXT

EXPIRY = "portcullis_tls_certificate_expiry_timestamp_seconds"
HANDSHAKES = "portcullis_tls_handshakes_total"


@pytest.fixture
def gw(tls_gateway, tls_certs):
    g = tls_gateway([tls_certs.pair("gw.test",
                                    subject="/O=Portcullis Test/CN=gw.test"),
                     tls_certs.pair("b.test", "rsa")],
                    redirect={"redirect_https": True})
    g.pairs = [tls_certs.pair("gw.test",
                              subject="/O=Portcullis Test/CN=gw.test"),
               tls_certs.pair("b.test", "rsa")]
    return g


def cert_serial(path):
    """The serial number as openssl prints it (upper-case hex)."""
    _, out = gwtest.openssl("x509", "-in", path, "-noout", "-serial")
    return out.strip().split("=", 1)[1]


def test_certificate_expiry(gw):
    listener = "127.0.0.1:%d" % gw.tls_port
    got = {(l["listener"], l["subject"], l["key_type"], l["serial"]): v
           for l, v in gwtest.samples_named(gw.metrics(), EXPIRY)}
    want = {(listener, gwtest.cert_subject(crt), kt, cert_serial(crt)):
            gwtest.cert_not_after(crt)
            for (crt, _), kt in zip(gw.pairs, ("ECDSA", "RSA"))}
    assert {k[:3] for k in want} == {
        (listener, "CN=gw.test,O=Portcullis Test", "ECDSA"),
        (listener, "CN=b.test", "RSA")}
    assert got == want


def test_dual_certificates_each_have_their_expiry(tls_gateway, tmp_path,
                                                  tls_certs,
                                                  prometheus_factory):
    """An ECDSA and an RSA certificate for the same names: two series that
    differ by key_type and serial, so Prometheus keeps both and the
    3-day RSA certificate is not hidden behind the 30-day ECDSA one."""
    ca = (tls_certs.ca_crt, tls_certs.ca_key)
    ec = gwtest.make_cert(tmp_path, "dual-ec", "/CN=dual.test",
                          ["dual.test"], "ecdsa", ca, days=30)
    rsa = gwtest.make_cert(tmp_path, "dual-rsa", "/CN=dual.test",
                           ["dual.test"], "rsa", ca, days=3)
    g = tls_gateway([ec, rsa])
    listener = "127.0.0.1:%d" % g.tls_port
    samples = gwtest.samples_named(g.metrics(), EXPIRY)
    got = {(l["key_type"], l["serial"]): v for l, v in samples}
    assert got == {("ECDSA", cert_serial(ec[0])): gwtest.cert_not_after(ec[0]),
                   ("RSA", cert_serial(rsa[0])):
                   gwtest.cert_not_after(rsa[0])}
    assert all(l["subject"] == "CN=dual.test" and l["listener"] == listener
               for l, _ in samples)
    # Prometheus ingests both (identical label sets would leave one).
    prom = prometheus_factory([("portcullis", "127.0.0.1:%d" % g.admin_port,
                                "/metrics")])

    def soonest():
        st, _, body = gwtest.get(prom.port, "/prometheus/api/v1/query?"
                                 + urllib.parse.urlencode(
                                     {"query": "count(%s) and "
                                      "min(%s)" % (EXPIRY, EXPIRY)}))
        assert st == 200, body
        res = json.loads(body)["data"]["result"]
        return res if res and res[0]["value"][1] == "2" else None
    gwtest.wait_until(soonest, 30, 0.1, "Prometheus to hold both series")
    st, _, body = gwtest.get(prom.port, "/prometheus/api/v1/query?"
                             + urllib.parse.urlencode(
                                 {"query": "min(%s)" % EXPIRY}))
    assert float(json.loads(body)["data"]["result"][0]["value"][1]) == \
        gwtest.cert_not_after(rsa[0])


def test_handshake_counts(gw):
    listener = "127.0.0.1:%d" % gw.tls_port

    def counts():
        m = gw.metrics()
        return {r: gwtest.metric(m, HANDSHAKES, listener=listener, result=r)
                for r in ("ok", "failed", "timeout")}
    assert counts() == {"ok": 0, "failed": 0, "timeout": 0}
    # the plain listener has no TLS series
    plain = "127.0.0.1:%d" % gw.plain_port
    assert gwtest.samples_named(gw.metrics(), HANDSHAKES,
                                listener=plain) == []
    import ssl
    v12 = gwtest.tls_client_context(maximum=ssl.TLSVersion.TLSv1_2)
    for i in range(3):
        r = gwtest.tls_request(gw.tls_port, "GET",
                               "/static/small.txt?v13=%d" % i)
        assert r.status == 200 and r.tls_version == "TLSv1.3"
    for i in range(2):
        r = gwtest.tls_request(gw.tls_port, "GET",
                               "/static/small.txt?v12=%d" % i, context=v12)
        assert r.status == 200 and r.tls_version == "TLSv1.2"
    # several requests on one connection are one handshake
    s = gwtest.tls_connect(gw.tls_port)
    with gwtest.RawConn.wrap(s) as c:
        for i in range(3):
            c.send(b"GET /static/small.txt?ka=%d HTTP/1.1\r\n"
                   b"Host: gw.test\r\n\r\n" % i)
            r = c.read_response()
            assert r.status == 200 and r.body == SMALL_TXT
    assert counts() == {"ok": 6, "failed": 0, "timeout": 0}
    # plain HTTP to the redirect listener changes nothing
    assert gwtest.get(gw.plain_port, "/healthz")[0] == 200
    assert counts() == {"ok": 6, "failed": 0, "timeout": 0}
    # one refused handshake (TLS 1.1) counts as failed
    rc, out = gwtest.s_client(gw.tls_port, "-tls1_1", "-cipher",
                              "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    gwtest.wait_until(lambda: counts() == {"ok": 6, "failed": 1,
                                           "timeout": 0}, 3,
                      what="failed=1 after a TLS 1.1 attempt: %r" % counts())


def test_access_log_tls_field(gw):
    for i in range(2):
        r = gwtest.tls_request(gw.tls_port, "GET",
                               "/static/small.txt?log13=%d" % i)
        assert r.status == 200
    import ssl
    r = gwtest.tls_request(gw.tls_port, "GET", "/static/small.txt?log12",
                           context=gwtest.tls_client_context(
                               maximum=ssl.TLSVersion.TLSv1_2))
    assert r.status == 200
    r = gwtest.tls_request(gw.tls_port, "GET", "/unrouted?log13")
    assert r.status == 404
    assert gwtest.get(gw.plain_port, "/healthz")[0] == 200
    assert gwtest.get(gw.plain_port, "/x?plain")[0] == 308

    want = {"/static/small.txt?log13=0": "TLSv1.3",
            "/static/small.txt?log13=1": "TLSv1.3",
            "/static/small.txt?log12": "TLSv1.2",
            "/unrouted?log13": "TLSv1.3",
            "/healthz": None,
            "/x?plain": None}

    def logged():
        got = {e["path"]: e for e in gw.access_log()}
        return got if all(p in got for p in want) else None
    got = gwtest.wait_until(logged, 5, what="the access log entries")
    assert {p: got[p]["tls"] for p in want} == want, \
        [got[p] for p in want]
    assert "tls" in got["/x?plain"] and got["/x?plain"]["tls"] is None


def test_tls_error_after_the_handshake_is_not_a_failed_handshake(gw):
    """A TLS 1.2 client asks to renegotiate on an established connection;
    the gateway refuses (no renegotiation, ever). The handshake that
    succeeded stays counted as ok; the error counts in
    portcullis_tls_errors_total and is logged as what it is."""
    listener = "127.0.0.1:%d" % gw.tls_port

    def counts():
        m = gw.metrics()
        return ({r: gwtest.metric(m, HANDSHAKES, listener=listener, result=r)
                 for r in ("ok", "failed", "timeout")},
                gwtest.metric(m, "portcullis_tls_errors_total",
                              listener=listener))
    assert counts() == ({"ok": 0, "failed": 0, "timeout": 0}, 0)
    # s_client renegotiates on a line "R" read from its input, after the
    # handshake; then its input ends and it leaves.
    rc, out = gwtest.s_client(gw.tls_port, "-tls1_2", "-servername",
                              "gw.test", request=None)
    assert "Cipher is" in out and "(NONE)" not in out, out
    rc, out = gwtest.openssl("s_client", "-connect",
                             "127.0.0.1:%d" % gw.tls_port, "-tls1_2",
                             "-servername", "gw.test", data=b"R\n",
                             check=False)
    assert "RENEGOTIATING" in out, out
    gwtest.wait_until(
        lambda: counts() == ({"ok": 2, "failed": 0, "timeout": 0}, 1), 5,
        what="one ok handshake more and one TLS error: %r" % (counts(),))
    want = "TLS error after the handshake on %s" % listener
    log = gwtest.wait_until(
        lambda: (lambda t: t if want in t else None)(gw.error_log()), 5,
        what="the log line %r" % want)
    assert "TLS handshake failed" not in log, log
