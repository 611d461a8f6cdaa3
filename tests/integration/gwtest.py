"""gwtest.py - helpers shared by the integration tests: a raw HTTP/1.1
client that sees the exact bytes, a Prometheus text-format parser, and
polling. Standard library only."""

import http.client
import json
import re
import socket
import time


def wait_until(pred, timeout=5.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value, which is returned;
    raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------- raw HTTP


class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def header(self, name):
        """The value of the first field called `name` (any case), or None."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self):
        return "<Response %d %s, %d body bytes>" % (
            self.status, self.reason, len(self.body))


class RawConn:
    """One client connection to host:port; send bytes, parse responses."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0,
                 source_address=None):
        """source_address: a local (ip, port) to bind first, e.g.
        ("127.0.0.2", 0) to be another client address on loopback."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=source_address)
        self.buf = b""
        self.eof = False

    @classmethod
    def wrap(cls, sock):
        """A RawConn over an already connected socket."""
        c = cls.__new__(cls)
        c.sock, c.buf, c.eof = sock, b"", False
        return c

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed by peer; buffered %r"
                           % self.buf[:200])
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("connection closed by peer; buffered %r"
                           % self.buf[:200])
        self.buf += data

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, method="GET"):
        """Reads one whole response (RFC 9112 section 6.3 framing)."""
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        lines = head[:-4].split("\r\n")
        m = re.match(r"^(HTTP/1\.[01]) (\d{3}) ?(.*)$", lines[0])
        assert m, "bad status line %r" % lines[0]
        version, status, reason = m.group(1), int(m.group(2)), m.group(3)
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep, "bad header line %r" % line
            headers.append((name, value.strip()))
        r = Response(version, status, reason, headers, b"")
        if (method == "HEAD" or status in (204, 304) or 100 <= status < 200):
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te is not None:
            assert te.lower() == "chunked", "transfer-encoding %r" % te
            body = bytearray()
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    while self._read_until(b"\r\n") != b"\r\n":
                        pass
                    break
                body += self._read_exact(size)
                assert self._read_exact(2) == b"\r\n"
            r.body = bytes(body)
        elif cl is not None:
            r.body = self._read_exact(int(cl))
        else:
            r.body = self.read_to_eof()
        return r

    def read_to_eof(self):
        """Everything until the peer closes (or resets) the connection."""
        while not self.eof:
            try:
                self._fill()
            except EOFError:
                break
            except ConnectionResetError:
                self.eof = True
                break
        out, self.buf = self.buf, b""
        return out

    def is_closed(self, timeout=2.0):
        """True if the peer closes the connection within `timeout` seconds
        and sends nothing more; raises if it sends bytes."""
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        assert not data, "unexpected bytes after the response: %r" % data[:200]
        self.eof = True
        return True


def raw_exchange(port, data, method="GET", timeout=10.0):
    """Sends `data` on a new connection, returns the first response."""
    with RawConn(port, timeout=timeout) as c:
        c.send(data)
        return c.read_response(method)


def request(port, method, path, headers=None, body=None, timeout=10.0):
    """One request with http.client on a new connection; returns
    (status, {lowercase name: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def get(port, path, headers=None, timeout=10.0):
    return request(port, "GET", path, headers=headers, timeout=timeout)


def raw_request(port, method, path, headers=(), body=b"", host="gw.test",
                source_address=None, timeout=10.0):
    """One request on a new connection with exactly the header fields
    given: `headers` is a list of (name, value) sent in that order and case
    (duplicates allowed), after Host and before "Connection: close".
    Returns the Response (all header fields as received)."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + host]
    lines += ["%s: %s" % (n, v) for n, v in headers]
    if body:
        lines.append("Content-Length: %d" % len(body))
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with RawConn(port, timeout=timeout, source_address=source_address) as c:
        c.send(data)
        return c.read_response(method)


# ------------------------------------------------------ Prometheus text format

_SAMPLE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """Parses the Prometheus text exposition format into a list of
    (name, {label: value}, float). Raises on a malformed line."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "malformed metrics line %r" % line
        name, labels_s, value = m.groups()
        labels = {}
        if labels_s:
            pos = 0
            while pos < len(labels_s):
                lm = _LABEL.match(labels_s, pos)
                assert lm, "malformed labels in %r" % line
                labels[lm.group(1)] = (lm.group(2).replace('\\"', '"')
                                       .replace("\\n", "\n")
                                       .replace("\\\\", "\\"))
                pos = lm.end()
        out.append((name, labels, float(value)))
    return out


def metric(samples, name, **labels):
    """The value of the one sample called `name` whose labels include
    `labels`; None if there is none; AssertionError if several."""
    hits = [v for n, l, v in samples
            if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]
    assert len(hits) <= 1, "%d samples match %s%r" % (len(hits), name, labels)
    return hits[0] if hits else None


def samples_named(samples, name, **labels):
    return [(l, v) for n, l, v in samples
            if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]


# ------------------------------------------------------------ basic auth
#
# Password hashes are made at run time by independent tools: Debian's
# htpasswd (apache2-utils), `openssl passwd` and mkpasswd (whois). Passwords
# are test strings made by the tests, never real secrets.

HTPASSWD = "/usr/bin/htpasswd"
MKPASSWD = "/usr/bin/mkpasswd"


def basic_auth(user, password):
    """The Authorization value of RFC 7617: "Basic " and the base64 of
    "user:password" in UTF-8."""
    import base64
    raw = ("%s:%s" % (user, password)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def run_tool(argv, data=None, timeout=60.0):
    """Runs argv (str or bytes items) with `data` (bytes) on stdin; returns
    (exit status, stdout bytes, stderr bytes)."""
    import subprocess
    p = subprocess.run(argv, input=data if data is not None else b"",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def _one_line(tool, rc, out, err):
    if rc != 0:
        raise AssertionError("%s: exit %d: %s" % (tool, rc,
                                                 err.decode(errors="replace")))
    lines = [l for l in out.decode("utf-8").splitlines() if l.strip()]
    assert len(lines) == 1, "%s printed %r" % (tool, out)
    return lines[0].strip()


def htpasswd_line(user, password, *flags):
    """The "user:hash" line `htpasswd -nb FLAGS USER PASSWORD` prints; flags
    pick the format: "-m" (apr1), "-B" (bcrypt; add "-C", "4" for the
    cost), "-s" ({SHA}), "-2"/"-5" (SHA-256/512 crypt; "-r", "N" rounds),
    "-p" (plain text)."""
    rc, out, err = run_tool([HTPASSWD, "-nb"] + list(flags) + [user, password])
    line = _one_line("htpasswd -nb %s" % " ".join(flags), rc, out, err)
    assert line.startswith(user + ":"), line
    return line


def htpasswd_verify(path, user, password):
    """The exit status of `htpasswd -vb PATH USER PASSWORD`: 0 when the
    password matches, 3 when it does not, 6 for an unknown user."""
    rc, _, _ = run_tool([HTPASSWD, "-vb", str(path), user, password])
    return rc


def openssl_passwd(flag, password):
    """A hash made by `openssl passwd FLAG -stdin` ("-1", "-5", "-6",
    "-apr1")."""
    rc, out, err = run_tool(["/usr/bin/openssl", "passwd", flag, "-stdin"],
                            data=password.encode("utf-8") + b"\n")
    return _one_line("openssl passwd " + flag, rc, out, err)


def mkpasswd(method, password, rounds=None):
    """A hash made by `mkpasswd -m METHOD [-R ROUNDS] -s` (password on
    stdin): "yescrypt", "bcrypt", "bcrypt-a", "sha512crypt", ..."""
    argv = [MKPASSWD, "-m", method, "-s"]
    if rounds is not None:
        argv[3:3] = ["-R", str(rounds)]
    rc, out, err = run_tool(argv, data=password.encode("utf-8") + b"\n")
    return _one_line("mkpasswd -m " + method, rc, out, err)


def write_file_in_place(path, text, mtime=None):
    """Rewrites `path` in place (same inode) with one write from offset 0,
    then cuts what is left of the old text, so a reader never sees it empty
    in between; with `mtime` (seconds, float) sets its atime and mtime."""
    import os
    with open(path, "r+b") as f:
        f.write(text.encode("utf-8"))
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
    if mtime is not None:
        os.utime(path, (mtime, mtime))


AUTH_RESULTS = ("ok", "cached", "denied", "throttled", "unavailable")


def auth_counters(samples, realm):
    """{result: value} of portcullis_auth_requests_total for `realm`, and
    "verifications": portcullis_auth_verifications_total; a missing series
    is None."""
    out = {r: metric(samples, "portcullis_auth_requests_total", realm=realm,
                     result=r) for r in AUTH_RESULTS}
    out["verifications"] = metric(samples,
                                  "portcullis_auth_verifications_total",
                                  realm=realm)
    return out


def counters_delta(before, after):
    """after - before, key by key (both from auth_counters)."""
    return {k: after[k] - before[k] for k in before}


# ------------------------------------------------------------------ logs


def read_json_lines(path):
    """Every line of a JSON-lines file, parsed; a malformed line fails."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    lines.pop()  # empty, or a line still being written
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError("%s line %d is not JSON: %r"
                                 % (path, i + 1, line[:300]))
    return out


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0


# ------------------------------------------------------------------ TLS
#
# Real tools only: /usr/bin/openssl for certificates and s_client, Python's
# ssl module for clients that keep a connection. Certificates and keys are
# made at run time in the test's temporary directory, never committed.

OPENSSL = "/usr/bin/openssl"


def openssl(*args, data=None, timeout=30.0, check=True):
    """Runs /usr/bin/openssl; returns (exit status, stdout+stderr text).
    With check, a non-zero exit raises with the output."""
    import subprocess
    p = subprocess.run([OPENSSL] + [str(a) for a in args], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError("openssl %s: exit %d\n%s"
                             % (" ".join(map(str, args)), p.returncode, out))
    return p.returncode, out


def _keygen_args(key_type):
    if key_type == "rsa":
        return ["-newkey", "rsa:2048"]
    assert key_type == "ecdsa", key_type
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]


def make_ca(directory, cn="Portcullis Test CA"):
    """A small CA (ECDSA P-256, 2 days): returns (cert path, key path)."""
    from pathlib import Path
    d = Path(directory)
    crt, key = d / "ca.crt", d / "ca.key"
    openssl("req", "-x509", *_keygen_args("ecdsa"), "-nodes", "-sha256",
            "-subj", "/CN=" + cn, "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", key, "-out", crt)
    return crt, key


def make_cert(directory, stem, subject, sans, key_type="ecdsa", ca=None,
              days=30):
    """A server certificate for `subject` ("/O=x/CN=y") with DNS or IP
    `sans`, signed by ca=(crt, key), or self-signed when ca is None.
    Returns (cert path, key path); the key is written 0600."""
    import os
    from pathlib import Path
    d = Path(directory)
    crt, key, csr = d / (stem + ".crt"), d / (stem + ".key"), \
        d / (stem + ".csr")
    san = ",".join(("IP:" if all(c.isdigit() or c == "." for c in n)
                    else "DNS:") + n for n in sans)
    ext = d / (stem + ".ext")
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature%s\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=%s\n"
                   % (",keyEncipherment" if key_type == "rsa" else "", san))
    if ca is None:
        openssl("req", "-x509", *_keygen_args(key_type), "-nodes", "-sha256",
                "-subj", subject, "-days", days, "-keyout", key, "-out", crt,
                "-extensions", "v3_srv", "-config", _req_config(d, ext))
    else:
        openssl("req", "-new", *_keygen_args(key_type), "-nodes",
                "-subj", subject, "-keyout", key, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
                "-CAcreateserial", "-sha256", "-days", days,
                "-extfile", ext, "-out", crt)
    os.chmod(key, 0o600)
    return crt, key


def _req_config(d, ext):
    conf = d / "req.cnf"
    conf.write_text("[req]\ndistinguished_name=dn\n[dn]\n[v3_srv]\n"
                    + ext.read_text())
    return conf


def cert_subject(path):
    """The subject of a PEM certificate in RFC 2253 form ("CN=a,O=b")."""
    _, out = openssl("x509", "-in", path, "-noout", "-subject",
                     "-nameopt", "RFC2253")
    return out.strip().split("=", 1)[1]


def cert_not_after(path):
    """notAfter of a PEM certificate as unix seconds."""
    import ssl
    _, out = openssl("x509", "-in", path, "-noout", "-enddate")
    return int(ssl.cert_time_to_seconds(out.strip().split("=", 1)[1]))


def cert_not_before(path):
    import ssl
    _, out = openssl("x509", "-in", path, "-noout", "-startdate")
    return int(ssl.cert_time_to_seconds(out.strip().split("=", 1)[1]))


def cert_fingerprint(path):
    """SHA-256 fingerprint, upper-case hex with colons (as openssl says)."""
    _, out = openssl("x509", "-in", path, "-noout", "-fingerprint",
                     "-sha256")
    return out.strip().split("=", 1)[1]


def cert_sans(path):
    """The subjectAltName entries as openssl prints them, as a set
    ({"DNS:a.test", "IP Address:127.0.0.1"})."""
    _, out = openssl("x509", "-in", path, "-noout", "-ext",
                     "subjectAltName")
    lines = out.strip().splitlines()
    if len(lines) < 2:
        return set()
    return {s.strip() for s in lines[1].split(",")}


def cert_der(path):
    """The first certificate of a PEM file, DER bytes (compare with
    SSLSocket.getpeercert(binary_form=True))."""
    import ssl
    text = open(path).read()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(text[:text.index(end) + len(end)] + "\n")


def tls_client_context(cafile=None, minimum=None, maximum=None):
    """A client context; verifies against cafile when given (hostname
    checks included), else accepts any certificate."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is not None:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def tls_connect(port, server_hostname="gw.test", context=None, timeout=10.0):
    """A TLS connection to 127.0.0.1:port, handshake done; an SSLSocket."""
    ctx = context or tls_client_context()
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def tls_request(port, method, path, headers=None, body=None,
                server_hostname="gw.test", context=None, timeout=10.0):
    """One request over a new TLS connection; returns a Response, with
    .tls_version and .peer_der (the served certificate) set."""
    s = tls_connect(port, server_hostname, context, timeout)
    with RawConn.wrap(s) as c:
        hs = {"Host": "gw.test", "Connection": "close"}
        hs.update(headers or {})
        if body is not None:
            hs["Content-Length"] = str(len(body))
        head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join(
            "%s: %s\r\n" % kv for kv in hs.items()) + "\r\n"
        c.send(head.encode() + (body or b""))
        r = c.read_response(method)
        r.tls_version = s.version()
        r.peer_der = s.getpeercert(binary_form=True)
        return r


def client_hello(server_hostname="gw.test"):
    """The bytes of a real ClientHello (Python's ssl through a memory BIO),
    never sent anywhere."""
    import ssl
    ctx = tls_client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:20]
    return hello


def s_client(port, *args, request=None, timeout=20.0):
    """Runs `openssl s_client -connect 127.0.0.1:port -nameopt RFC2253
    ARGS`; with `request` (bytes) it is sent after the handshake and
    s_client waits for the server to close (-ign_eof), so the request should
    say "Connection: close". Returns (exit status, output)."""
    argv = ["s_client", "-connect", "127.0.0.1:%d" % port,
            "-nameopt", "RFC2253"]
    if request is not None:
        argv.append("-ign_eof")
    argv += list(args)
    return openssl(*argv, data=request or b"", timeout=timeout, check=False)


def http_get_bytes(path, host="gw.test"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
            % (path, host)).encode()


def s_client_session(out):
    """(`New` or `Reused`, protocol, cipher) from s_client's
    "New, TLSv1.3, Cipher is X" line, or None if there is none."""
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)$", out, re.M)
    return m.groups() if m else None


def s_client_subject(out):
    """The served certificate's subject (RFC 2253) from s_client's output."""
    m = re.search(r"^subject=(.*)$", out, re.M)
    return m.group(1).strip() if m else None


def s_client_refused(out):
    """True if s_client's output shows the server refused the handshake with
    an alert (not a local failure of the client): no cipher, an alert."""
    return ("Cipher is (NONE)" in out
            and re.search(r"SSL alert number \d+", out) is not None)


class KeptConn:
    """One keep-alive connection to a gateway (anything with .port) that
    sends GET `path` with basic credentials: the worker that owns it keeps
    the cache entry its first request made, so a test sees that worker's
    cache."""

    def __init__(self, gw, path="/secure/k"):
        self.path = path
        self.c = RawConn(gw.port)

    def status(self, user, pw):
        self.c.send(("GET %s HTTP/1.1\r\nHost: k.test\r\n"
                     "Authorization: %s\r\n\r\n"
                     % (self.path, basic_auth(user, pw))).encode())
        return self.c.read_response().status

    def close(self):
        self.c.close()
