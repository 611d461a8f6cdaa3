"""Session resumption: s_client -sess_out, then -sess_in reports "Reused"
with tickets in TLS 1.3 and 1.2, and through the server's session cache in
TLS 1.2 when the client refuses tickets (or the gateway issues none)."""

import re

import pytest

import gwtest
from conftest import SMALL_TXT


def connect(gw, tag, *args):
    # A whole request, answered and closed by the server: TLS 1.3 tickets
    # arrive after the handshake, and a cleanly closed session stays
    # resumable.
    rc, out = gwtest.s_client(gw.tls_port, "-servername", "gw.test", *args,
                              request=gwtest.http_get_bytes(
                                  "/static/small.txt?%s" % tag))
    assert rc == 0, "s_client exit %d\n%s" % (rc, out)
    assert "HTTP/1.1 200 OK\r\n" in out and SMALL_TXT.decode() in out, out
    return out


CASES = [
    # id, gateway tls settings, s_client args, protocol, ticket issued
    ("tls13-ticket", {}, ("-tls1_3",), "TLSv1.3", True),
    ("tls12-ticket", {}, ("-tls1_2",), "TLSv1.2", True),
    ("tls12-cache-client-no-ticket", {}, ("-tls1_2", "-no_ticket"),
     "TLSv1.2", False),
    ("tls12-cache-tickets-off", {"session_tickets": False}, ("-tls1_2",),
     "TLSv1.2", False),
]


@pytest.mark.parametrize("tls,args,protocol,ticket",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_resumption(tls_gateway, tls_certs, tmp_path, tls, args, protocol,
                    ticket):
    gw = tls_gateway([tls_certs.pair("gw.test")], tls=tls)
    sess = tmp_path / "session.pem"
    first = connect(gw, "first", *args, "-sess_out", str(sess))
    assert gwtest.s_client_session(first)[:2] == ("New", protocol), first
    assert sess.is_file() and sess.stat().st_size > 0
    has_ticket = "TLS session ticket:" in first
    assert has_ticket == ticket, \
        "a session ticket was%s issued:\n%s" % ("" if has_ticket else " not",
                                                 first)
    if protocol == "TLSv1.2" and not ticket:
        # resumed by id from the server's cache: the id must be there
        assert re.search(r"^\s*Session-ID: [0-9A-F]{64}$", first, re.M), \
            first

    second = connect(gw, "second", *args, "-sess_in", str(sess))
    assert gwtest.s_client_session(second)[:2] == ("Reused", protocol), \
        "the session was not resumed:\n%s" % second

    # and a session this gateway did not make is not resumed
    other = tls_gateway([tls_certs.pair("gw.test")], tls=tls)
    third = gwtest.s_client(other.tls_port, "-servername", "gw.test", *args,
                            "-sess_in", str(sess),
                            request=gwtest.http_get_bytes("/static/x"))[1]
    assert gwtest.s_client_session(third)[:2] == ("New", protocol), third


def test_tls13_resumption_chains(tls_gateway, tls_certs):
    """TLS 1.3 tickets are for one use (RFC 8446 appendix C.4): every
    resumption must hand out a fresh ticket, so a client that always resumes
    with its newest ticket never falls back to a full handshake."""
    import socket
    import ssl

    gw = tls_gateway([tls_certs.pair("gw.test")])
    ctx = ssl.create_default_context(cafile=str(tls_certs.ca_crt))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    session, reused, ids = None, [], []
    for i in range(5):
        with ctx.wrap_socket(socket.create_connection(
                ("127.0.0.1", gw.tls_port), 5), server_hostname="gw.test",
                session=session) as s:
            s.sendall(b"GET /static/small.txt HTTP/1.1\r\nHost: gw.test\r\n"
                      b"Connection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(
                SMALL_TXT), data[:200]
            reused.append(s.session_reused)
            session = s.session
            ids.append(session.id)
    assert reused == [False, True, True, True, True], reused
    # a new ticket (a new session) came with every connection, resumed
    # ones included
    assert len(set(ids)) == 5, [i.hex()[:16] for i in ids]


RELOAD_CASES = [c for c in CASES if c[0] != "tls12-ticket"]


@pytest.mark.parametrize("tls,args,protocol,ticket",
                         [c[1:] for c in RELOAD_CASES],
                         ids=[c[0] for c in RELOAD_CASES])
def test_resumption_across_reload(tls_gateway, tls_certs, tmp_path, tls,
                                  args, protocol, ticket):
    """A SIGHUP keeps what resumes: the ticket keys, and the session-ID
    cache (TLS 1.2 clients without tickets would otherwise all do full
    handshakes after every reload)."""
    import signal

    gw = tls_gateway([tls_certs.pair("gw.test")], tls=tls)
    sess = tmp_path / "session.pem"
    first = connect(gw, "first", *args, "-sess_out", str(sess))
    assert gwtest.s_client_session(first)[:2] == ("New", protocol), first
    loaded = gw.error_log().count(" loaded")
    gw.signal(signal.SIGHUP)
    gwtest.wait_until(lambda: gw.error_log().count(" loaded") > loaded, 10,
                      0.05, "the reload to finish")
    second = connect(gw, "second", *args, "-sess_in", str(sess))
    assert gwtest.s_client_session(second)[:2] == ("Reused", protocol), \
        "the session was not resumed after the reload:\n%s" % second
