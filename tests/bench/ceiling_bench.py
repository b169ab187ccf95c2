"""rnn-server against its ceiling: a no-op server measured side by side.

The no-op server (tests/bench/noop_server.cc) speaks the same protocol on
the same gRPC and answers a fixed [N, 10] output without computing; no
server of this protocol can beat it on this machine. Each scenario runs the
two alternately (A B A B ...), each run on a fresh server, driven by h2load
(nghttp2, an independent load generator) with gRPC-framed ModelInfer
bodies:

  batch-1      1-sequence requests, 4 connections x 16 streams: req/s
  batch-64     64-sequence requests (512 KB), 2 connections x 4 streams:
               req/s and sequences/s, the latter also against the model's
               own batch-64 figure in process (model_bench, fp32, one
               thread, run in the same round)
  one-at-once  1-sequence requests, 1 connection x 1 stream: mean latency;
               reported as rnn-server's added latency over the no-op's
  one-at-once, rnn-loadgen
               the same with rnn-loadgen (--concurrency=1, h2 transport):
               the added median (p50) latency, less disturbed by the
               machine's stalls than h2load's mean; rnn-server's answers
               are verified against the reference forward pass

and prints, per scenario, rnn-server / no-op (or the added latency) with
min / median / max over the rounds, each ratio taken from one adjacent pair
of runs. Every run checks that the server computed exactly one sequence per
row h2load got an answer for. It also reports, for the batch-1 runs of each
rnn-server configuration, its resident memory at rest (started, before the
load) and at the end of the run, its sequences per batch (the counts it
prints when it stops) and the model's time per sequence inside it (from
its metrics: rnn_compute_duration_seconds_sum / rnn_sequences_total), and
rnn-server's time from launch to serving. For batch-1 and batch-64 it
prints each server's CPU per request and h2load's, the machine's idle
share, and the most rnn-server could serve with every core busy at its CPU
per request, as a share of the no-op's measured rate.

Usage (or: make bench-ceiling):
    /usr/bin/python3 tests/bench/ceiling_bench.py build/release \
        [--rounds 3] [--seconds 5] [--server-flag=--instances=2 ...] \
        [--scenario batch-1 ...] [--variant='--inline_when_idle=false' ...]

--variant adds rnn-server configurations to the same rotation (A B C A B C
...), each compared with the no-op of its round.
"""

import argparse
import json
import os
import platform
import re
import resource
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import infer_request, start_server  # noqa: E402

SCENARIOS = [
    # name, rows per request, connections, streams
    ("batch-1", 1, 4, 16),
    ("batch-64", 64, 2, 4),
    ("one-at-once", 1, 1, 1),
]


def seconds(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def rss_mib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def metric_sum(metrics_address, name):
    """The sum over label sets of one series on the server's /metrics page."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as r:
        page = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def process_cpu_s(pid):
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_idle():
    """(all, idle + iowait) jiffies since boot, summed over the CPUs."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    m = re.search(r"stopped after (\d+) sequences in (\d+) batches", out)
    if m is None:
        raise RuntimeError(f"server did not report its count:\n{out}")
    return int(m.group(1)), int(m.group(2))


def run(binary, flags, body, rows, connections, streams, duration):
    """One h2load run against a fresh server; returns a dict of figures."""
    proc, address, metrics_address = start_server(binary, *flags)
    port = int(address.rsplit(":", 1)[1])
    cmd = ["h2load", "-D", str(duration), "--warm-up-time=1",
           "-c", str(connections), "-m", str(streams), "-t", "1",
           "-H", "content-type: application/grpc", "-H", "te: trailers",
           "-d", body, f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"]
    try:
        def usage():
            # The server's CPU, that of reaped children (only h2load is
            # reaped in between), and the machine's idle time.
            return (process_cpu_s(proc.pid),
                    resource.getrusage(resource.RUSAGE_CHILDREN), machine_idle())

        rss_at_rest = rss_mib(proc.pid)
        server_cpu0, children0, idle0 = usage()
        started = time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             timeout=duration + 60).stdout
        wall = time.monotonic() - started
        server_cpu1, children1, idle1 = usage()
        rss = rss_mib(proc.pid)
        # The model's time per sequence inside the server (gathering,
        # computing, scattering a batch: rnn_compute_duration_seconds).
        compute_us = float("nan")
        if metrics_address:
            compute_us = 1e6 * metric_sum(metrics_address, "rnn_compute_duration_seconds_sum") \
                / metric_sum(metrics_address, "rnn_sequences_total")
    finally:
        sequences, batches = stop(proc)
    ok = int(re.search(r"(\d+) succeeded", out).group(1))
    # The server must have computed a row for each row of every success
    # h2load counts (it leaves out the warm-up's requests, which the server
    # computed too, and requests still in flight at the end).
    if sequences < ok * rows:
        raise RuntimeError(f"{binary}: computed {sequences} sequences for "
                           f"{ok} successful {rows}-row requests")
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    rps = float(re.search(r"finished in .*?, ([\d.]+) req/s", out).group(1))
    h2load_cpu = (children1.ru_utime + children1.ru_stime
                  - children0.ru_utime - children0.ru_stime)
    # CPU per request over the whole h2load run, its warm-up included (at
    # the measured rate), and the share of the machine left idle meanwhile.
    return {"server_cpu_us": 1e6 * (server_cpu1 - server_cpu0) / (rps * wall),
            "h2load_cpu_us": 1e6 * h2load_cpu / (rps * wall),
            "idle": (idle1[1] - idle0[1]) / (idle1[0] - idle0[0]),
            "rps": rps,
            "mean_s": seconds(m.group(3)), "rss_mib": rss,
            "rss_at_rest_mib": rss_at_rest, "compute_us": compute_us,
            "mean_batch": sequences / batches if batches else float("nan")}


def run_loadgen(build_dir, binary, flags, duration, verify):
    """rnn-loadgen at one request in flight against a fresh server; returns
    its p50 and mean latency in seconds."""
    proc, address, _ = start_server(binary, *flags)
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        cmd = [os.path.join(build_dir, "client", "rnn-loadgen"), f"--target={address}",
               "--concurrency=1", f"--duration={duration}", f"--json={report}"]
        if verify:
            cmd += ["--verify", f"--weights={verify}"]
        try:
            subprocess.run(cmd, capture_output=True, text=True, check=True,
                           timeout=duration + 60)
        finally:
            stop(proc)
        with open(report) as f:
            result = json.load(f)["results"][0]
    if result["ok"] != result["requests"] or result["wrong"]:
        raise RuntimeError(f"{binary}: rnn-loadgen saw errors or wrong answers: {result}")
    return {"p50_s": result["latency_us"]["p50"] * 1e-6,
            "mean_s": result["latency_us"]["mean"] * 1e-6}


def model_sequences_per_second(build_dir, rows):
    """The model alone, in process: model_bench's fp32 one-thread figure for
    a batch of `rows` sequences (the ceiling for what serving can deliver
    with the default one instance of one thread)."""
    cmd = [os.path.join(build_dir, "tests", "bench", "model_bench"),
           f"--benchmark_filter=^BM_ModelRun/batch:{rows}/threads:1/bf16:0/",
           "--benchmark_min_time=1", "--benchmark_format=json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    (bench,) = json.loads(out)["benchmarks"]
    return bench["seq/s"]


def startup_seconds(binary, flags, runs=5):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        proc, _, _ = start_server(binary, *flags)
        times.append(time.monotonic() - t0)
        stop(proc)
    return statistics.median(times)


def spread(values, fmt):
    values = sorted(values)
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(values[0])} – {fmt.format(values[-1])})")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build_dir", help="a Release build directory (build/release)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating pairs of runs per scenario")
    p.add_argument("--seconds", type=int, default=5, help="length of each run")
    p.add_argument("--server-flag", action="append", default=[],
                   help="a flag for rnn-server (repeatable); default flags otherwise")
    p.add_argument("--scenario", action="append", choices=[s[0] for s in SCENARIOS],
                   help="run only these scenarios (repeatable)")
    p.add_argument("--variant", action="append", default=[],
                   help="one more rnn-server configuration in the same rotation: "
                        "space-separated flags added to --server-flag (repeatable), "
                        "e.g. --variant=--inline_when_idle=false")
    args = p.parse_args()
    rnn = os.path.join(args.build_dir, "server", "rnn-server")
    noop = os.path.join(args.build_dir, "tests", "bench", "noop-server")
    servers = [("no-op", noop, ["--metrics_port=-1"]), ("rnn-server", rnn, args.server_flag)]
    servers += [(f"rnn-server {v}", rnn, args.server_flag + v.split()) for v in args.variant]
    rnn_labels = [label for label, _, _ in servers[1:]]
    scenarios = [s for s in SCENARIOS if not args.scenario or s[0] in args.scenario]

    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {cpu_model()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"rnn-server flags: {' '.join(args.server_flag) or '(defaults)'}; "
          f"{args.rounds} alternating rounds of {args.seconds} s per scenario\n")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows, connections, streams in scenarios:
            body = os.path.join(tmp, f"{name}.bin")
            message = infer_request(rows)
            with open(body, "wb") as f:
                f.write(b"\0" + struct.pack(">I", len(message)) + message)
            pairs = []
            for _ in range(args.rounds):
                pair = {}
                for label, binary, flags in servers:
                    pair[label] = run(binary, flags, body, rows, connections, streams,
                                      args.seconds)
                if rows > 1:
                    pair["in process"] = model_sequences_per_second(args.build_dir, rows)
                pairs.append(pair)
            results[name] = (rows, connections, streams, pairs)
    if not args.scenario or "one-at-once" in args.scenario:
        weights = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                               "model", "rnn.safetensors")
        loadgen_pairs = []
        for _ in range(args.rounds):
            loadgen_pairs.append({
                label: run_loadgen(args.build_dir, binary, flags, args.seconds,
                                   weights if label != "no-op" else None)
                for label, binary, flags in servers})

    print("| scenario | no-op | server | server vs no-op, median (min – max) |")
    print("|---|---|---|---|")
    for name, (rows, connections, streams, pairs) in results.items():
        noop_runs = [p["no-op"] for p in pairs]
        for label in rnn_labels:
            rnn_runs = [p[label] for p in pairs]
            shape = f"{name} ({connections}×{streams})"
            if len(rnn_labels) > 1:
                shape += f", {label}"
            if name == "one-at-once":
                added = [(r["mean_s"] - n["mean_s"]) * 1e6 for n, r in zip(noop_runs, rnn_runs)]
                print(f"| {shape} | {spread([n['mean_s'] * 1e6 for n in noop_runs], '{:.0f}')} µs "
                      f"| {spread([r['mean_s'] * 1e6 for r in rnn_runs], '{:.0f}')} µs "
                      f"| added {spread(added, '{:+.1f}')} µs |")
                continue
            ratios = [r["rps"] / n["rps"] for n, r in zip(noop_runs, rnn_runs)]
            seq = "" if rows == 1 else (
                f"; {spread([r['rps'] * rows / 1e3 for r in rnn_runs], '{:.0f}')}k seq/s")
            print(f"| {shape} | {spread([n['rps'] for n in noop_runs], '{:.0f}')} req/s "
                  f"| {spread([r['rps'] for r in rnn_runs], '{:.0f}')} req/s{seq} "
                  f"| **{spread(ratios, '{:.2f}')}** |")
    if not args.scenario or "one-at-once" in args.scenario:
        noop_p50 = [p["no-op"]["p50_s"] * 1e6 for p in loadgen_pairs]
        for label in rnn_labels:
            rnn_p50 = [p[label]["p50_s"] * 1e6 for p in loadgen_pairs]
            added = [r - n for n, r in zip(noop_p50, rnn_p50)]
            shape = "one-at-once, rnn-loadgen p50 (1×1)"
            if len(rnn_labels) > 1:
                shape += f", {label}"
            print(f"| {shape} | {spread(noop_p50, '{:.0f}')} µs "
                  f"| {spread(rnn_p50, '{:.0f}')} µs | added {spread(added, '{:+.1f}')} µs |")
    throughput = [(n, r) for n, r in results.items() if n != "one-at-once"]
    if throughput:
        print("\nCPU per request (server, h2load) and the machine's idle share, over each run; "
              "the most the server could serve with every core busy at its CPU per request "
              "(cores / (server + h2load)), against the no-op's measured rate:")
    for name, (rows, _, _, pairs) in throughput:
        for label in ["no-op"] + rnn_labels:
            runs = [p[label] for p in pairs]
            line = (f"{name}, {label}: {spread([r['server_cpu_us'] for r in runs], '{:.0f}')} + "
                    f"{spread([r['h2load_cpu_us'] for r in runs], '{:.0f}')} µs, idle "
                    f"{spread([100 * r['idle'] for r in runs], '{:.0f}')}%")
            if label != "no-op":
                bound = [os.cpu_count() * 1e6 / (p[label]["server_cpu_us"] + p[label]["h2load_cpu_us"])
                         / p["no-op"]["rps"] for p in pairs]
                line += f"; at most {spread(bound, '{:.2f}')} of the no-op"
            print(line)
    for name, (rows, _, _, pairs) in results.items():
        if rows == 1:
            continue
        in_process = [p["in process"] for p in pairs]
        print(f"\n{name}: the model alone in process (model_bench, fp32, 1 thread) "
              f"{spread([s / 1e3 for s in in_process], '{:.0f}')}k seq/s")
        for label in rnn_labels:
            served = [p[label]["rps"] * rows / p["in process"] for p in pairs]
            print(f"{label} serves {spread(served, '{:.2f}')} of it; the model inside it "
                  f"{spread([p[label]['compute_us'] for p in pairs], '{:.2f}')} µs per "
                  f"sequence, in process "
                  f"{spread([1e6 / p['in process'] for p in pairs], '{:.2f}')}")
    if "batch-1" in results:
        print()
        for label in rnn_labels:
            runs = [p[label] for p in results["batch-1"][3]]
            print(f"{label}, batch-1 runs: resident memory "
                  f"{spread([r['rss_at_rest_mib'] for r in runs], '{:.0f}')} MiB at rest, "
                  f"{spread([r['rss_mib'] for r in runs], '{:.0f}')} MiB at the end; "
                  f"sequences per batch {spread([r['mean_batch'] for r in runs], '{:.1f}')}, "
                  f"the model {spread([r['compute_us'] for r in runs], '{:.1f}')} µs per sequence")
    print(f"start to serving (median of 5): rnn-server "
          f"{startup_seconds(rnn, args.server_flag) * 1e3:.0f} ms, no-op "
          f"{startup_seconds(noop, ['--metrics_port=-1']) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
