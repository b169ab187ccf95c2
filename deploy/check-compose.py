"""Proves docker-compose.yml and scale-out by DNS with real containers:

1. `docker-compose config -q` (Debian's docker-compose, no engine needed)
   accepts docker-compose.yml alone and with the test override.
2. podman-compose brings up rnn-server and Prometheus (from a Debian-based
   image standing in for prom/prometheus, deploy/compose/test.yml) on
   loopback ports; rnn-client sends real requests from the host, and
   Prometheus' HTTP API must show the server up and its rnn_* series
   counting them.
3. Scale-out on one machine: three rnn-server containers share one network
   alias on a podman network (the dnsname plugin answers the name with every
   replica's address, as a Kubernetes headless Service does); rnn-loadgen in
   a fourth container balances per call with gRPC's round_robin over
   dns:///rnn:8001, and every replica's /metrics must show a share.

Usage (as root, after deploy/setup-podman.sh and with the rnn-server image
built, e.g. by deploy/check-container.py; make check-container runs all):
    /usr/bin/python3 deploy/check-compose.py BUILD_DIR [--image NAME]
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from testlib import free_port  # noqa: E402

PROMETHEUS_IMAGE = "localhost/rnn-prometheus-debian:latest"


def run(*cmd, check=True, **kwargs):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kwargs)
    if check and r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def fail(message):
    sys.exit(f"check-compose: FAILED: {message}")


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def prometheus_query(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    return json.loads(get(url))["data"]["result"]


def wait_for(what, predicate, seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if predicate():
                return
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        time.sleep(1)


def counter(metrics_text, name, label=""):
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.split()[-1])
    return total


def check_config():
    run("docker-compose", "-f", "docker-compose.yml", "config", "-q")
    run("docker-compose", "-f", "docker-compose.yml", "-f", "deploy/compose/test.yml",
        "config", "-q")
    for path in ("deploy/grafana/dashboards/rnn-server.json",):
        with open(os.path.join(ROOT, path)) as f:
            json.load(f)
    print("check-compose: docker-compose config accepts the stack and the test override")


def check_stack(client):
    run("podman", "build", "-t", PROMETHEUS_IMAGE, "-f", "deploy/compose/prometheus.Dockerfile",
        "deploy/compose")
    env = dict(os.environ, RNN_GRPC_PORT=str(free_port()), RNN_METRICS_PORT=str(free_port()),
               PROMETHEUS_PORT=str(free_port()), GRAFANA_PORT=str(free_port()))
    project = f"rnncheck{os.getpid()}"
    compose = ["podman-compose", "-p", project, "-f", "docker-compose.yml",
               "-f", "deploy/compose/test.yml"]
    run(*compose, "up", "-d", "--no-build", "rnn-server", "prometheus", env=env)
    try:
        target = f"--target=127.0.0.1:{env['RNN_GRPC_PORT']}"
        wait_for("rnn-server to serve",
                 lambda: run(client, target, "--deadline_ms=1000", "health",
                             check=False).returncode == 0)
        for _ in range(5):
            run(client, target, "infer", "--random=4")
        port = env["PROMETHEUS_PORT"]
        wait_for("Prometheus to see the server up",
                 lambda: any(r["value"][1] == "1"
                             for r in prometheus_query(port, 'up{job="rnn-server"}')))
        wait_for("Prometheus to count the 20 sequences",
                 lambda: float(prometheus_query(port, "sum(rnn_sequences_total)")[0]["value"][1])
                 >= 20)
        rules = json.loads(get(f"http://127.0.0.1:{port}/api/v1/rules"))["data"]["groups"]
        if not rules:
            fail("Prometheus loaded no rule groups")
        print(f"check-compose: podman-compose stack up; Prometheus scrapes rnn-server "
              f"(up=1, sequences counted) and loaded {len(rules)} rule groups")
    finally:
        run(*compose, "down", env=env, check=False)


def check_scale_out(image, replicas=3):
    network = f"rnncheck{os.getpid()}"
    run("podman", "network", "create", network)
    names, ports = [], []
    try:
        for i in range(replicas):
            names.append(f"{network}-replica{i}")
            ports.append(free_port())
            run("podman", "run", "-d", "--name", names[-1], "--network", network,
                "--network-alias", "rnn", "-p", f"127.0.0.1:{ports[-1]}:8002", image)
        for port in ports:
            wait_for("replica metrics",
                     lambda: counter(get(f"http://127.0.0.1:{port}/metrics"),
                                     "rnn_model_ready") == 1)
        run("podman", "run", "--rm", "--network", network, "--entrypoint", "rnn-loadgen", image,
            "--transport=grpc", "--target=dns:///rnn:8001", "--concurrency=6", "--warmup=0.5",
            "--duration=3", "--weights=/usr/local/share/rnn-server/rnn.safetensors")
        counts = [counter(get(f"http://127.0.0.1:{p}/metrics"), "rnn_requests_total",
                          'code="OK"') for p in ports]
        total = sum(counts)
        print(f"check-compose: {replicas} replicas behind dns:///rnn:8001 served "
              f"{', '.join(f'{c:.0f}' for c in counts)} requests")
        for c in counts:
            if c < total / replicas / 3:
                fail(f"a replica served {c:.0f} of {total:.0f} requests: not balanced per call")
    finally:
        for name in names:
            run("podman", "rm", "-f", name, check=False)
        run("podman", "network", "rm", "-f", network, check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build")
    p.add_argument("--image", default="localhost/rnn-server:latest")
    args = p.parse_args()
    check_config()
    check_stack(os.path.join(args.build, "client", "rnn-client"))
    check_scale_out(args.image)
    print("check-compose: PASSED")


if __name__ == "__main__":
    main()
