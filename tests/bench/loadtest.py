"""make loadtest: a load test of a freshly started rnn-server with
rnn-loadgen, every answer verified, reports written to a folder.

Starts rnn-server (bundled model, free loopback ports, metrics on), runs
rnn-loadgen with the given flags (by default a closed-loop sweep of
concurrency 1..64), adds the server-side breakdown from /metrics, and writes
report.json, report.csv and report.html. Exits with rnn-loadgen's status.

Usage:
    /usr/bin/python3 tests/bench/loadtest.py BUILD_DIR OUT_DIR [rnn-loadgen flags...]
    make loadtest                                   # build/loadtest/report.*
    make loadtest LOADTEST_ARGS='--rate=1000:8000:+1000 --arrivals=poisson'
"""

import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import start_server  # noqa: E402

DEFAULT_FLAGS = ["--concurrency=1:64:x2", "--duration=3", "--warmup=1"]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build, out = sys.argv[1], sys.argv[2]
    flags = sys.argv[3:] or DEFAULT_FLAGS
    os.makedirs(out, exist_ok=True)
    model = os.path.join(HERE, "..", "..", "model", "rnn.safetensors")
    server, target, metrics = start_server(os.path.join(build, "server", "rnn-server"))
    try:
        cmd = [os.path.join(build, "client", "rnn-loadgen"), f"--target={target}",
               f"--metrics_url=http://{metrics}/metrics", f"--weights={model}",
               *(f"--{kind}={os.path.join(out, 'report.' + kind)}"
                 for kind in ("json", "csv", "html")),
               *flags]
        print("$", " ".join(cmd), flush=True)
        status = subprocess.run(cmd).returncode
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    sys.exit(status)


if __name__ == "__main__":
    main()
