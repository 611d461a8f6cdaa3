"""OCSP stapling: `openssl ocsp` answers for a small CA (through a
delegated responder certificate with OCSPSigning), one leaf it calls good
and one it calls revoked, both naming the responder in authorityInfoAccess;
`openssl s_client -status` is the client. The gateway fetches in the
background, never waits for the responder to start serving, drops a staple
at its nextUpdate, and takes a DER response from a file (ocsp_file), which
-t checks against the certificate. Responses with chosen thisUpdate and
nextUpdate are made with python3-cryptography, signed by the CA's key."""

import datetime
import json
import re
import subprocess

import pytest

import gwtest
from conftest import Proc, free_port, portcullis_binary, tls_entry

GOOD, REVOKED, PLAIN = "good.test", "revoked.test", "plain.test"


def _leaf(d, stem, cn, ca, aia_port, rsa=False):
    """A server certificate (ECDSA P-256, or RSA 2048) for cn signed by ca,
    whose authorityInfoAccess names the responder on 127.0.0.1:aia_port
    (None: no AIA). Returns (certificate, chain file: leaf then CA,
    key)."""
    crt, key, csr = d / (stem + ".crt"), d / (stem + ".key"), \
        d / (stem + ".csr")
    ext = d / (stem + ".ext")
    text = ("basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature%s\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=DNS:%s\n"
            % (",keyEncipherment" if rsa else "", cn))
    if aia_port is not None:
        text += ("authorityInfoAccess=OCSP;URI:http://127.0.0.1:%d\n"
                 % aia_port)
    ext.write_text(text)
    keygen = (["-newkey", "rsa:2048"] if rsa else
              ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    gwtest.openssl("req", "-new", *keygen, "-nodes", "-subj", "/CN=" + cn,
                   "-keyout", key, "-out", csr)
    gwtest.openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
                   "-CAcreateserial", "-sha256", "-days", "1",
                   "-extfile", ext, "-out", crt)
    key.chmod(0o600)
    chain = d / (stem + ".chain.pem")
    chain.write_text(crt.read_text() + ca[0].read_text())
    return crt, chain, key


def _serial(crt):
    _, out = gwtest.openssl("x509", "-in", crt, "-noout", "-serial")
    return out.strip().split("=", 1)[1].upper()


def _index_time(dt):
    return dt.strftime("%y%m%d%H%M%SZ")


class Pki:
    def __init__(self, d):
        from cryptography import x509
        self.dir = d
        self.ca = gwtest.make_ca(d, "OCSP Test CA")
        self.port = free_port()
        # A delegated responder (RFC 6960 section 4.2.2.2).
        rkey, rcsr, rcrt = d / "resp.key", d / "resp.csr", d / "resp.crt"
        rext = d / "resp.ext"
        rext.write_text("basicConstraints=critical,CA:FALSE\n"
                        "keyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=OCSPSigning\n")
        gwtest.openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-nodes", "-subj",
                       "/CN=OCSP responder", "-keyout", rkey, "-out", rcsr)
        gwtest.openssl("x509", "-req", "-in", rcsr, "-CA", self.ca[0],
                       "-CAkey", self.ca[1], "-CAcreateserial", "-sha256",
                       "-days", "1", "-extfile", rext, "-out", rcrt)
        self.rcrt, self.rkey = rcrt, rkey
        self.good = _leaf(d, "good", GOOD, self.ca, self.port)
        self.revoked = _leaf(d, "revoked", REVOKED, self.ca, self.port)
        self.plain = _leaf(d, "plain", PLAIN, self.ca, None)
        self.good_rsa = _leaf(d, "good-rsa", GOOD, self.ca, self.port,
                              rsa=True)
        now = datetime.datetime.utcnow()
        lines = []
        for crt, status in ((self.good[0], "V"), (self.revoked[0], "R"),
                            (self.good_rsa[0], "V")):
            c = x509.load_pem_x509_certificate(crt.read_bytes())
            lines.append("\t".join([
                status, _index_time(c.not_valid_after),
                _index_time(now - datetime.timedelta(hours=1))
                if status == "R" else "",
                _serial(crt), "unknown", "/CN=" + c.subject.rfc4514_string()
                .split("=", 1)[1]]))
        (d / "index.txt").write_text("\n".join(lines) + "\n")
        (d / "index.txt.attr").write_text("unique_subject = no\n")

    def response(self, leaf_crt, this_update, next_update, good=True):
        """A DER OCSPResponse for leaf_crt signed by the CA's own key."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp
        leaf = x509.load_pem_x509_certificate(leaf_crt.read_bytes())
        ca = x509.load_pem_x509_certificate(self.ca[0].read_bytes())
        key = serialization.load_pem_private_key(self.ca[1].read_bytes(),
                                                 None)
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=leaf, issuer=ca, algorithm=hashes.SHA1(),
            cert_status=(ocsp.OCSPCertStatus.GOOD if good
                         else ocsp.OCSPCertStatus.REVOKED),
            this_update=this_update, next_update=next_update,
            revocation_time=None if good else this_update,
            revocation_reason=None).responder_id(
                ocsp.OCSPResponderEncoding.HASH, ca)
        return b.sign(key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("ocsp"))


class Responder:
    """`openssl ocsp` on pki.port (it binds every address: OpenSSL 3.0's
    -port takes a number only; the certificates name 127.0.0.1)."""

    def __init__(self, pki, workdir):
        self.port = pki.port
        self.proc = Proc("ocsp", [
            "/usr/bin/openssl", "ocsp", "-index", str(pki.dir / "index.txt"),
            "-port", str(pki.port), "-rsigner", str(pki.rcrt),
            "-rkey", str(pki.rkey), "-CA", str(pki.ca[0]), "-nmin", "10",
            "-ignore_err"], workdir)
        gwtest.wait_until(self._listening, timeout=20,
                          what="openssl ocsp listening")

    def _listening(self):
        # It prints ACCEPT once bound. No probe connection: OpenSSL 3.0's
        # responder hangs on a connection closed before a request.
        assert self.proc.alive(), self.proc.diagnostics()
        return "ACCEPT" in self.proc.stdout_path.read_text()

    def stop(self):
        self.proc.stop()


@pytest.fixture
def responder(pki, tmp_path):
    started = []

    def start():
        started.append(Responder(pki, tmp_path))
        return started[-1]

    yield start
    for r in started:
        r.stop()


def entry(leaf, **kw):
    """A tls.certificates entry for a leaf of _leaf(), plus kw."""
    e = tls_entry((leaf[1], leaf[2]))
    e.update(kw)
    return e


def status(gw, name):
    rc, out = gwtest.s_client(gw.tls_port, "-status", "-servername", name,
                              request=gwtest.http_get_bytes(
                                  "/static/small.txt", name))
    assert rc == 0, "s_client exit %d\n%s" % (rc, out)
    assert "HTTP/1.1 200 OK\r\n" in out, out
    return out


def labels(crt, key_type="ECDSA"):
    return {"subject": gwtest.cert_subject(crt), "serial": _serial(crt),
            "key_type": key_type}


def sample(gw, name, crt, key_type="ECDSA", **extra):
    return gwtest.metric(gw.metrics(), name, **labels(crt, key_type),
                         **extra)


def stapled(out):
    return "OCSP Response Status: successful" in out


def test_good_and_revoked_are_stapled(pki, responder, tls_gateway):
    responder()
    gw = tls_gateway([entry(pki.good), entry(pki.revoked), entry(pki.plain)])
    for crt in (pki.good[0], pki.revoked[0]):
        gwtest.wait_until(
            lambda: sample(gw, "portcullis_tls_ocsp_staple_valid", crt) == 1,
            timeout=60, what="a staple for %s" % crt.name)
    out = status(gw, GOOD)
    assert stapled(out) and re.search(r"Cert Status: good", out), out
    assert "Serial Number: %s" % _serial(pki.good[0]) in out, out
    assert "Responder Id: CN = OCSP responder" in out or \
        "Responder Id: CN=OCSP responder" in out, out
    assert "Next Update:" in out, out
    out = status(gw, REVOKED)
    assert stapled(out) and "Cert Status: revoked" in out, out
    assert "Serial Number: %s" % _serial(pki.revoked[0]) in out, out
    # A certificate without an OCSP URL never staples.
    out = status(gw, PLAIN)
    assert "OCSP response: no response sent" in out, out
    # The independent side: the responder itself, asked by openssl.
    _, text = gwtest.openssl("ocsp", "-issuer", pki.ca[0], "-cert",
                             pki.revoked[0], "-url",
                             "http://127.0.0.1:%d" % pki.port,
                             "-VAfile", pki.rcrt, check=False)
    assert "revoked" in text, text
    assert sample(gw, "portcullis_tls_ocsp_certificate_revoked",
                  pki.revoked[0]) == 1
    assert sample(gw, "portcullis_tls_ocsp_certificate_revoked",
                  pki.good[0]) == 0
    assert sample(gw, "portcullis_tls_ocsp_fetches_total", pki.good[0],
                  result="good") >= 1
    assert sample(gw, "portcullis_tls_ocsp_fetches_total", pki.revoked[0],
                  result="revoked") >= 1
    assert sample(gw, "portcullis_tls_ocsp_staple_valid", pki.plain[0]) \
        is None
    assert sample(gw, "portcullis_tls_ocsp_next_update_timestamp_seconds",
                  pki.good[0]) > 0
    err = gw.error_log()
    assert re.search(r"revoked\.crt.*REVOKED", err) or \
        re.search(r"revoked\.chain\.pem.*REVOKED", err), err


def test_each_certificate_gets_its_own_staple(pki, responder, tls_gateway):
    """An ECDSA and an RSA certificate for the same name: the staple sent
    is the one of the certificate the client's signature algorithms
    chose."""
    responder()
    gw = tls_gateway([entry(pki.good), entry(pki.good_rsa)])
    for crt, kt in ((pki.good[0], "ECDSA"), (pki.good_rsa[0], "RSA")):
        gwtest.wait_until(
            lambda: sample(gw, "portcullis_tls_ocsp_staple_valid", crt,
                           kt) == 1,
            timeout=60, what="a staple for %s" % crt.name)
    for sigalgs, crt in (("ECDSA+SHA256", pki.good[0]),
                         ("RSA-PSS+SHA256:RSA+SHA256", pki.good_rsa[0])):
        rc, out = gwtest.s_client(gw.tls_port, "-status", "-servername",
                                  GOOD, "-sigalgs", sigalgs,
                                  request=gwtest.http_get_bytes(
                                      "/static/small.txt", GOOD))
        assert rc == 0 and "HTTP/1.1 200 OK\r\n" in out, out
        assert stapled(out) and "Cert Status: good" in out, out
        assert "Serial Number: %s" % _serial(crt) in out, out


def requests_seen(r):
    """The first lines of the requests the responder received."""
    return re.findall(r"Received request, 1st line: (.*)",
                      r.proc.stderr_path.read_text())


def test_get_or_post(pki, responder, tls_gateway):
    """RFC 5019 section 5: GET while the URL stays within 255 bytes (here,
    the certificate's), POST beyond (an ocsp_responder with a long path,
    which the responder ignores)."""
    r = responder()
    long_url = "http://127.0.0.1:%d/%s" % (pki.port, "p" * 200)
    gw = tls_gateway([entry(pki.good),
                      entry(pki.revoked, ocsp_responder=long_url)])
    for crt in (pki.good[0], pki.revoked[0]):
        gwtest.wait_until(
            lambda: sample(gw, "portcullis_tls_ocsp_staple_valid", crt) == 1,
            timeout=60, what="a staple for %s" % crt.name)
    seen = requests_seen(r)
    assert any(re.match(r"GET /[A-Za-z0-9%]+ HTTP/1\.1$", l) for l in seen), \
        seen
    assert any(l == "POST /%s HTTP/1.1" % ("p" * 200) for l in seen), seen
    out = status(gw, REVOKED)
    assert stapled(out) and "Cert Status: revoked" in out, out


def test_responder_down_at_start(pki, responder, tls_gateway):
    """The gateway starts and serves TLS without a staple, counts the
    failures, logs one line, and staples once the responder answers."""
    gw = tls_gateway([entry(pki.good)])
    gwtest.wait_until(
        lambda: (sample(gw, "portcullis_tls_ocsp_fetches_total", pki.good[0],
                        result="failed") or 0) >= 3,
        timeout=60, what="three failed fetches")
    out = status(gw, GOOD)
    assert "OCSP response: no response sent" in out, out
    assert sample(gw, "portcullis_tls_ocsp_staple_valid", pki.good[0]) == 0
    assert gw.error_log().count("retrying, no staple meanwhile") == 1, \
        gw.error_log()
    responder()
    gwtest.wait_until(
        lambda: sample(gw, "portcullis_tls_ocsp_staple_valid",
                       pki.good[0]) == 1,
        timeout=90, what="a staple once the responder is up")
    out = status(gw, GOOD)
    assert stapled(out) and "Cert Status: good" in out, out
    assert "stapling the OCSP response" in gw.error_log()


def test_ocsp_file_is_stapled_without_network(pki, tmp_path, tls_gateway):
    now = datetime.datetime.utcnow()
    der = tmp_path / "good.der"
    der.write_bytes(pki.response(pki.good[0],
                                 now - datetime.timedelta(minutes=5),
                                 now + datetime.timedelta(hours=6)))
    # No responder runs: nothing may be fetched.
    gw = tls_gateway([entry(pki.good, ocsp_file=str(der))])
    out = status(gw, GOOD)
    assert stapled(out) and "Cert Status: good" in out, out
    assert sample(gw, "portcullis_tls_ocsp_staple_valid", pki.good[0]) == 1
    assert sample(gw, "portcullis_tls_ocsp_fetches_total", pki.good[0],
                  result="failed") is None


def test_a_stale_file_at_start_serves_without_a_staple(pki, tmp_path,
                                                       tls_gateway):
    """A host that was down past the file's nextUpdate still starts (and
    says why nothing is stapled); no staple is ever sent from it."""
    now = datetime.datetime.utcnow()
    der = tmp_path / "stale.der"
    der.write_bytes(pki.response(pki.good[0],
                                 now - datetime.timedelta(hours=3),
                                 now - datetime.timedelta(hours=1)))
    gw = tls_gateway([entry(pki.good, ocsp_file=str(der))])
    out = status(gw, GOOD)
    assert "OCSP response: no response sent" in out, out
    assert "past its nextUpdate" in gw.error_log()
    assert sample(gw, "portcullis_tls_ocsp_staple_valid", pki.good[0]) == 0
    assert sample(gw, "portcullis_tls_ocsp_staples_expired_total",
                  pki.good[0]) == 1


def test_staple_dropped_at_next_update(pki, tmp_path, tls_gateway):
    """A file's response is served until its nextUpdate, then dropped and
    counted."""
    now = datetime.datetime.utcnow()
    der = tmp_path / "short.der"
    der.write_bytes(pki.response(pki.good[0],
                                 now - datetime.timedelta(minutes=1),
                                 now + datetime.timedelta(seconds=45)))
    gw = tls_gateway([entry(pki.good, ocsp_file=str(der))])
    out = status(gw, GOOD)
    assert stapled(out) and "Cert Status: good" in out, out
    gwtest.wait_until(
        lambda: sample(gw, "portcullis_tls_ocsp_staples_expired_total",
                       pki.good[0]) == 1,
        timeout=90, what="the staple to expire")
    assert sample(gw, "portcullis_tls_ocsp_staple_valid", pki.good[0]) == 0
    out = status(gw, GOOD)
    assert "OCSP response: no response sent" in out, out
    assert "passed its nextUpdate" in gw.error_log()


def check(tmp_path, cfg):
    path = tmp_path / "check.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-t", "-c", str(path)],
                       capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode(errors="replace")


def tls_config(certs):
    return {
        "admin": {"listen": "127.0.0.1:%d" % free_port()},
        "upstreams": {"u": {"servers": ["127.0.0.1:%d" % free_port()]}},
        "listeners": [{"listen": "127.0.0.1:%d" % free_port(), "tls": True,
                       "routes": [{"name": "r", "path": "/",
                                   "upstream": "u"}]}],
        "tls": {"certificates": certs},
    }


def test_ocsp_file_checked_by_t(pki, tmp_path):
    now = datetime.datetime.utcnow()
    ok = tmp_path / "ok.der"
    ok.write_bytes(pki.response(pki.good[0],
                                now - datetime.timedelta(minutes=5),
                                now + datetime.timedelta(hours=6)))
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"\x30\x03not an OCSP response")
    expired = tmp_path / "expired.der"
    expired.write_bytes(pki.response(pki.good[0],
                                     now - datetime.timedelta(hours=3),
                                     now - datetime.timedelta(hours=1)))
    other = tmp_path / "other.der"  # the revoked leaf's, not good's
    other.write_bytes(pki.response(pki.revoked[0],
                                   now - datetime.timedelta(minutes=5),
                                   now + datetime.timedelta(hours=6)))
    rc, err = check(tmp_path, tls_config([entry(pki.good,
                                                ocsp_file=str(ok))]))
    assert rc == 0, err
    cases = [(garbage, "not a DER OCSP response"),
             (other, "no status for this certificate"),
             (tmp_path / "missing.der", "No such file")]
    for f, why in cases:
        rc, err = check(tmp_path, tls_config([
            entry(pki.plain), entry(pki.good, ocsp_file=str(f))]))
        assert rc == 1, err
        assert re.search(r"tls\.certificates\[1\]\.ocsp_file: .*%s"
                         % re.escape(str(f)), err), err
        assert why in err, err
    # The gateway refuses to start with one of those too.
    cfg = tls_config([entry(pki.good, ocsp_file=str(garbage))])
    path = tmp_path / "start.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([portcullis_binary(), "-c", str(path)],
                       capture_output=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert b"tls.certificates[0].ocsp_file: " in p.stderr, p.stderr
    # A response that is only stale (the host was down past its
    # nextUpdate) is a warning: the configuration is valid, nothing of it
    # is ever stapled.
    rc, err = check(tmp_path, tls_config([
        entry(pki.plain), entry(pki.good, ocsp_file=str(expired))]))
    assert rc == 0, err
    assert "ocsp_file %s: past its nextUpdate" % expired in err, err
    assert "not stapling it; replace the file and reload" in err, err


def test_config_errors_by_path(pki, tmp_path):
    base = entry(pki.good)
    cases = [
        ({"ocsp": "yes"}, "tls.certificates[0].ocsp: "),
        ({"ocsp_file": 5}, "tls.certificates[0].ocsp_file: "),
        ({"ocsp_file": ""}, "tls.certificates[0].ocsp_file: must not be"),
        ({"ocsp": False, "ocsp_file": "/x.der"},
         "tls.certificates[0].ocsp_file: given, but ocsp is false"),
        ({"ocsp_responder": "ftp://127.0.0.1/"},
         "tls.certificates[0].ocsp_responder: "),
        ({"ocsp_responder": ["http://a"]},
         "tls.certificates[0].ocsp_responder: "),
        ({"ocsp_responder": "http://a b/"},
         "tls.certificates[0].ocsp_responder: \"http://a b/\": at most"),
        ({"ocsp_responder": "http://a/" + "x" * 1100},
         "tls.certificates[0].ocsp_responder: "),
        ({"ocsp_responder": "http://127.0.0.1:1/", "ocsp_file": "/x.der"},
         "tls.certificates[0].ocsp_responder: not with ocsp_file"),
        ({"ocsp": False, "ocsp_responder": "http://127.0.0.1:1/"},
         "tls.certificates[0].ocsp_responder: given, but ocsp is false"),
    ]
    for extra, want in cases:
        e = dict(base)
        e.update(extra)
        rc, err = check(tmp_path, tls_config([e]))
        assert rc == 1, (extra, err)
        assert want in err, (extra, err)
    # A responder for a self-signed certificate: nothing could check it.
    ss = gwtest.make_cert(tmp_path, "self", "/CN=self.test", ["self.test"])
    rc, err = check(tmp_path, tls_config([
        {"cert": str(ss[0]), "key": str(ss[1]),
         "ocsp_responder": "http://127.0.0.1:%d/" % pki.port}]))
    assert rc == 1, err
    assert "tls.certificates[0].ocsp_responder: " in err and \
        "self-signed" in err, err
    # ocsp false and a valid responder URL are accepted.
    for extra in ({"ocsp": False},
                  {"ocsp_responder": "http://127.0.0.1:%d/" % pki.port}):
        e = dict(base)
        e.update(extra)
        rc, err = check(tmp_path, tls_config([e]))
        assert rc == 0, (extra, err)


def reloaded(gw, mark):
    """Waits for the reload after error-log offset `mark` to be logged."""
    gwtest.wait_until(lambda: "reload: " in gw.error_log()[mark:]
                      and " loaded" in gw.error_log()[mark:], timeout=30,
                      what="the reload to finish")


def test_staple_survives_reload(pki, responder, tls_gateway):
    """A reload that keeps the certificate and responder keeps the staple
    and its counters: nothing is fetched again, and the staple is served
    while the responder is down."""
    r = responder()
    gw = tls_gateway([entry(pki.good)])
    gwtest.wait_until(
        lambda: sample(gw, "portcullis_tls_ocsp_staple_valid",
                       pki.good[0]) == 1, timeout=60, what="a staple")
    good = sample(gw, "portcullis_tls_ocsp_fetches_total", pki.good[0],
                  result="good")
    r.stop()
    mark = len(gw.error_log())
    cfg = dict(gw.config)
    cfg["tls"] = dict(cfg["tls"])
    cfg["tls"]["certificates"] = [entry(pki.good), entry(pki.plain)]
    gw.reload(cfg)
    reloaded(gw, mark)
    out = status(gw, GOOD)
    assert stapled(out) and "Cert Status: good" in out, out
    assert sample(gw, "portcullis_tls_ocsp_fetches_total", pki.good[0],
                  result="good") == good
    assert sample(gw, "portcullis_tls_ocsp_fetches_total", pki.good[0],
                  result="failed") == 0


def test_ocsp_file_reread_on_reload(pki, tmp_path, tls_gateway):
    """SIGHUP reads ocsp_file again; a broken one keeps the running
    config (and its staple)."""
    now = datetime.datetime.utcnow().replace(microsecond=0)
    der = tmp_path / "good.der"
    first = now + datetime.timedelta(hours=6)
    second = now + datetime.timedelta(hours=7)
    der.write_bytes(pki.response(pki.good[0],
                                 now - datetime.timedelta(minutes=5), first))
    gw = tls_gateway([entry(pki.good, ocsp_file=str(der))])

    def next_update():
        return sample(gw, "portcullis_tls_ocsp_next_update_timestamp_seconds",
                      pki.good[0])

    epoch = datetime.datetime(1970, 1, 1)
    assert next_update() == (first - epoch).total_seconds()
    der.write_bytes(pki.response(pki.good[0],
                                 now - datetime.timedelta(minutes=1), second))
    mark = len(gw.error_log())
    gw.reload(gw.config)
    reloaded(gw, mark)
    assert next_update() == (second - epoch).total_seconds()
    out = status(gw, GOOD)
    assert stapled(out) and "Cert Status: good" in out, out
    # A file that no longer verifies: the reload is refused, by path.
    der.write_bytes(b"garbage")
    mark = len(gw.error_log())
    gw.reload(gw.config)
    gwtest.wait_until(
        lambda: "keeping the running config" in gw.error_log()[mark:],
        timeout=30, what="the reload to be refused")
    assert "tls.certificates[0].ocsp_file: " in gw.error_log()[mark:]
    assert next_update() == (second - epoch).total_seconds()
    out = status(gw, GOOD)
    assert stapled(out) and "Cert Status: good" in out, out
