#!/usr/bin/python3
"""stub_upstream.py - a misbehaving HTTP/1.1 upstream for portcullis's
integration tests, for the cases no real server can play.

    stub_upstream.py MODE [--log FILE] [--delay S] [--body-size N]
                          [--read-rate BYTES_PER_S] [--port N]

Binds 127.0.0.1 port --port (0, the default: any free one), then prints
"LISTENING <port>" on stdout. Every
request head it receives is appended to --log as one JSON object per line:
{"request_line": "...", "headers": [[name, value], ...], "mode": MODE}.

Modes:
  silent  accepts, reads the head, never answers (keeps reading until the
          peer closes): the gateway must answer 504 after its read timeout
  reset   reads the head, then closes with a TCP RST (SO_LINGER 0): 502
  slow    reads the head (and any Content-Length body), sleeps --delay
          seconds (or, if the request has an "X-Stub-Delay: S" header, S
          seconds), then answers 200 with --body-size bytes of a known
          pattern (pattern_bytes() below); keeps the connection alive
  sink    reads the body (Content-Length or chunked) at most --read-rate
          bytes/s, answers 200 {"length": N, "sha256": "..."}
  raw     reads the head (and any Content-Length body), sends the bytes of
          --response-file verbatim, then closes (with --rst: resets), or
          with --hold keeps the connection open and silent (a response
          cut short, bad framing)
  once    answers the first request on each connection (200 "once\\n",
          keep-alive), then reads the next request's head and closes
          without answering: the race a keep-alive pool meets when an
          upstream drops an idle connection as a request is sent
  ws      RFC 6455 echo: a request with "Upgrade: websocket" gets 101 and
          every data frame is echoed back (ping gets pong, close gets
          close); other requests get 200 "not a websocket\\n"

Standard library only. Stopped by the tests with SIGTERM to its PID.
"""

import argparse
import base64
import hashlib
import json
import signal
import socket
import struct
import sys
import threading
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PATTERN = bytes(range(256)) * 256  # 64 KiB


def pattern_bytes(n):
    """The body the slow mode sends: 0,1,...,255 repeated, n bytes."""
    out = bytearray()
    while len(out) < n:
        out += PATTERN[: n - len(out)]
    return bytes(out)


class Closed(Exception):
    pass


class Conn:
    """A socket with a read buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self, limit=65536):
        data = self.sock.recv(limit)
        if not data:
            raise Closed()
        self.buf += data

    def read_until(self, sep, max_len=1 << 20):
        while sep not in self.buf:
            if len(self.buf) > max_len:
                raise Closed()
            self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n, limit=65536):
        while len(self.buf) < n:
            self.fill(limit)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_some(self, n):
        if not self.buf:
            self.fill(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class Server:
    def __init__(self, args):
        self.args = args
        self.log_lock = threading.Lock()
        self.logf = open(args.log, "a", buffering=1) if args.log else None

    def log(self, request_line, headers):
        if not self.logf:
            return
        rec = {"mode": self.args.mode, "request_line": request_line,
               "headers": headers, "time": time.time()}
        with self.log_lock:
            self.logf.write(json.dumps(rec) + "\n")
            self.logf.flush()

    def read_head(self, c):
        head = c.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        request_line = lines[0]
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers.append([name, value.strip()])
        self.log(request_line, headers)
        return request_line, headers

    @staticmethod
    def header(headers, name):
        for n, v in headers:
            if n.lower() == name:
                return v
        return None

    def read_body(self, c, headers, rate=0):
        """Reads a request body; returns (length, sha256 hex)."""
        h = hashlib.sha256()
        total = 0
        start = time.monotonic()

        def pace(n):
            nonlocal total
            total += n
            if rate:
                ahead = total / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)

        te = self.header(headers, "transfer-encoding")
        if te and te.lower() == "chunked":
            while True:
                size_line = c.read_until(b"\r\n").split(b";")[0].strip()
                size = int(size_line, 16)
                if size == 0:
                    while c.read_until(b"\r\n") != b"\r\n":
                        pass  # trailers
                    break
                left = size
                while left:
                    chunk = c.read_some(min(left, 16384))
                    h.update(chunk)
                    left -= len(chunk)
                    pace(len(chunk))
                c.read_exact(2)
        else:
            left = int(self.header(headers, "content-length") or 0)
            while left:
                chunk = c.read_some(min(left, 16384))
                h.update(chunk)
                left -= len(chunk)
                pace(len(chunk))
        return total, h.hexdigest()

    def handle(self, sock):
        c = Conn(sock)
        mode = self.args.mode
        served = 0
        try:
            while True:
                request_line, headers = self.read_head(c)
                if mode == "once":
                    if served:
                        return  # close without answering
                    self.read_body(c, headers)
                    served += 1
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5"
                                 b"\r\n\r\nonce\n")
                    continue
                if mode == "silent":
                    while True:
                        c.buf = b""
                        c.fill()
                elif mode == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    return
                elif mode == "slow":
                    self.read_body(c, headers)
                    delay = self.header(headers, "x-stub-delay")
                    time.sleep(self.args.delay if delay is None
                               else float(delay))
                    body = pattern_bytes(self.args.body_size)
                    sock.sendall(b"HTTP/1.1 200 OK\r\n"
                                 b"Content-Type: application/octet-stream\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(body)
                                 + body)
                elif mode == "sink":
                    length, digest = self.read_body(c, headers,
                                                    self.args.read_rate)
                    body = json.dumps({"length": length,
                                       "sha256": digest}).encode()
                    sock.sendall(b"HTTP/1.1 200 OK\r\n"
                                 b"Content-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(body)
                                 + body)
                elif mode == "raw":
                    self.read_body(c, headers)
                    with open(self.args.response_file, "rb") as f:
                        sock.sendall(f.read())
                    if self.args.rst:
                        time.sleep(0.2)  # the bytes leave before the RST
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                        return
                    if self.args.hold:
                        while True:
                            c.buf = b""
                            c.fill()
                    return
                elif mode == "ws":
                    up = (self.header(headers, "upgrade") or "").lower()
                    if up == "websocket":
                        self.websocket(c, headers)
                        return
                    self.read_body(c, headers)
                    body = b"not a websocket\n"
                    sock.sendall(b"HTTP/1.1 200 OK\r\n"
                                 b"Content-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(body)
                                 + body)
        except (Closed, OSError, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def websocket(self, c, headers):
        key = (self.header(headers, "sec-websocket-key") or "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        c.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                       b"Upgrade: websocket\r\n"
                       b"Connection: Upgrade\r\n"
                       b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            b0, b1 = c.read_exact(2)
            fin_op = b0
            opcode = b0 & 0x0F
            masked = b1 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", c.read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", c.read_exact(8))[0]
            mask = c.read_exact(4) if masked else b"\0\0\0\0"
            payload = bytearray(c.read_exact(n))
            for i in range(n):
                payload[i] ^= mask[i % 4]
            if opcode == 0x9:  # ping
                self.ws_send(c.sock, 0x80 | 0xA, payload)
            elif opcode == 0xA:  # pong
                pass
            elif opcode == 0x8:  # close
                self.ws_send(c.sock, 0x80 | 0x8, payload[:2])
                return
            else:  # text, binary, continuation: echo frame as is
                self.ws_send(c.sock, fin_op, payload)

    @staticmethod
    def ws_send(sock, b0, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, 126, n)
        else:
            head = struct.pack("!BBQ", b0, 127, n)
        sock.sendall(head + bytes(payload))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["silent", "reset", "slow", "sink", "raw", "once",
                                       "ws"])
    ap.add_argument("--log")
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--body-size", type=int, default=1024)
    ap.add_argument("--read-rate", type=int, default=0)
    ap.add_argument("--response-file")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--rst", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = Server(args)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(128)
    print("LISTENING %d" % ls.getsockname()[1], flush=True)
    while True:
        sock, _ = ls.accept()
        t = threading.Thread(target=server.handle, args=(sock,), daemon=True)
        t.start()


if __name__ == "__main__":
    main()
