"""SIGHUP re-reads the certificates: under keep-alive HTTPS traffic the
pair is replaced and not one request fails; new connections get the new
certificate, a connection opened before keeps working on its old one. A
broken new pair (key not matching the certificate) keeps the running
certificates, and the error log says why."""

import http.client
import os
import shutil
import signal
import threading
import time

import pytest

import gwtest
from conftest import SMALL_TXT

LOAD_SECONDS = 3.0


def install(src, dst):
    """Replaces dst's cert and key with src's, each by an atomic rename."""
    for s, d in zip(src, dst):
        tmp = str(d) + ".new"
        shutil.copyfile(s, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, d)


def load(port, ctx, stop, results, conns):
    """GET /static/small.txt over one keep-alive connection until `stop`;
    appends (ok, what, served certificate DER) to results and counts the
    connections it had to open in conns[0]."""
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", port,
                                                   timeout=5, context=ctx)
                conn.connect()
                conns[0] += 1
            der = conn.sock.getpeercert(binary_form=True)
            conn.request("GET", "/static/small.txt?load=1")
            r = conn.getresponse()
            body = r.read()
            results.append((r.status == 200 and body == SMALL_TXT,
                            "%d %r" % (r.status, body[:80]), der))
            if r.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            results.append((False, repr(e), None))
            if conn:
                conn.close()
            conn = None
    if conn:
        conn.close()


def new_connection_der(gw, ctx):
    # no SNI (an IP address), verified against the CA and 127.0.0.1
    with gwtest.tls_connect(gw.tls_port, "127.0.0.1", ctx) as s:
        return s.getpeercert(binary_form=True)


def old_conn_get(old, tag):
    old.send(("GET /static/small.txt?old=%s HTTP/1.1\r\nHost: gw.test\r\n\r\n"
              % tag).encode())
    r = old.read_response()
    assert r.status == 200 and r.body == SMALL_TXT, r


def expiry_subjects(gw):
    return sorted(l["subject"] for l, _ in gwtest.samples_named(
        gw.metrics(), "portcullis_tls_certificate_expiry_timestamp_seconds"))


def test_certificate_reload(tls_gateway, tls_certs, tmp_path):
    live = (tmp_path / "live.crt", tmp_path / "live.key")
    first = tls_certs.pair("gw.test", sans=["gw.test", "127.0.0.1"])
    second = tls_certs.pair("gw2.test", sans=["gw2.test", "127.0.0.1"])
    install(first, live)
    gw = tls_gateway([live])
    # verified against the CA: both pairs must be whole and valid
    ctx = gwtest.tls_client_context(cafile=str(tls_certs.ca_crt))
    der1, der2 = gwtest.cert_der(first[0]), gwtest.cert_der(second[0])
    assert new_connection_der(gw, ctx) == der1

    # a connection opened before the reload, idle across it
    old_sock = gwtest.tls_connect(gw.tls_port, "127.0.0.1", ctx)
    old = gwtest.RawConn.wrap(old_sock)
    old_conn_get(old, "before")

    stop = threading.Event()
    results = [[] for _ in range(4)]
    conns = [[0] for _ in range(4)]
    threads = [threading.Thread(target=load, args=(gw.tls_port, ctx, stop,
                                                   results[i], conns[i]))
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(LOAD_SECONDS / 2)
        install(second, live)
        gw.signal(signal.SIGHUP)
        gwtest.wait_until(lambda: new_connection_der(gw, ctx) == der2, 5,
                          0.1, "new connections to get gw2.test")
        time.sleep(LOAD_SECONDS / 2)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    flat = [r for rs in results for r in rs]
    failed = [what for ok, what, _ in flat if not ok]
    assert len(flat) > 100, "only %d requests in %.0fs" % (len(flat),
                                                           LOAD_SECONDS)
    assert not failed, "%d of %d requests failed across the reload: %r" % (
        len(failed), len(flat), failed[:5])
    assert gw.proc.alive()
    # keep-alive connections made before the reload went on (old context)
    assert all(d == der1 for rs in results for _, _, d in rs[:5]), \
        "the first requests were not on the old certificate"
    assert gwtest.metric(gw.metrics(),
                         "portcullis_config_last_reload_successful") == 1
    assert expiry_subjects(gw) == ["CN=gw2.test"]

    # the connection from before the reload still works, on its old pair
    old_conn_get(old, "after")
    assert old_sock.getpeercert(binary_form=True) == der1
    assert new_connection_der(gw, ctx) == der2

    # a broken pair: a new certificate with a key that does not match it
    err_before = len(gw.error_log())
    third = tls_certs.pair("gw3.test", sans=["gw3.test", "127.0.0.1"])
    install((third[0], first[1]), live)
    gw.signal(signal.SIGHUP)
    want = "keeping the running config and certificates"
    lines = gwtest.wait_until(
        lambda: [l for l in gw.error_log()[err_before:].splitlines()
                 if want in l], 5, what="the error log to say %r" % want)
    assert len(lines) == 1, lines
    assert "reload:" in lines[0], lines
    assert str(live[0]) in lines[0] or str(live[1]) in lines[0], \
        "the reason does not name the file: %r" % lines[0]
    gwtest.wait_until(lambda: gwtest.metric(
        gw.metrics(), "portcullis_config_last_reload_successful") == 0, 5,
        what="portcullis_config_last_reload_successful 0")
    assert gw.proc.alive()
    # still serving the previous good pair, to new and old connections
    assert new_connection_der(gw, ctx) == der2
    r = gwtest.tls_request(gw.tls_port, "GET", "/static/small.txt",
                           server_hostname="127.0.0.1", context=ctx)
    assert r.status == 200 and r.body == SMALL_TXT
    old_conn_get(old, "after-broken")
    assert expiry_subjects(gw) == ["CN=gw2.test"]
    old.close()
