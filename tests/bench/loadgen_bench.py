"""rnn-loadgen's cost as a load generator, against h2load's: the same fresh
rnn-server, the same requests in flight, alternating runs in one session.

h2load (nghttp2) is the floor of client cost here: one thread, pre-framed
bodies, no answer parsing. rnn-loadgen runs with every answer verified
against the weights file (--weights), once with each transport (h2: the gRPC
protocol over nghttp2; grpc: gRPC's C++ library). The more CPU a generator
takes per request, the less the server gets on a shared machine, so a
generator's achieved request rate against h2load's is its efficiency.

Usage:
    /usr/bin/python3 tests/bench/loadgen_bench.py BUILD_DIR [--rounds 3] [--seconds 5]
        [--connections 4] [--streams 16] [--batch 1]
"""

import argparse
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import infer_request, start_server  # noqa: E402

MODEL = os.path.join(HERE, "..", "..", "model", "rnn.safetensors")


def h2load(port, body, args):
    out = subprocess.run(
        ["h2load", "-D", str(args.seconds), "--warm-up-time=1", "-c", str(args.connections),
         "-m", str(args.streams), "-t", "1", "-H", "content-type: application/grpc",
         "-H", "te: trailers", "-d", body,
         f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"],
        capture_output=True, text=True, check=True).stdout
    return float(re.search(r"finished in .*?, ([\d.]+) req/s", out).group(1))


def loadgen(build, target, transport, out, args):
    subprocess.run(
        [os.path.join(build, "client", "rnn-loadgen"), f"--target={target}",
         f"--transport={transport}", f"--connections={args.connections}",
         f"--concurrency={args.connections * args.streams}", f"--batch={args.batch}",
         f"--duration={args.seconds}", "--warmup=1", f"--weights={MODEL}", f"--json={out}"],
        capture_output=True, text=True, check=True)
    with open(out) as f:
        step = json.load(f)["results"][0]
    if step["errors"] or step["wrong"]:
        sys.exit(f"rnn-loadgen --transport={transport}: errors {step['errors']}, "
                 f"wrong {step['wrong']}")
    return step["throughput_rps"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args()
    server, target, _ = start_server(os.path.join(args.build, "server", "rnn-server"),
                                     "--metrics_port=-1")
    port = int(target.rsplit(":", 1)[1])
    runs = {"h2load": [], "rnn-loadgen --transport=h2": [], "rnn-loadgen --transport=grpc": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            body = os.path.join(tmp, "request.bin")
            message = infer_request(args.batch)
            with open(body, "wb") as f:
                f.write(b"\0" + struct.pack(">I", len(message)) + message)
            out = os.path.join(tmp, "r.json")
            for _ in range(args.rounds):
                runs["h2load"].append(h2load(port, body, args))
                for transport in ("h2", "grpc"):
                    runs[f"rnn-loadgen --transport={transport}"].append(
                        loadgen(args.build, target, transport, out, args))
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    inflight = args.connections * args.streams
    print(f"{args.connections} connections x {args.streams} streams = {inflight} batch-"
          f"{args.batch} requests in flight, {args.seconds} s per run, {args.rounds} "
          "alternating rounds; rnn-loadgen verifies every answer\n")
    print("| generator | req/s (median) | each run | / h2load (median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, values in runs.items():
        ratios = [v / h for v, h in zip(values, runs["h2load"])]
        print(f"| {name} | {statistics.median(values):,.0f} | "
              f"{', '.join(f'{v:,.0f}' for v in values)} | "
              f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
