"""Proves the container image the way a user meets it: builds it with podman,
runs it with loopback ports, waits for health, checks the bundled eval set's
answers from the host with rnn-client, scrapes /metrics, checks the image's
HEALTHCHECK and its non-root user, then stops it with SIGTERM and checks a
clean exit within the shutdown timeout. Prints the image size.

Usage (as root, after deploy/setup-podman.sh; make check-container does both):
    /usr/bin/python3 deploy/check-container.py BUILD_DIR [--image NAME] [--no-build]
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "model"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from safetensors_io import read_safetensors  # noqa: E402
from testlib import free_port  # noqa: E402

SHUTDOWN_TIMEOUT_S = 5


def run(*cmd, check=True, **kwargs):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kwargs)


def fail(message):
    sys.exit(f"check-container: FAILED: {message}")


def build_image(image):
    start = time.monotonic()
    r = subprocess.run(["podman", "build", "--format", "docker", "-f", "deploy/Dockerfile",
                        "-t", image, "."], cwd=ROOT, text=True, capture_output=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:])
        fail("podman build failed")
    print(f"check-container: built {image} in {time.monotonic() - start:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build")
    p.add_argument("--image", default="localhost/rnn-server:latest")
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()
    client = os.path.join(args.build, "client", "rnn-client")
    if not args.no_build:
        build_image(args.image)

    config = json.loads(run("podman", "image", "inspect", args.image).stdout)[0]
    size_mb = config["Size"] / 1e6
    print(f"check-container: image size {size_mb:.0f} MB")
    if config["Config"].get("User") != "10001":
        fail(f"image user is {config['Config'].get('User')!r}, not 10001")
    if not config.get("Healthcheck"):
        fail("the image has no HEALTHCHECK (built without --format docker?)")
    if set(config["Config"].get("ExposedPorts", {})) != {"8001/tcp", "8002/tcp"}:
        fail(f"exposed ports {config['Config'].get('ExposedPorts')}")

    name = f"rnn-check-{os.getpid()}"
    grpc_port, metrics_port = free_port(), free_port()
    run("podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{grpc_port}:8001",
        "-p", f"127.0.0.1:{metrics_port}:8002", args.image,
        f"--shutdown_timeout_s={SHUTDOWN_TIMEOUT_S}")
    try:
        target = f"--target=127.0.0.1:{grpc_port}"
        deadline = time.monotonic() + 90
        while run(client, target, "--deadline_ms=1000", "health", check=False).returncode != 0:
            if time.monotonic() > deadline:
                fail("not SERVING after 90 s:\n" + run("podman", "logs", name).stdout)
            time.sleep(0.5)
        print("check-container: SERVING")

        r = run("podman", "healthcheck", "run", name, check=False)
        if r.returncode != 0:
            fail(f"the image's HEALTHCHECK failed: {r.stdout} {r.stderr}")
        uid = run("podman", "exec", name, "id", "-u").stdout.strip()
        if uid != "10001":
            fail(f"the server runs as uid {uid}")
        top = run("podman", "top", name, "user", "comm").stdout
        if "root" in top:
            fail(f"a process runs as root:\n{top}")
        print("check-container: HEALTHCHECK passes; runs as uid 10001")

        out = json.loads(run(client, target, "infer", "--eval_set", "--json").stdout)
        _, meta = read_safetensors(os.path.join(ROOT, "model", "rnn.safetensors"))
        n = len(out["results"])
        if abs(out["accuracy"] - float(meta["eval_accuracy"])) > 1.0 / n + 1e-6:
            fail(f"eval-set accuracy {out['accuracy']}, trained {meta['eval_accuracy']}")
        print(f"check-container: eval set of {n} sequences answered, accuracy "
              f"{out['accuracy']:.4f} (trained {meta['eval_accuracy']})")

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                    timeout=10) as response:
            metrics = response.read().decode()
        sequences = [l for l in metrics.splitlines() if l.startswith("rnn_sequences_total")]
        if not sequences or float(sequences[0].split()[-1]) < n:
            fail(f"/metrics does not count the {n} sequences: {sequences}")
        print("check-container: /metrics counts the traffic")

        start = time.monotonic()
        run("podman", "stop", "-t", str(SHUTDOWN_TIMEOUT_S + 20), name)
        elapsed = time.monotonic() - start
        state = json.loads(run("podman", "inspect", name).stdout)[0]["State"]
        logs = run("podman", "logs", name)
        if state["ExitCode"] != 0:
            fail(f"exit code {state['ExitCode']} after SIGTERM:\n{logs.stdout}{logs.stderr}")
        if elapsed > SHUTDOWN_TIMEOUT_S + 2 + 3:
            fail(f"took {elapsed:.1f} s to stop (shutdown timeout {SHUTDOWN_TIMEOUT_S} s)")
        if "stopped after" not in logs.stdout + logs.stderr:
            fail("no drain summary in the logs")
        print(f"check-container: SIGTERM: clean exit in {elapsed:.1f} s")
    finally:
        run("podman", "rm", "-f", name, check=False)
    print("check-container: PASSED")


if __name__ == "__main__":
    main()
