"""TLS on the admin listener's /metrics: one expiry gauge per certificate
and TLS listener (subject in RFC 2253 form, value = notAfter), handshakes
counted by result; and the access log's "tls" field ("TLSv1.3",
"TLSv1.2", null on plain HTTP)."""

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


def test_certificate_expiry(gw):
    listener = "127.0.0.1:%d" % gw.tls_port
    got = {(l["listener"], l["subject"]): v
           for l, v in gwtest.samples_named(gw.metrics(), EXPIRY)}
    want = {(listener, gwtest.cert_subject(crt)): gwtest.cert_not_after(crt)
            for crt, _ in gw.pairs}
    assert set(want) == {(listener, "CN=gw.test,O=Portcullis Test"),
                         (listener, "CN=b.test")}
    assert got == want


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
