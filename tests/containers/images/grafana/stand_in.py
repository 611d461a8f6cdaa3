"""Grafana stand-in for the container test (see Containerfile)."""

import glob
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROVISIONING = "/etc/grafana/provisioning"
DASHBOARDS = "/var/lib/grafana/dashboards"
requests_total = 0


def problems():
    """What a real Grafana would miss at start, as a list of strings."""
    out = []
    path = os.environ.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
    if not path:
        out.append("GF_SECURITY_ADMIN_PASSWORD__FILE is not set")
    else:
        try:
            with open(path, encoding="utf-8") as f:
                if not f.read().strip():
                    out.append(f"{path} is empty")
        except OSError as e:
            out.append(f"{path}: {e.strerror}")
    if not glob.glob(f"{PROVISIONING}/datasources/*.y*ml"):
        out.append(f"no datasource in {PROVISIONING}/datasources")
    if not glob.glob(f"{PROVISIONING}/dashboards/*.y*ml"):
        out.append(f"no dashboard provider in {PROVISIONING}/dashboards")
    if not glob.glob(f"{DASHBOARDS}/*.json"):
        out.append(f"no dashboard in {DASHBOARDS}")
    if not os.environ.get("GF_SERVER_ROOT_URL"):
        out.append("GF_SERVER_ROOT_URL is not set")
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "grafana-stand-in"

    def send(self, code, ctype, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        global requests_total
        requests_total += 1
        path = self.path.split("?", 1)[0]
        if path == "/api/health":
            bad = problems()
            if bad:
                sys.stderr.write("unhealthy: %s\n" % "; ".join(bad))
            body = {"database": "ok" if not bad else "failing",
                    "version": "stand-in", "problems": bad}
            self.send(200 if not bad else 503, "application/json",
                      json.dumps(body))
        elif path == "/metrics":
            self.send(200, "text/plain; version=0.0.4",
                      "# TYPE grafana_stand_in_requests_total counter\n"
                      f"grafana_stand_in_requests_total {requests_total}\n"
                      "# TYPE grafana_build_info gauge\n"
                      'grafana_build_info{version="stand-in"} 1\n')
        elif path == "/api/stand-in/request":
            body = {"method": self.command, "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "root_url": os.environ.get("GF_SERVER_ROOT_URL")}
            self.send(200, "application/json", json.dumps(body))
        elif path == "/":
            self.send(200, "text/html; charset=utf-8",
                      "<!doctype html><title>Grafana stand-in</title>"
                      "<p>Grafana stand-in of the portcullis container test.\n")
        else:
            self.send(404, "text/plain", "not found\n")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", 3000), Handler).serve_forever()
