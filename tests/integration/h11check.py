"""h11check.py - helpers for the tests that hold the gateway to a strict,
independent HTTP/1.1 parser (h11) on the other side: a client whose
response parser is h11, the gateway layout those tests share, and the
checks of what a message may carry after the gateway (framing fields,
Connection options, the user header, identity fields).

Requests and responses are always sent as raw bytes; h11 only reads."""

import json
import re
import socket

import h11
from hypothesis import HealthCheck, Phase, settings

import gwtest
from conftest import upstream

USER = "admin"
USER_HEADER = "X-WEBAUTH-USER"
REALM = "main"

# Fields the gateway sets itself: a client's copy never reaches the
# upstream, the gateway's own does.
GATEWAY_FIELDS = {"content-length", "transfer-encoding", "connection",
                  "host", "x-forwarded-for", "x-real-ip", "x-forwarded-proto",
                  "x-forwarded-host", "x-request-id", USER_HEADER.lower()}

# Trailer fields that must never reach the upstream (they would rewrite the
# framing, routing or identity of the request after the fact).
FORBIDDEN_TRAILERS = {"content-length", "transfer-encoding", "host",
                      USER_HEADER.lower()}

CL_RE = re.compile(r"^(0|[1-9][0-9]*)$")


def show(data, cap=1500):
    """bytes for an assertion message: repr, cut at `cap`."""
    if isinstance(data, str):
        data = data.encode("latin-1", "replace")
    if len(data) > cap:
        return "%r... (%d bytes)" % (data[:cap], len(data))
    return repr(data)


def values(fields, name):
    """Every value of field `name` (any case) in [[name, value]...]."""
    return [v for n, v in fields if n.lower() == name.lower()]


def tokens(fields, name):
    """The comma-separated elements of every field `name`, lower case."""
    out = []
    for v in values(fields, name):
        out += [t.strip().lower() for t in v.split(",") if t.strip()]
    return out


def framing_problems(fields, body_len, body_allowed=True, need_one=True):
    """What is wrong with the framing fields of a message with `fields`
    (as on the wire) whose decoded body has body_len bytes: more than one
    framing field, a Transfer-Encoding other than "chunked", a
    Content-Length that is not canonical digits or not the body length,
    none at all for a body (need_one)."""
    p = []
    cl = values(fields, "content-length")
    te = values(fields, "transfer-encoding")
    if len(cl) + len(te) > 1:
        p.append("%d framing fields (Content-Length %r, Transfer-Encoding "
                 "%r); want exactly one" % (len(cl) + len(te), cl, te))
    for v in te:
        if v.lower() != "chunked":
            p.append("Transfer-Encoding %r, not chunked" % v)
    for v in cl:
        if not CL_RE.match(v):
            p.append("Content-Length %r is not canonical (no sign, no "
                     "leading zeros)" % v)
        elif body_allowed and not te and int(v) != body_len:
            p.append("Content-Length %r but the body has %d bytes"
                     % (v, body_len))
    if need_one and body_allowed and not cl and not te and body_len:
        p.append("a %d-byte body without a framing field" % body_len)
    return p


def chunked_scan(data):
    """Reads a chunked body leniently from raw bytes (possibly cut short):
    (decoded data, size lines, trailer lines, complete)."""
    out = bytearray()
    lines, trailers = [], []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return bytes(out), lines, trailers, False
        line = data[pos:end]
        lines.append(line)
        try:
            size = int(line.split(b";")[0].strip(b" \t"), 16)
        except ValueError:
            return bytes(out), lines, trailers, False
        pos = end + 2
        if size == 0:
            while True:
                end = data.find(b"\r\n", pos)
                if end < 0:
                    return bytes(out), lines, trailers, False
                if end == pos:
                    return bytes(out), lines, trailers, True
                trailers.append(data[pos:end])
                pos = end + 2
        out += data[pos:pos + size]
        if len(data) < pos + size + 2:
            return bytes(out), lines, trailers, False
        pos += size + 2


def split_head(raw):
    """(head bytes up to and with the blank line, rest) of a message."""
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        return raw, b""
    return raw[:i + 4], raw[i + 4:]


def head_fields(head):
    out = []
    for line in head.split(b"\r\n")[1:]:
        if line:
            n, _, v = line.partition(b":")
            out.append([n.decode("latin-1"),
                        v.strip(b" \t").decode("latin-1")])
    return out


# ------------------------------------------------------------ the gateway


def users_file(path, password):
    """An htpasswd file with USER (bcrypt, cost 4, made by htpasswd)."""
    path.write_text(gwtest.htpasswd_line(USER, password, "-B", "-C", "4")
                    + "\n")
    return path


def routes(up_name="h11", root=False, max_body_size=None):
    """/public/ (open), /admin/ (realm, user header) and /strip/ (open,
    prefix stripped), all to one upstream; with root, "/" too (open)."""
    rs = [{"name": "public", "path": "/public/", "upstream": up_name},
          {"name": "admin", "path": "/admin/", "upstream": up_name,
           "realm": REALM, "user_header": USER_HEADER},
          {"name": "strip", "path": "/strip/", "upstream": up_name,
           "strip_prefix": True}]
    if root:
        rs.append({"name": "root", "path": "/", "upstream": up_name})
    if max_body_size is not None:
        for r in rs:
            r["max_body_size"] = max_body_size
    return rs


def start_gateway(gateway, up, tmp_path, password, root=False,
                  listener=None, max_body_size=None, **top):
    """A gateway with routes() to the h11 upstream `up`; the realm's only
    user is USER with `password`; the failure guard is off."""
    users = users_file(tmp_path / "users.htpasswd", password)
    gw = gateway({"h11": upstream(up.port)},
                 routes(root=root, max_body_size=max_body_size), listener,
                 realms={REALM: {"htpasswd": str(users), "max_failures": 0}},
                 **top)
    gw.up = up
    return gw


def upstream_target(target, root=False):
    """The route a target takes (by its path) and the target the upstream
    must get: ("public"|"admin"|"strip"|"root"|None, target)."""
    path = target
    m = re.match(r"^https?://[^/?]*", target, re.I)
    if m:
        path = target[m.end():] or "/"
        if path.startswith("?"):
            path = "/" + path
    for name, prefix in (("admin", "/admin/"), ("public", "/public/"),
                         ("strip", "/strip/")):
        if path.startswith(prefix):
            if name == "strip":
                return name, path[len(prefix) - 1:]
            return name, path
    if root and path.startswith("/"):
        return "root", path
    return None, path


# ------------------------------------------------------------ h11 client


class H11Response:
    """One response as h11 read it (headers, body, trailers) and as it
    came (raw_head, fields: the raw head's lines; raw: all its bytes)."""

    def __init__(self):
        self.raw = b""
        self.status = None
        self.reason = b""
        self.http_version = None
        self.headers = []   # [[name, value]] as h11 parsed them
        self.fields = []    # [[name, value]] from the raw head
        self.raw_head = b""
        self.informational = []
        self.body = bytearray()
        self.trailers = []
        self.keep_alive = False

    def header(self, name):
        v = values(self.headers, name)
        return v[0] if v else None

    def json(self):
        try:
            return json.loads(bytes(self.body))
        except ValueError:
            return None

    def upstream_id(self):
        """(conn, index) of the h11 upstream's answer, or None if this
        response was not made by the h11 upstream."""
        v = self.header("x-h11-request")
        if v is None:
            return None
        a, _, b = v.partition(".")
        return int(a), int(b)

    def __repr__(self):
        return "<%s %r, %d body bytes>" % (self.status, self.raw_head,
                                           len(self.body))


class ClientProtocolError(AssertionError):
    pass


class H11Client:
    """One connection to the gateway: requests go out as raw bytes, each
    response is read by a fresh h11.CLIENT state (so an HTTP/1.0
    keep-alive answer can be followed by another) and also kept raw."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.received = bytearray()
        self.pos = 0   # offset in received of the next response
        self.eof = False
        self.last = None

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway may have answered and closed already

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def can_send_more(self):
        """True if the last response left the connection open for another
        request (as h11 reads the response: HTTP/1.1 without close, or
        HTTP/1.0 with keep-alive)."""
        return self.last is not None and self.last.keep_alive \
            and not self.eof

    def _recv(self, h):
        if self.eof:
            h.receive_data(b"")
            return
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.received += data
        h.receive_data(data)
        if not data:
            self.eof = True

    def read_response(self, method="GET", version="1.1"):
        """Reads the next response (after any 1xx) to a request with this
        method and version. Returns None if the gateway closed the
        connection without starting one; raises ClientProtocolError, with
        the raw bytes, if h11 refuses what it got; socket.timeout if
        nothing complete came in time."""
        h = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
        # h11 only writes HTTP/1.1; "Connection: close" gives it the
        # expectations of a 1.0 request (reading does not differ otherwise)
        hs = [("Host", "gw.test")]
        if version != "1.1":
            hs.append(("Connection", "close"))
        h.send(h11.Request(method=method, target="/", headers=hs))
        h.send(h11.EndOfMessage())
        start = self.pos
        if len(self.received) > start:
            h.receive_data(bytes(self.received[start:]))
        if self.eof:
            h.receive_data(b"")

        def consumed():
            # h has been given every byte from `start` on
            return len(self.received) - len(h.trailing_data[0])
        r = H11Response()
        head_start = start
        while True:
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as e:
                if self.eof and len(self.received) == start:
                    self.last = None
                    return None  # closed without a byte of an answer
                raise ClientProtocolError(
                    "h11 (client) refused the gateway's response: %s\n"
                    "bytes received for it: %s"
                    % (e, show(bytes(self.received[start:]))))
            if ev is h11.NEED_DATA:
                self._recv(h)
                continue
            if isinstance(ev, h11.ConnectionClosed):
                self.last = None
                return None
            if isinstance(ev, h11.InformationalResponse):
                r.informational.append(ev.status_code)
                head_start = consumed()
            elif isinstance(ev, h11.Response):
                r.status = ev.status_code
                r.reason = ev.reason
                r.http_version = ev.http_version.decode()
                r.headers = [[n.decode("latin-1"), v.decode("latin-1")]
                             for n, v in ev.headers.raw_items()]
                r.raw_head = bytes(self.received[head_start:consumed()])
                r.fields = head_fields(r.raw_head)
            elif isinstance(ev, h11.Data):
                r.body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                r.trailers = [[n.decode("latin-1"), v.decode("latin-1")]
                              for n, v in ev.headers.raw_items()]
                self.pos = consumed()
                r.raw = bytes(self.received[start:self.pos])
                r.body = bytes(r.body)
                conn = tokens(r.fields, "connection")
                r.keep_alive = bool(h.their_state is h11.DONE or (
                    version == "1.0" and "keep-alive" in conn
                    and "close" not in conn
                    and (values(r.fields, "content-length")
                         or r.status in (204, 304) or method == "HEAD")))
                self.last = r
                return r

    def closed_soon(self, timeout=3.0):
        """True if the gateway closes the connection within `timeout`
        seconds and sends no more bytes."""
        if self.eof:
            return len(self.received) == self.pos
        if len(self.received) > self.pos:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        self.received += data
        self.eof = not data
        return not data


# ------------------------------------------------- what the upstream got


def request_problems(ev, method, target, body, user=None, conn_named=(),
                     no_authorization=False):
    """What is wrong with an h11 upstream "request" event, compared with
    the request the client meant: same method, target and decoded body;
    no field name with "_"; exactly one canonical framing field when there
    is a body; the user header exactly [user] (or absent when user is
    None); no field the client's Connection named (but the gateway's own);
    the upstream's Connection only keep-alive/close (and upgrade for a
    WebSocket handshake); exactly one
    X-Forwarded-For and X-Real-IP of 127.0.0.1; no trailer that could
    change framing, routing or identity; no Authorization when asked."""
    import hashlib
    p = []
    fields = ev["fields"]
    if ev["method"] != method:
        p.append("method %r, sent %r" % (ev["method"], method))
    if ev["target"] != target:
        p.append("target %r, expected %r" % (ev["target"], target))
    if (ev["body_len"], ev["body_sha256"]) != (
            len(body), hashlib.sha256(body).hexdigest()):
        p.append("body of %d bytes (sha256 %s), sent %d bytes %s"
                 % (ev["body_len"], ev["body_sha256"][:12], len(body),
                    show(body, 200)))
    under = [n for n, _ in fields if "_" in n]
    if under:
        p.append("fields with '_' in their name: %r" % under)
    p += framing_problems(fields, ev["body_len"])
    got_user = values(fields, USER_HEADER)
    want_user = [user] if user is not None else []
    if got_user != want_user:
        p.append("%s %r, expected %r" % (USER_HEADER, got_user, want_user))
    for name in conn_named:
        if name.lower() in GATEWAY_FIELDS:
            continue
        if values(fields, name):
            p.append("%s forwarded although the client's Connection named "
                     "it" % name)
    # a WebSocket handshake is the one upgrade the gateway forwards
    ok_conn = {"keep-alive", "close"}
    if "websocket" in tokens(fields, "upgrade"):
        ok_conn.add("upgrade")
    bad_conn = [t for t in tokens(fields, "connection") if t not in ok_conn]
    if bad_conn:
        p.append("Connection options forwarded: %r" % bad_conn)
    for name in ("X-Forwarded-For", "X-Real-IP"):
        if values(fields, name) != ["127.0.0.1"]:
            p.append("%s %r, expected ['127.0.0.1']"
                     % (name, values(fields, name)))
    bad_trailers = [n for n, _ in ev["trailers"]
                    if n.lower() in FORBIDDEN_TRAILERS]
    if bad_trailers:
        p.append("trailers forwarded: %r" % bad_trailers)
    if no_authorization and values(fields, "authorization"):
        p.append("Authorization forwarded on a realm route")
    return p


def describe_events(events, up_raw):
    """The upstream's events of one case, for an assertion message."""
    out = []
    for e in events:
        if e["event"] in ("request", "error"):
            out.append("  %s conn %s #%s: %s%s" % (
                e["event"], e["conn"], e["index"],
                ("%s %s " % (e["method"], e["target"]))
                if e["event"] == "request" else e["error"] + " ",
                show(up_raw(e), 800)))
    return "\n".join(out) or "  (nothing)"


def property_settings(max_examples):
    """hypothesis settings of the property tests: reproducible (a fixed
    derandomized order, no example database), no deadline on a noisy
    machine, and no shrinking, so a failure reports its first example
    within the per-test time limit."""
    return settings(max_examples=max_examples, derandomize=True,
                    database=None, deadline=None, print_blob=False,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))
