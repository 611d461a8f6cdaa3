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

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
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
