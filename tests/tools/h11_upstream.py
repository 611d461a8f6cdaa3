#!/usr/bin/python3
"""h11_upstream.py - an HTTP/1.1 upstream for portcullis's integration tests
whose request parser is h11 (an independent, strict implementation), so a
test sees exactly what the gateway sent and whether a strict parser accepts
it.

    h11_upstream.py --log FILE [--response-mode MODE] [--raw-dir DIR]

Binds 127.0.0.1 port 0 for requests and another port for control, then
prints "LISTENING <port>" and "CONTROL <port>" (one line each) on stdout.
One thread per connection, keep-alive. Stopped by the tests with SIGTERM to
its PID.

Every event is appended to --log as one JSON object per line:

  {"event": "open", "conn": N}
  {"event": "request", "conn": N, "index": I, "method", "target",
   "http_version", "headers": [[name, value], ...] (as h11 parsed them,
   names in the case received, latin-1), "fields": the same from the raw
   head lines (h11 folds identical Content-Length fields into one; these do
   not), "framing": "chunked" | "content-length" | "none" (from the
   headers), "body_len", "body_sha256", "chunks": the raw chunk-size lines
   (extensions included) of a chunked body, "h11_chunks": how many chunks h11
   reported (Data events with chunk_start), "trailers": [[name, value]...]
   (h11's), "raw": base64 of the bytes of this request on the wire (head and
   body framing, capped at RAW_CAP), "raw_len", "pipelined": bytes already
   received after the end of this request when it was logged}
  {"event": "error", "conn": N, "index": I, "error": "...", "raw": base64
   of the bytes received since the end of the last complete request
   (capped), "raw_len"} - h11 refused what the gateway sent (or the peer
   closed in the middle of a request); the connection is then closed
  {"event": "close", "conn": N, "requests": count}

A request is logged when it is complete, before it is answered. The answer
is 200 with header "X-H11-Request: N.I" and a JSON body {"conn", "index",
"method", "target", "body_len", "body_sha256"}, framed per the response
mode: --response-mode, or per request the field "X-Test-Response":

  length       Content-Length (the default)
  chunked      chunked (several chunks), for an HTTP/1.1 request
  length:N     Content-Length, body padded (in its JSON) to N bytes
  chunked:N    chunked, N bytes
  raw:NAME     the bytes of file NAME in --raw-dir, verbatim; then the
               connection goes on (a fresh h11 state for the next request)
  rawclose:NAME  the same, then the connection is closed (for responses
               delimited by the close)

Control port: a connection that sends "quiet\\n" gets one JSON line,
{"quiet": bool, "busy": [...]}: quiet when no connection is waiting in the
accept queue, and every connection is closed or idle between requests with
no unread byte (nothing received and not yet parsed and logged). Tests wait
for quiet before they read the log, so no request the gateway sent can
still be on its way.

Needs python3-h11 (Debian 12: 0.14). Standard library otherwise.
"""

import argparse
import base64
import fcntl
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import termios
import threading

import h11

RAW_CAP = 256 * 1024
MAX_HEAD = 1 << 20
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def b64(data):
    return base64.b64encode(bytes(data[:RAW_CAP])).decode("ascii")


def latin1_pairs(items):
    return [[bytes(n).decode("latin-1"), bytes(v).decode("latin-1")]
            for n, v in items]


def head_fields(head):
    """[[name, value]...] from the raw lines of a head (bytes)."""
    out = []
    for line in head.split(b"\r\n")[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        out.append([name.decode("latin-1"),
                    value.strip(b" \t").decode("latin-1")])
    return out


def chunk_lines(body):
    """The chunk-size lines of a chunked body h11 accepted (raw bytes)."""
    out = []
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            break
        line = body[pos:end]
        out.append(line.decode("latin-1"))
        try:
            size = int(line.split(b";")[0].strip(b" \t"), 16)
        except ValueError:
            break
        if size == 0:
            break
        pos = end + 2 + size + 2
    return out


def fionread(sock):
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


class Log:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def write(self, rec):
        line = json.dumps(rec)
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


class Stream:
    """An h11 server state over a byte stream, with the absolute offsets
    needed to cut the raw bytes of each request out of the stream."""

    def __init__(self):
        self.h = h11.Connection(h11.SERVER,
                                max_incomplete_event_size=MAX_HEAD)
        self.fed = 0      # bytes given to self.h
        self.base = 0     # absolute offset of self.h's first byte
        self.buf = bytearray()  # bytes from offset self.buf_start on
        self.buf_start = 0

    def feed(self, data):
        self.buf += data
        if data:
            self.h.receive_data(data)
            self.fed += len(data)
        else:
            self.h.receive_data(b"")

    def unparsed(self):
        return len(self.h.trailing_data[0])

    def consumed(self):
        """Absolute offset of the first byte h11 has not consumed."""
        return self.base + self.fed - self.unparsed()

    def raw(self, start, end=None):
        a = start - self.buf_start
        b = (end - self.buf_start) if end is not None else len(self.buf)
        return bytes(self.buf[max(a, 0):b])

    def forget_before(self, offset):
        cut = offset - self.buf_start
        if cut > 0:
            del self.buf[:cut]
            self.buf_start = offset

    def restart(self):
        """A fresh h11 state from the current position (after a response
        h11 did not make)."""
        rest = self.h.trailing_data[0]
        self.base = self.consumed()
        self.h = h11.Connection(h11.SERVER,
                                max_incomplete_event_size=MAX_HEAD)
        self.fed = 0
        if rest:
            self.h.receive_data(rest)
            self.fed = len(rest)


class ConnState:
    def __init__(self, n, sock):
        self.n = n
        self.sock = sock
        self.lock = threading.Lock()
        self.stream = Stream()
        self.closed = False
        self.mid_request = False


class Server:
    def __init__(self, args):
        self.args = args
        self.log = Log(args.log)
        self.lock = threading.Lock()  # conns, counter, accept
        self.conns = {}
        self.counter = 0
        self.listener = None

    # -------------------------------------------------------- responses

    def response_mode(self, headers):
        for n, v in headers:
            if n.lower() == b"x-test-response":
                return v.decode("latin-1").strip()
        return self.args.response_mode

    @staticmethod
    def body_json(rec, size):
        doc = {k: rec[k] for k in ("conn", "index", "method", "target",
                                   "body_len", "body_sha256")}
        body = json.dumps(doc).encode()
        if size is not None and size > len(body):
            doc["pad"] = ""
            base = len(json.dumps(doc).encode())
            doc["pad"] = "p" * max(size - base, 0)
            body = json.dumps(doc).encode()
        return body

    def respond(self, cs, rec, mode):
        """Answers one request; returns "keep", "restart" or "close"."""
        h = cs.stream.h
        kind, _, arg = mode.partition(":")
        if kind in ("raw", "rawclose"):
            if not NAME_RE.match(arg):
                raise ValueError("bad raw response name %r" % arg)
            with open(os.path.join(self.args.raw_dir, arg), "rb") as f:
                cs.sock.sendall(f.read())
            return "close" if kind == "rawclose" else "restart"
        size = int(arg) if arg else None
        body = self.body_json(rec, size)
        headers = [("Content-Type", "application/json"),
                   ("X-H11-Request", "%d.%d" % (rec["conn"], rec["index"]))]
        if kind == "length":
            headers.append(("Content-Length", str(len(body))))
        elif kind != "chunked":
            raise ValueError("bad response mode %r" % mode)
        out = h.send(h11.Response(status_code=200, headers=headers,
                                  reason=b"OK"))
        if rec["method"] == "HEAD":
            pass  # the fields only; h11 refuses a body here
        elif kind == "chunked" and body:
            step = max(1, len(body) // 3)
            for i in range(0, len(body), step):
                out += h.send(h11.Data(data=body[i:i + step]))
        else:
            out += h.send(h11.Data(data=body))
        out += h.send(h11.EndOfMessage())
        cs.sock.sendall(out)
        return "keep"

    # ------------------------------------------------------ connections

    def process(self, cs):
        """Handles every event h11 can produce from what it has; returns
        False when the connection is to be closed."""
        st = cs.stream
        while True:
            h = st.h
            if h.their_state is h11.DONE and h.our_state is h11.DONE:
                h.start_next_cycle()
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as e:
                start = cs.req_start
                self.log.write({"event": "error", "conn": cs.n,
                                "index": cs.index, "error": str(e),
                                "raw": b64(st.raw(start)),
                                "raw_len": len(st.raw(start))})
                return False
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return True
            if isinstance(ev, h11.ConnectionClosed):
                return False
            if isinstance(ev, h11.Request):
                cs.mid_request = True
                cs.head_end = st.consumed()
                cs.req = ev
                cs.sha = hashlib.sha256()
                cs.body_len = 0
                cs.h11_chunks = 0
            elif isinstance(ev, h11.Data):
                cs.sha.update(ev.data)
                cs.body_len += len(ev.data)
                if ev.chunk_start:
                    cs.h11_chunks += 1
            elif isinstance(ev, h11.EndOfMessage):
                if not self.finish(cs, ev):
                    return False

    def finish(self, cs, ev):
        st = cs.stream
        req = cs.req
        end = st.consumed()
        raw = st.raw(cs.req_start, end)
        head_len = cs.head_end - cs.req_start
        head = raw[:head_len]
        names = {bytes(n).lower() for n, _ in req.headers}
        te = b"transfer-encoding" in names
        framing = "chunked" if te else (
            "content-length" if b"content-length" in names else "none")
        rec = {
            "event": "request", "conn": cs.n, "index": cs.index,
            "method": req.method.decode("latin-1"),
            "target": req.target.decode("latin-1"),
            "http_version": req.http_version.decode("latin-1"),
            "headers": latin1_pairs(req.headers.raw_items()),
            "fields": head_fields(head),
            "framing": framing,
            "body_len": cs.body_len,
            "body_sha256": cs.sha.hexdigest(),
            "chunks": chunk_lines(raw[head_len:]) if te else [],
            "h11_chunks": cs.h11_chunks,
            "trailers": latin1_pairs(ev.headers.raw_items()),
            "raw": b64(raw), "raw_len": len(raw),
            "pipelined": st.unparsed(),
        }
        self.log.write(rec)
        cs.mid_request = False
        cs.index += 1
        cs.req_start = end
        st.forget_before(end)
        try:
            how = self.respond(cs, rec,
                               self.response_mode(req.headers.raw_items()))
        except (h11.LocalProtocolError, ValueError, OSError) as e:
            self.log.write({"event": "error", "conn": cs.n,
                            "index": rec["index"],
                            "error": "answering: %s" % e, "raw": "",
                            "raw_len": 0})
            return False
        if how == "close":
            return False
        if how == "restart":
            st.restart()
            return True
        return st.h.our_state is not h11.MUST_CLOSE

    def serve(self, cs):
        cs.index = 0
        cs.req_start = 0
        self.log.write({"event": "open", "conn": cs.n})
        try:
            while True:
                select.select([cs.sock], [], [])
                with cs.lock:
                    try:
                        data = cs.sock.recv(65536)
                    except OSError:
                        data = b""
                    cs.stream.feed(data)
                    if not self.process(cs) or not data:
                        break
        finally:
            with cs.lock:
                cs.closed = True
                try:
                    cs.sock.close()
                except OSError:
                    pass
            self.log.write({"event": "close", "conn": cs.n,
                            "requests": cs.index})
            with self.lock:
                self.conns.pop(cs.n, None)

    def accept_loop(self):
        ls = self.listener
        ls.setblocking(False)
        while True:
            select.select([ls], [], [])
            with self.lock:
                try:
                    sock, _ = ls.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(True)
                self.counter += 1
                cs = ConnState(self.counter, sock)
                self.conns[cs.n] = cs
            threading.Thread(target=self.serve, args=(cs,),
                             daemon=True).start()

    # ---------------------------------------------------------- control

    def quiet(self):
        busy = []
        with self.lock:
            r, _, _ = select.select([self.listener], [], [], 0)
            if r:
                busy.append("a connection waits to be accepted")
            conns = list(self.conns.values())
        for cs in conns:
            if not cs.lock.acquire(timeout=1.0):
                busy.append("conn %d: busy" % cs.n)
                continue
            try:
                if cs.closed:
                    continue
                r, _, _ = select.select([cs.sock], [], [], 0)
                if r:
                    busy.append("conn %d: %d unread bytes or EOF"
                                % (cs.n, fionread(cs.sock)))
                elif cs.mid_request or cs.stream.unparsed():
                    busy.append("conn %d: in the middle of request %d (%d "
                                "bytes buffered)"
                                % (cs.n, cs.index, cs.stream.unparsed()))
            finally:
                cs.lock.release()
        return {"quiet": not busy, "busy": busy}

    def control_loop(self, ls):
        while True:
            sock, _ = ls.accept()
            try:
                sock.settimeout(10)
                f = sock.makefile("rwb")
                for line in f:
                    if line.strip() == b"quiet":
                        f.write(json.dumps(self.quiet()).encode() + b"\n")
                        f.flush()
            except OSError:
                pass
            finally:
                sock.close()


def listen():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    return ls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--response-mode", default="length")
    ap.add_argument("--raw-dir", default=".")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = Server(args)
    server.listener = listen()
    control = listen()
    threading.Thread(target=server.control_loop, args=(control,),
                     daemon=True).start()
    print("LISTENING %d" % server.listener.getsockname()[1], flush=True)
    print("CONTROL %d" % control.getsockname()[1], flush=True)
    server.accept_loop()


if __name__ == "__main__":
    main()
