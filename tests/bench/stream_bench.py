"""Streaming against unary calls at the same number of requests in flight:
rnn-loadgen --streaming (requests on one ModelStreamInfer stream per
connection) against --transport=grpc (one unary ModelInfer call per request,
the same gRPC C++ library) and --transport=h2 (unary calls over nghttp2, for
reference), on one fresh rnn-server, in alternating rounds.

Each run is a closed loop of single-sequence requests, every answer verified
against the weights file. Besides the request rate, the CPU time the server
and the generator used per answered request in the measured window, read
from /proc at the window's edges (the generator prints "measuring" when its
warm-up ends and its table row when the window has ended).

Usage:
    /usr/bin/python3 tests/bench/stream_bench.py BUILD_DIR [--rounds 5] [--seconds 5]
        [--inflight 16,64] [--connections 1]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import start_server  # noqa: E402

MODEL = os.path.join(HERE, "..", "..", "model", "rnn.safetensors")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
MODES = {
    "unary, --transport=grpc": ["--transport=grpc"],
    "stream, --streaming": ["--streaming"],
    "unary, --transport=h2": ["--transport=h2"],
}


def cpu_s(pid):
    """User + system CPU seconds of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def run(build, target, server_pid, mode_args, inflight, out, args):
    """One rnn-loadgen run; returns (req/s, p50 us, server CPU us/request,
    generator CPU us/request)."""
    lg = subprocess.Popen(
        [os.path.join(build, "client", "rnn-loadgen"), f"--target={target}", *mode_args,
         f"--connections={args.connections}", f"--concurrency={inflight}",
         f"--duration={args.seconds}", "--warmup=1", f"--weights={MODEL}", f"--json={out}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in lg.stderr:
        if "measuring" in line:
            break
    server_start, client_start = cpu_s(server_pid), cpu_s(lg.pid)
    for line in lg.stdout:
        if line.split() and line.split()[0] == str(inflight):
            break
    server_end, client_end = cpu_s(server_pid), cpu_s(lg.pid)
    _, stderr = lg.communicate(timeout=60)
    if lg.returncode != 0:
        sys.exit(f"rnn-loadgen {' '.join(mode_args)} failed:\n{stderr}")
    with open(out) as f:
        step = json.load(f)["results"][0]
    answered = step["requests"]
    return (step["throughput_rps"], step["latency_us"]["p50"],
            (server_end - server_start) * 1e6 / answered,
            (client_end - client_start) * 1e6 / answered)


def spread(values, fmt="{:,.0f}"):
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(min(values))}–{fmt.format(max(values))})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--inflight", default="16,64",
                   help="requests in flight, comma-separated")
    p.add_argument("--connections", type=int, default=1)
    args = p.parse_args()
    inflights = [int(n) for n in args.inflight.split(",")]
    server, target, _ = start_server(os.path.join(args.build, "server", "rnn-server"),
                                     "--metrics_port=-1")
    results = {(n, m): [] for n in inflights for m in MODES}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.json")
            for _ in range(args.rounds):
                for n in inflights:
                    for name, mode_args in MODES.items():
                        results[(n, name)].append(
                            run(args.build, target, server.pid, mode_args, n, out, args))
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)

    print(f"{args.rounds} alternating rounds, {args.seconds} s each after 1 s of warm-up, "
          f"{args.connections} connection(s), single-sequence requests, every answer "
          "verified; median (min–max)\n")
    print("| in flight | calls | req/s | / unary grpc (per round) | p50 µs | "
          "server CPU µs/req | generator CPU µs/req |")
    print("|---|---|---|---|---|---|---|")
    for n in inflights:
        base = [r[0] for r in results[(n, "unary, --transport=grpc")]]
        for name in MODES:
            rows = results[(n, name)]
            ratios = [r[0] / b for r, b in zip(rows, base)]
            print(f"| {n} | {name} | {spread([r[0] for r in rows])} | "
                  f"{spread(ratios, '{:.2f}')} | {spread([r[1] for r in rows])} | "
                  f"{spread([r[2] for r in rows], '{:.1f}')} | "
                  f"{spread([r[3] for r in rows], '{:.1f}')} |")


if __name__ == "__main__":
    main()
