"""Serving throughput with an independent load generator: h2load (nghttp2).

Starts the real rnn-server in two configurations (by default batching on,
--max_batch_size=64, and off, --max_batch_size=1), alternating, and drives
each for --seconds with
h2load sending gRPC-framed ModelInfer requests of one sequence, `c * m`
requests in flight. h2load only sees HTTP status, so the server's own
count of computed sequences (printed when it drains on SIGTERM) is checked
against h2load's successes.

Usage:
    /usr/bin/python3 tests/bench/h2load_bench.py build/release/server/rnn-server \
        [--compare batching|metrics] [--rounds 2] [--seconds 5] [--connections 4] [--streams 16]

--compare metrics runs the server with metrics on and off instead.
"""

import argparse
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import infer_request, start_server  # noqa: E402


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    m = re.search(r"stopped after (\d+) sequences in (\d+) batches", out)
    return int(m.group(1)), int(m.group(2))


def run(binary, extra, body, args):
    proc, address, _ = start_server(binary, *extra)
    port = int(address.rsplit(":", 1)[1])
    cmd = ["h2load", "-D", str(args.seconds), "--warm-up-time=1",
           "-c", str(args.connections), "-m", str(args.streams), "-t", "1",
           "-H", "content-type: application/grpc", "-H", "te: trailers",
           "-d", body, f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    sequences, batches = stop_server(proc)
    rps = float(re.search(r"finished in .*?, ([\d.]+) req/s", out).group(1))
    ok = int(re.search(r"(\d+) succeeded", out).group(1))
    status_2xx = int(re.search(r"status codes: (\d+) 2xx", out).group(1))
    return rps, ok, status_2xx, sequences, batches


COMPARISONS = {
    # name: [(label, extra server flags), ...]; the first is the baseline.
    "batching": [("batching on (--max_batch_size=64)", ["--max_batch_size=64"]),
                 ("batching off (--max_batch_size=1)", ["--max_batch_size=1"])],
    "metrics": [("metrics on", ["--metrics_port=0"]),
                ("metrics off", ["--metrics_port=-1"])],
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("server")
    p.add_argument("--compare", choices=sorted(COMPARISONS), default="batching")
    p.add_argument("--rounds", type=int, default=2,
                   help="runs of each configuration, alternating; the median is reported")
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--streams", type=int, default=16)
    args = p.parse_args()
    configs = COMPARISONS[args.compare]
    runs = {label: [] for label, _ in configs}
    with tempfile.TemporaryDirectory() as tmp:
        body = os.path.join(tmp, "request.bin")
        message = infer_request(1)
        with open(body, "wb") as f:
            f.write(b"\0" + struct.pack(">I", len(message)) + message)
        for _ in range(args.rounds):
            for label, extra in configs:
                runs[label].append(run(args.server, extra, body, args))
    inflight = args.connections * args.streams
    print(f"h2load -c {args.connections} -m {args.streams} ({inflight} single-sequence "
          f"requests in flight), {args.seconds} s per run, {args.rounds} alternating "
          "runs each, median\n")
    print("| configuration | req/s (median) | req/s (each run) | avg batch (server) |")
    print("|---|---|---|---|")
    medians = {}
    for label, _ in configs:
        rs = sorted(runs[label], key=lambda r: r[0])
        med = rs[len(rs) // 2]
        medians[label] = med[0]
        each = ", ".join(f"{r[0]:.0f}" for r in runs[label])
        print(f"| {label} | {med[0]:.0f} | {each} | {med[3] / max(med[4], 1):.1f} |")
        for rps, ok, s2xx, seqs, batches in runs[label]:
            if seqs < ok:
                print(f"ERROR: server computed {seqs} sequences, h2load counted {ok}")
                sys.exit(1)
    (a, _), (b, _) = configs
    print(f"\nratio {a} / {b}: {medians[a] / medians[b]:.3f}")


if __name__ == "__main__":
    main()
