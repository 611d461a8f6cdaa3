"""A missing pair with self_signed is made at start (ECDSA P-256 or RSA
2048, CN and SANs from the config, the key 0600, the fingerprint logged);
an existing pair is never replaced; half a pair is an error naming the
missing file; `portcullis -t` makes nothing and says what start will make."""

import json
import os
import stat
import subprocess
import time

import pytest

import gwtest
from conftest import (free_port, make_config, portcullis_binary, tls_entry,
                      upstream)

DAY = 86400

ECDSA_SS = {"common_name": "gw.test", "alt_names": ["localhost", "127.0.0.1"],
            "key_type": "ecdsa", "days": 365}
RSA_SS = {"common_name": "rsa.test", "alt_names": ["rsa2.test"],
          "key_type": "rsa", "days": 30}


def config(entries, nginx_port=None):
    cfg = make_config(free_port(), free_port(),
                      {"static": upstream(nginx_port or free_port())},
                      [{"name": "static", "path": "/static/",
                        "upstream": "static", "strip_prefix": True}],
                      {"tls": True})
    cfg["tls"] = {"certificates": entries}
    return cfg


def run_binary(tmp_path, cfg, *flags, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg, indent=2))
    p = subprocess.run([portcullis_binary(), *flags, "-c", str(path)],
                       capture_output=True, timeout=20)
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


def snapshot(*paths):
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((st.st_ino, st.st_mtime_ns, p.read_bytes()))
    return out


def started_log(g):
    """The error log once the start line ("... worker(s) ...") is in."""
    return gwtest.wait_until(
        lambda: "worker(s)" in g.error_log() and g.error_log(), 5,
        what="the start line in the error log")


def pubkey_text(crt):
    return gwtest.openssl("x509", "-in", crt, "-noout", "-text")[1]


def test_made_at_start_and_kept(gateway, nginx, tmp_path):
    ecdsa = (tmp_path / "gw.crt", tmp_path / "gw.key")
    rsa = (tmp_path / "rsa.crt", tmp_path / "rsa.key")
    cfg = config([tls_entry(ecdsa, **ECDSA_SS), tls_entry(rsa, **RSA_SS)],
                 nginx.port)
    t0 = time.time()
    g = gateway.start_config(cfg)
    port = g.port

    for crt, key in (ecdsa, rsa):
        assert crt.is_file() and key.is_file()
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, \
            "%s has mode %o" % (key, stat.S_IMODE(os.stat(key).st_mode))
        # key and certificate belong together
        pub_c = gwtest.openssl("x509", "-in", crt, "-noout", "-pubkey")[1]
        pub_k = gwtest.openssl("pkey", "-in", key, "-pubout")[1]
        assert pub_c == pub_k, "%s does not match %s" % (key, crt)

    assert gwtest.cert_subject(ecdsa[0]) == "CN=gw.test"
    assert gwtest.cert_sans(ecdsa[0]) == {"DNS:gw.test", "DNS:localhost",
                                          "IP Address:127.0.0.1"}
    text = pubkey_text(ecdsa[0])
    assert "Public Key Algorithm: id-ecPublicKey" in text, text
    assert "ASN1 OID: prime256v1" in text, text
    assert gwtest.cert_subject(rsa[0]) == "CN=rsa.test"
    assert gwtest.cert_sans(rsa[0]) == {"DNS:rsa.test", "DNS:rsa2.test"}
    text = pubkey_text(rsa[0])
    assert "Public Key Algorithm: rsaEncryption" in text, text
    assert "Public-Key: (2048 bit)" in text, text
    for crt, days in ((ecdsa[0], 365), (rsa[0], 30)):
        nb, na = gwtest.cert_not_before(crt), gwtest.cert_not_after(crt)
        assert nb <= time.time() + 1, "notBefore in the future"
        assert abs(na - (t0 + days * DAY)) < 2 * 3600, \
            "%s: notAfter %d is not %d days from now" % (crt, na, days)

    # the fingerprint of each is logged (before the start line; the error
    # log is written by a thread of its own)
    err = started_log(g).lower()
    for crt, _ in (ecdsa, rsa):
        fp = gwtest.cert_fingerprint(crt)
        assert fp.lower() in err or fp.replace(":", "").lower() in err, \
            "fingerprint %s of %s not logged:\n%s" % (fp, crt, g.error_log())

    # and that is the certificate served
    ders = {gwtest.cert_der(ecdsa[0]), gwtest.cert_der(rsa[0])}
    r = gwtest.tls_request(port, "GET", "/static/small.txt")
    assert r.status == 200 and r.peer_der == gwtest.cert_der(ecdsa[0])
    s = gwtest.tls_connect(port, "rsa2.test")
    assert s.getpeercert(binary_form=True) == gwtest.cert_der(rsa[0])
    s.close()

    # a restart loads them: same files, same certificate, nothing remade
    before = snapshot(*ecdsa, *rsa)
    rc, killed = g.stop()
    assert (rc, killed) == (0, False)
    g2 = gateway.start_config(cfg)
    assert snapshot(*ecdsa, *rsa) == before, "a restart rewrote the pair"
    r = gwtest.tls_request(port, "GET", "/static/small.txt")
    assert r.status == 200 and r.peer_der in ders
    assert r.peer_der == gwtest.cert_der(ecdsa[0])
    assert "made a self-signed" not in started_log(g2)


@pytest.mark.parametrize("keep", ["key", "cert"])
def test_half_a_pair_fails_start(tmp_path, tls_certs, keep):
    src = tls_certs.pair("gw.test")
    crt, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    present, missing = (key, crt) if keep == "key" else (crt, key)
    present.write_bytes((src[1] if keep == "key" else src[0]).read_bytes())
    os.chmod(present, 0o600)
    before = snapshot(present)
    cfg = config([tls_entry((crt, key), **ECDSA_SS)])
    rc, out, err = run_binary(tmp_path, cfg)
    assert rc == 1, "exit %d with only the %s present\n%s%s" % (rc, keep,
                                                                out, err)
    lines = [l for l in err.splitlines() if str(missing) in l]
    assert lines, "the error does not name %s:\n%s" % (missing, err)
    assert not missing.exists(), "%s was made" % missing
    assert snapshot(present) == before, "%s was touched" % present
    # -t says the same
    rc, out, err = run_binary(tmp_path, cfg, "-t")
    assert rc == 1 and str(missing) in err, (rc, out, err)
    assert not missing.exists()


def test_missing_pair_without_self_signed_fails(tmp_path):
    crt, key = tmp_path / "none.crt", tmp_path / "none.key"
    rc, out, err = run_binary(tmp_path, config([tls_entry((crt, key))]))
    assert rc == 1 and str(crt) in err, (rc, out, err)
    assert not crt.exists() and not key.exists()


def test_check_makes_nothing(tmp_path, tls_certs):
    crt, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    cfg = config([tls_entry((crt, key), **ECDSA_SS)])
    rc, out, err = run_binary(tmp_path, cfg, "-t")
    assert rc == 0, (rc, out, err)
    lines = [l for l in (out + err).splitlines() if "will be made" in l]
    assert len(lines) == 1 and str(crt) in lines[0] and str(key) in lines[0], \
        out + err
    assert "configuration is valid" in out, out
    assert not crt.exists() and not key.exists(), "-t made files"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]

    # an existing pair is loaded and checked: a key of another pair fails
    good = tls_certs.pair("gw.test")
    other = tls_certs.pair("b.test")
    rc, out, err = run_binary(tmp_path, config([tls_entry(good)]), "-t")
    assert rc == 0 and "will be made" not in out + err, (rc, out, err)
    rc, out, err = run_binary(tmp_path, config([tls_entry((good[0],
                                                           other[1]))]),
                              "-t")
    assert rc == 1, (rc, out, err)
    assert str(good[0]) in err or str(other[1]) in err, err
