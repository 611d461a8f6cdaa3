"""SIGHUP reloads the config under load without failing one request; the
new route works after it; a broken config keeps the old one and the error
log names the JSON path of what is wrong."""

import copy
import http.client
import re
import signal
import threading
import time

import pytest

import gwtest
from conftest import SMALL_TXT, upstream

LOAD_SECONDS = 3.0


@pytest.fixture
def gw(gateway, nginx):
    g = gateway({"static": upstream(nginx.port, keepalive=4)},
                [{"name": "static", "path": "/static/", "upstream": "static",
                  "strip_prefix": True}])
    g.nginx = nginx
    return g


def with_second_route(config):
    cfg = copy.deepcopy(config)
    cfg["listeners"][0]["routes"].append(
        {"name": "static2", "path": "/static2/", "upstream": "static",
         "strip_prefix": True})
    return cfg


def load(port, stop, results, keepalive):
    """Requests /static/small.txt until `stop` is set; appends (ok, what)."""
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/static/small.txt?load=1")
            r = conn.getresponse()
            body = r.read()
            ok = r.status == 200 and body == SMALL_TXT
            results.append((ok, "%d %r" % (r.status, body[:80])))
            if not keepalive or r.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            results.append((False, repr(e)))
            if conn:
                conn.close()
            conn = None
    if conn:
        conn.close()


def test_reload_under_load(gw):
    stop = threading.Event()
    results = [[] for _ in range(4)]
    threads = [threading.Thread(target=load,
                                args=(gw.port, stop, results[i], i % 2 == 0))
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(LOAD_SECONDS / 3)
        gw.reload(with_second_route(gw.config))
        time.sleep(LOAD_SECONDS / 3)
        gw.signal(signal.SIGHUP)  # and once more, same file
        time.sleep(LOAD_SECONDS / 3)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    flat = [r for rs in results for r in rs]
    failed = [what for ok, what in flat if not ok]
    assert len(flat) > 100, "only %d requests in %.0fs" % (len(flat),
                                                           LOAD_SECONDS)
    assert not failed, "%d of %d requests failed across the reloads: %r" % (
        len(failed), len(flat), failed[:5])
    assert gw.proc.alive()

    # the route added by the reload works
    st, _, body = gwtest.get(gw.port, "/static2/small.txt?new=1")
    assert st == 200 and body == SMALL_TXT
    e = gw.nginx.wait_for_uri("/small.txt?new=1")
    assert e["request"] == "GET /small.txt?new=1 HTTP/1.1"


def test_new_route_after_reload(gw):
    good = copy.deepcopy(gw.config)
    st, _, _ = gwtest.get(gw.port, "/static2/small.txt")
    assert st == 404
    gw.reload(with_second_route(good))

    def routed():
        st, _, body = gwtest.get(gw.port, "/static2/small.txt")
        return st == 200 and body == SMALL_TXT
    gwtest.wait_until(routed, 5, 0.1, "/static2/ to be routed after SIGHUP")

    # and a route removed by a reload is gone
    only2 = with_second_route(good)
    del only2["listeners"][0]["routes"][0]
    gw.reload(only2)
    gwtest.wait_until(lambda: gwtest.get(gw.port, "/static/small.txt")[0] == 404,
                      5, 0.1, "/static/ to be gone after SIGHUP")
    st, _, body = gwtest.get(gw.port, "/static2/small.txt")
    assert st == 200 and body == SMALL_TXT


def test_broken_reload_keeps_old_config(gw):
    good = copy.deepcopy(gw.config)
    err_before = gw.error_log()
    broken = with_second_route(good)
    broken["listeners"][0]["routes"][1]["upstream"] = "statik"
    gw.reload(broken)
    want = 'listeners[0].routes[1].upstream'
    line = gwtest.wait_until(
        lambda: [l for l in gw.error_log()[len(err_before):].splitlines()
                 if want in l], 5, what="the error log to name %s" % want)[0]
    assert "statik" in line, line
    assert re.search(r"\berror\b", line, re.I), line
    assert gw.proc.alive(), "a broken reload must not stop the gateway"
    # old config still in force: old route works, new one does not exist
    st, _, body = gwtest.get(gw.port, "/static/small.txt")
    assert st == 200 and body == SMALL_TXT
    st, _, _ = gwtest.get(gw.port, "/static2/small.txt")
    assert st == 404

    # invalid JSON is no different
    err_before = gw.error_log()
    gw.config_path.write_text('{"workers": 2, "listeners": [')
    gw.signal(signal.SIGHUP)
    gwtest.wait_until(lambda: len(gw.error_log()) > len(err_before), 5,
                      what="an error logged for the unparsable config")
    time.sleep(0.2)
    assert gw.proc.alive()
    st, _, body = gwtest.get(gw.port, "/static/small.txt")
    assert st == 200 and body == SMALL_TXT

    # and a good config after the broken ones is taken
    gw.reload(with_second_route(good))
    gwtest.wait_until(lambda: gwtest.get(gw.port, "/static2/small.txt")[0]
                      == 200, 5, 0.1, "the good config after broken ones")


def test_reload_metrics(gw):
    good = copy.deepcopy(gw.config)

    def gauge():
        return gwtest.metric(gw.metrics(),
                             "portcullis_config_last_reload_successful")
    assert gauge() == 1
    broken = copy.deepcopy(good)
    broken["upstreams"]["static"]["servers"] = ["127.0.0.1:99999"]
    gw.reload(broken)
    gwtest.wait_until(lambda: gauge() == 0, 5,
                      what="portcullis_config_last_reload_successful 0")
    assert "upstreams.static.servers[0]" in gw.error_log()
    gw.reload(with_second_route(good))
    gwtest.wait_until(lambda: gauge() == 1, 5,
                      what="portcullis_config_last_reload_successful 1")
