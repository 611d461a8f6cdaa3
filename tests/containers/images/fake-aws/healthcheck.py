"""The fake-aws container's healthcheck: its control API answers on :4566.
(A file, not `python3 -c`: podman-compose 1.0.3 hands a healthcheck's
words to /bin/sh, which trips over the parentheses.)"""

import sys
import urllib.request

try:
    urllib.request.urlopen("http://127.0.0.1:4566/_fake/state", timeout=2).read()
except Exception as e:  # noqa: BLE001 - any failure is unhealthy
    sys.exit(f"fake-aws: {e}")
