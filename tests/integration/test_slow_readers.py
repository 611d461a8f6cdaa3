"""Slow readers cost bounded memory (issue 24, item 6): 300 clients that
each ask nginx, through the gateway, for 50 MiB and read nothing hold at most PROXY_HIGH plus one read
of it in the gateway (about 48 KiB each, the kernel's socket buffers
aside), and the memory goes back once they leave. bench/slow-readers.sh
measures the same at 2,000 clients beside nginx and HAProxy."""

import socket
import time

from conftest import upstream

import gwtest

CLIENTS = 300


def settled_rss(gw):
    """VmRSS once two samples a second apart agree within 1 %."""
    last = gw.vm_kb("VmRSS")
    for _ in range(30):
        time.sleep(1)
        now = gw.vm_kb("VmRSS")
        if abs(now - last) <= last / 100:
            return now
        last = now
    return last


def test_slow_readers_hold_little(gateway, nginx):
    gw = gateway({"app": upstream(nginx.port)},
                 [{"name": "app", "path": "/", "upstream": "app"}],
                 workers=1)
    assert gwtest.get(gw.port, "/small.txt")[0] == 200
    before = settled_rss(gw)
    socks = []
    try:
        for _ in range(CLIENTS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", gw.port))
            s.sendall(b"GET /50m.bin HTTP/1.1\r\nHost: gw\r\n\r\n")
            socks.append(s)
        # every download under way: each client has its head
        for s in socks:
            s.settimeout(10)
            assert s.recv(12) == b"HTTP/1.1 200"
        held = settled_rss(gw)
    finally:
        for s in socks:
            s.close()
    per_client = (held - before) / CLIENTS
    # 48 KiB of buffers, a few KiB of session and connection state, and
    # the allocator's rounding: 96 KiB is twice what it costs, and half
    # of what it cost before (210 KiB: 64 KiB reads into 128 KiB chains)
    assert per_client < 96, "%.1f KiB per slow reader (RSS %d -> %d kB)" % (
        per_client, before, held)
