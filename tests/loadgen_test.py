"""rnn-loadgen against real rnn-server processes on loopback, the way a user
runs it: closed- and open-loop runs with every answer verified, the open
loop's rate, coordinated omission (a server stopped with SIGSTOP must show in
the open loop's tail), wrong answers caught, errors and bad usage, several
targets, and the JSON/CSV/HTML reports (the HTML parsed strictly and, where
Chromium is installed, rendered to a screenshot). Each transport — h2, grpc
and --streaming (ModelStreamInfer) — is run verified, with errors, deadlines
and connections the server ends.

Usage (ctest runs it):
    /usr/bin/python3 tests/loadgen_test.py BUILD/server/rnn-server BUILD/client/rnn-loadgen MODEL_DIR
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

import numpy as np

SERVER, LOADGEN, MODEL_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, MODEL_DIR)
sys.path.insert(0, HERE)
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402
from testlib import start_server  # noqa: E402

WEIGHTS = os.path.join(MODEL_DIR, "rnn.safetensors")
SMALL_GOLDEN = os.path.join(HERE, "data", "golden", "simple_rnn_5x3_4_2.safetensors")
SHORT = ["--warmup=0.2", "--duration=1"]


def start_measuring(*args):
    """Starts rnn-loadgen with `args`; returns it once its first step has
    begun measuring (after its warm-up)."""
    lg = subprocess.Popen([LOADGEN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    for line in lg.stderr:
        if "measuring" in line:
            break
    return lg


def stop(proc):
    proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


class LoadgenTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.target, cls.metrics = start_server(SERVER)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        stop(cls.server)
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def loadgen(self, *args, target=None, timeout=120):
        return subprocess.run([LOADGEN, f"--target={target or self.target}", *args],
                              capture_output=True, text=True, timeout=timeout)

    def run_json(self, *args, expect=0, **kwargs):
        out = self.path("r.json")
        r = self.loadgen(*args, f"--json={out}", **kwargs)
        self.assertEqual(r.returncode, expect, r.stdout + r.stderr)
        with open(out) as f:
            return json.load(f), r

    def assertClean(self, step):
        self.assertEqual(step["errors"], {})
        self.assertEqual(step["wrong"], 0)
        self.assertGreater(step["ok"], 0)
        self.assertEqual(step["ok"], step["requests"])

    def test_closed_loop_sweep_verified_with_server_breakdown(self):
        report, r = self.run_json("--concurrency=1:4:x2", *SHORT, "--verify",
                                  f"--weights={WEIGHTS}",
                                  f"--metrics_url=http://{self.metrics}/metrics")
        self.assertEqual(report["mode"], "closed")
        self.assertEqual([s["concurrency"] for s in report["results"]], [1, 2, 4])
        for step in report["results"]:
            self.assertClean(step)
            self.assertAlmostEqual(step["throughput_rps"],
                                   step["ok"] / step["duration_s"], delta=1)
            lat = step["latency_us"]
            self.assertTrue(0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat)
            server = step["server"]
            # The scrapes bracket the window, a scrape's round trip after
            # each edge: calls answered meanwhile fall on one side only (a
            # few milliseconds of traffic; more on a loaded machine).
            self.assertLessEqual(abs(server["requests_ok"] - step["ok"]),
                                 2 * step["concurrency"] + 0.1 * step["ok"])
            self.assertGreater(server["compute_us"], 0)
            self.assertGreater(server["request_us"], 0)
            self.assertGreaterEqual(server["batch_size"], 1)
        self.assertIn("summary", r.stdout)

    def test_open_loop_keeps_its_rate(self):
        for arrivals in ("constant", "poisson"):
            report, _ = self.run_json("--rate=400", f"--arrivals={arrivals}",
                                      "--warmup=0.5", "--duration=3", f"--weights={WEIGHTS}")
            step = report["results"][0]
            self.assertClean(step)
            self.assertEqual(report["arrivals"], arrivals)
            self.assertTrue(step["rate_kept"], step)
            tolerance = 0.05 * 400
            self.assertAlmostEqual(step["throughput_rps"], 400, delta=tolerance)
            self.assertAlmostEqual(step["sent_rps"], 400, delta=tolerance)

    def test_batched_requests_and_eval_set_labels(self):
        report, _ = self.run_json("--concurrency=3", "--batch=8", *SHORT,
                                  f"--weights={WEIGHTS}")
        step = report["results"][0]
        self.assertClean(step)
        self.assertAlmostEqual(step["sequences_per_s"], 8 * step["throughput_rps"], delta=1)
        report, r = self.run_json("--concurrency=2", "--inputs=eval_set", "--verify", *SHORT)
        step = report["results"][0]
        self.assertEqual(report["verify"], "labels")
        self.assertGreaterEqual(step["accuracy"], 0.95)
        self.assertIn("accuracy against labels", r.stdout)

    def wrong_weights(self):
        """The bundled weights with the classes rotated by one: a model
        that answers the wrong class."""
        weights, meta = read_safetensors(WEIGHTS)
        weights = dict(weights)
        weights["dense/kernel"] = np.roll(weights["dense/kernel"], 1, axis=1)
        weights["dense/bias"] = np.roll(weights["dense/bias"], 1)
        bad = self.path("bad.safetensors")
        write_safetensors(bad, weights, meta)
        return bad

    def test_wrong_weights_are_caught_and_fail_the_run(self):
        for transport in ("--transport=h2", "--transport=grpc", "--streaming"):
            report, r = self.run_json("--concurrency=2", *SHORT, transport,
                                      f"--weights={self.wrong_weights()}", expect=1)
            step = report["results"][0]
            self.assertEqual(step["errors"], {})
            # Only a sequence whose ten probabilities all lie within 1e-4 of
            # each other would still pass.
            self.assertGreater(step["ok"], 0)
            self.assertGreaterEqual(step["wrong"], 0.99 * step["ok"])
            self.assertRegex(r.stdout, r"request id \d+\.\d+: sequence 0 \(input row \d+\)")
            self.assertIn("FAILED", r.stderr)

    def test_grpc_transport_verifies_the_same_answers(self):
        report, _ = self.run_json("--transport=grpc", "--concurrency=1:4:x4", *SHORT,
                                  "--connections=2", f"--weights={WEIGHTS}")
        self.assertEqual(len(report["results"]), 2)
        for step in report["results"]:
            self.assertClean(step)
        report, _ = self.run_json("--transport=grpc", "--rate=300", *SHORT,
                                  f"--weights={WEIGHTS}")
        self.assertClean(report["results"][0])

    def test_streaming_closed_loop_verified(self):
        report, r = self.run_json("--streaming", "--concurrency=1:16:x16", "--connections=2",
                                  *SHORT, f"--weights={WEIGHTS}")
        self.assertEqual(report["transport"], "stream")
        self.assertIn("closed loop, transport stream", r.stderr)
        self.assertEqual([s["concurrency"] for s in report["results"]], [1, 16])
        for step in report["results"]:
            self.assertClean(step)
        report, _ = self.run_json("--streaming", "--concurrency=3", "--batch=5", *SHORT,
                                  f"--weights={WEIGHTS}")
        self.assertClean(report["results"][0])

    def test_streaming_open_loop_keeps_its_rate(self):
        report, _ = self.run_json("--streaming", "--rate=400", "--warmup=0.5", "--duration=3",
                                  f"--weights={WEIGHTS}")
        step = report["results"][0]
        self.assertEqual(report["mode"], "open")
        self.assertEqual(report["transport"], "stream")
        self.assertClean(step)
        self.assertTrue(step["rate_kept"], step)
        self.assertAlmostEqual(step["throughput_rps"], 400, delta=0.05 * 400)
        self.assertAlmostEqual(step["sent_rps"], 400, delta=0.05 * 400)

    def test_streaming_sends_on_one_stream_per_connection(self):
        # The server reads one request per stream at a time and lets the
        # oldest queued request wait 20 ms for a batch to fill. On one
        # stream every batch is then one row, on two streams two; unary
        # calls, which no stream bound holds back, fill larger batches.
        proc, target, metrics = start_server(SERVER, "--max_inflight_per_stream=1",
                                             "--max_queue_delay_us=20000")
        try:
            def mean_batch(*args):
                report, _ = self.run_json("--concurrency=8", "--warmup=0.3", "--duration=1",
                                          f"--weights={WEIGHTS}",
                                          f"--metrics_url=http://{metrics}/metrics", *args,
                                          target=target)
                self.assertClean(report["results"][0])
                return report["results"][0]["server"]["batch_size"]
            self.assertEqual(mean_batch("--streaming"), 1.0)
            two = mean_batch("--streaming", "--connections=2")
            self.assertGreater(two, 1.5)
            self.assertLessEqual(two, 2.0)
            self.assertGreaterEqual(mean_batch("--transport=grpc"), 4)
        finally:
            stop(proc)

    def test_interrupt_ends_the_run_with_its_reports(self):
        out = self.path("interrupted.json")
        lg = start_measuring(f"--target={self.target}", "--concurrency=2:4:x2",
                             "--warmup=0", "--duration=60", f"--json={out}")
        time.sleep(0.5)
        lg.send_signal(signal.SIGINT)
        stdout, stderr = lg.communicate(timeout=30)
        self.assertEqual(lg.returncode, 130, stderr)
        self.assertIn("interrupted", stderr)
        with open(out) as f:
            steps = json.load(f)["results"]
        self.assertEqual(len(steps), 1)
        self.assertTrue(steps[0]["interrupted"])
        self.assertGreater(steps[0]["ok"], 0)
        self.assertLess(steps[0]["duration_s"], 30)

    def test_overload_errors_are_counted_and_fail_unless_allowed(self):
        proc, target, _ = start_server(SERVER, "--max_queue_size=1", "--max_batch_size=1",
                                       "--metrics_port=-1")
        try:
            args = ["--concurrency=32", *SHORT, f"--weights={WEIGHTS}"]
            report, _ = self.run_json(*args, target=target, expect=1)
            step = report["results"][0]
            self.assertGreater(step["errors"].get("UNAVAILABLE", 0), 0)
            self.assertEqual(step["wrong"], 0)
            self.assertEqual(step["requests"], step["ok"] + step["errors"]["UNAVAILABLE"])
            report, _ = self.run_json(*args, "--allow_errors", target=target, expect=0)
            # On a stream each refused request is an error answer naming its
            # code; the stream stays open for the others.
            report, _ = self.run_json("--streaming", "--connections=2", *args, target=target,
                                      expect=1)
            step = report["results"][0]
            self.assertGreater(step["errors"].get("UNAVAILABLE", 0), 0)
            self.assertGreater(step["ok"], 0)
            self.assertEqual(step["wrong"], 0)
            self.assertEqual(step["requests"], step["ok"] + step["errors"]["UNAVAILABLE"])
        finally:
            stop(proc)

    def test_connections_ended_by_max_connection_age_lose_no_call(self):
        # The server sends GOAWAY to connections older than 1 s; both
        # transports move new calls to a new connection and let the old one
        # finish its calls.
        # A stream is one call: it keeps its connection until it ends.
        proc, target, _ = start_server(SERVER, "--max_connection_age_s=1", "--metrics_port=-1")
        try:
            for transport in ("--transport=h2", "--transport=grpc", "--streaming"):
                report, _ = self.run_json("--concurrency=8", "--connections=2", "--warmup=0",
                                          "--duration=3.5", transport,
                                          f"--weights={WEIGHTS}", target=target)
                self.assertClean(report["results"][0])
        finally:
            stop(proc)

    def test_the_input_shape_comes_from_the_servers_metadata(self):
        proc, target, _ = start_server(SERVER, "--sequence_length=7", "--metrics_port=-1")
        try:
            report, _ = self.run_json("--concurrency=2", "--batch=3", *SHORT,
                                      f"--weights={WEIGHTS}", target=target)
        finally:
            stop(proc)
        # Expected answers computed for 7 time steps: only a loadgen that
        # sent 7-step sequences and checked them as such gets them right.
        self.assertClean(report["results"][0])

    def test_several_targets_share_the_load_and_are_reported_apart(self):
        proc, second, _ = start_server(SERVER, "--metrics_port=-1")
        try:
            report, r = self.run_json("--concurrency=4", *SHORT, f"--weights={WEIGHTS}",
                                      f"--target={second}")
        finally:
            stop(proc)
        step = report["results"][0]
        self.assertClean(step)
        self.assertEqual(report["targets"], [self.target, second])
        per = step["per_target"]
        self.assertEqual(set(per), {self.target, second})
        self.assertEqual(per[self.target]["ok"] + per[second]["ok"], step["ok"])
        for counts in per.values():
            self.assertGreater(counts["ok"], step["ok"] / 4)
        self.assertIn(f"{second}: ", r.stdout)

    def test_reports_parse_and_the_html_is_self_contained(self):
        paths = {k: self.path(f"report.{k}") for k in ("json", "csv", "html")}
        r = self.loadgen("--rate=200:400:+200", *SHORT, f"--weights={WEIGHTS}",
                         *(f"--{k}={p}" for k, p in paths.items()))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(paths["json"]) as f:
            report = json.load(f)
        for key in ("target", "targets", "model", "mode", "batch", "inputs", "verify",
                    "started_at", "command", "results"):
            self.assertIn(key, report)
        for step in report["results"]:
            for key in ("rate", "duration_s", "requests", "ok", "throughput_rps",
                        "sequences_per_s", "latency_us", "errors", "wrong",
                        "behind_schedule_us", "per_target", "server"):
                self.assertIn(key, step)
        with open(paths["csv"], newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([float(r["Request Rate"]) for r in rows], [200, 400])
        for row, step in zip(rows, report["results"]):
            self.assertEqual(int(row["OK"]), step["ok"])
            self.assertAlmostEqual(float(row["p99 latency"]), step["latency_us"]["p99"], delta=0.1)
            self.assertEqual(row["Rate Kept"], "yes")

        with open(paths["html"], encoding="utf-8") as f:
            html = f.read()
        root = ET.fromstring(re.sub(r"^<!DOCTYPE html>", "", html.lstrip()))
        svg = "{http://www.w3.org/2000/svg}svg"
        self.assertGreaterEqual(len(list(root.iter(svg))), 2)
        self.assertNotIn("<script", html.lower())
        for url in re.findall(r"(?:https?:)?//[^\s\"'<>)]+", html):
            self.assertRegex(url, r"^http://www\.w3\.org/", "external resource in the report")
        self.assertIn("200", html)
        chromium = shutil.which("chromium")
        if chromium is None:
            self.skipTest("chromium not installed: screenshot not taken")
        png = self.path("report.png")
        profile = tempfile.mkdtemp(dir=self.tmp.name)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                        f"--user-data-dir={profile}", "--window-size=1200,900",
                        f"--screenshot={png}", "file://" + paths["html"]],
                       capture_output=True, timeout=120)
        with open(png, "rb") as f:
            image = f.read()
        self.assertEqual(image[:8], b"\x89PNG\r\n\x1a\n")
        # A blank page compresses to a few hundred bytes; the report's tables
        # and charts to tens of kilobytes.
        self.assertGreater(len(image), 20_000)

    def test_bad_usage_and_unusable_targets(self):
        for args, message in [
            (["--concurrency=0"], "positive"),
            (["--concurrency=4", "--rate=100"], "not both"),
            (["--rate=abc"], "not a number"),
            (["--arrivals=bursty", "--rate=10"], "constant"),
            (["--verify"], "--weights"),
            (["--batch=0"], "--batch"),
            (["--metrics_url=https://x/metrics"], "metrics_url"),
            (["stray"], "unexpected argument"),
        ]:
            r = self.loadgen(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(message, r.stderr, args)
        r = self.loadgen("--concurrency=1", *SHORT, target="127.0.0.1:1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach 127.0.0.1:1", r.stderr)
        r = self.loadgen("--model=nope", *SHORT)
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_FOUND", r.stderr)
        r = self.loadgen(*SHORT, f"--weights={SMALL_GOLDEN}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not match the model's shape", r.stderr)
        r = self.loadgen(*SHORT, "--metrics_url=http://127.0.0.1:1/metrics")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--metrics_url", r.stderr)


class FrozenServerTest(unittest.TestCase):
    """A server frozen for half a second (SIGSTOP) in the middle of a window.
    Open loop measures from each request's intended send time, so every
    request scheduled during the freeze waits for it and the tail shows it,
    even when the in-flight cap stops the sender; closed loop at
    concurrency 1 sends nothing during the freeze, so only one request sees
    it and the percentiles stay low (coordinated omission, as wrk2 puts it)."""

    FREEZE_S = 0.5

    def run_with_freeze(self, *args, expect=0):
        proc, target, _ = start_server(SERVER, "--metrics_port=-1")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "r.json")
                lg = start_measuring(f"--target={target}", "--warmup=0.3", "--duration=3",
                                     f"--weights={WEIGHTS}", f"--json={out}", *args)
                time.sleep(1.0)
                proc.send_signal(signal.SIGSTOP)
                time.sleep(self.FREEZE_S)
                proc.send_signal(signal.SIGCONT)
                stdout, stderr = lg.communicate(timeout=60)
                self.assertEqual(lg.returncode, expect, stdout + stderr)
                with open(out) as f:
                    return json.load(f)["results"][0]
        finally:
            stop(proc)

    def test_open_loop_tail_shows_the_freeze(self):
        # 4 requests in flight at most: during the freeze the sender is
        # blocked too, and still the latency of what it sent late counts.
        step = self.run_with_freeze("--rate=500", "--max_inflight=4")
        freeze_us = self.FREEZE_S * 1e6
        self.assertEqual(step["errors"], {})
        self.assertGreaterEqual(step["latency_us"]["max"], 0.9 * freeze_us)
        # 250 of 1500 requests were due during the freeze; the top 1% waited
        # for nearly all of it.
        self.assertGreaterEqual(step["latency_us"]["p99"], 0.8 * freeze_us)
        self.assertGreaterEqual(step["behind_schedule_us"]["max"], 0.8 * freeze_us)

    def test_deadlines_end_calls_to_a_frozen_server(self):
        # On a stream the deadline is kept per request by the client.
        for transport in ("--transport=h2", "--transport=grpc", "--streaming"):
            step = self.run_with_freeze("--concurrency=4", "--deadline_ms=100", transport,
                                        expect=1)
            # The four calls in flight when the server froze, at least.
            self.assertGreaterEqual(step["errors"].get("DEADLINE_EXCEEDED", 0), 4, transport)
            self.assertEqual(step["wrong"], 0)
            # No answer came later than the deadline allows.
            self.assertLess(step["latency_us"]["max"], 100_000 + 50_000, transport)

    def test_closed_loop_hides_the_freeze_in_its_percentiles(self):
        step = self.run_with_freeze("--concurrency=1")
        freeze_us = self.FREEZE_S * 1e6
        self.assertGreaterEqual(step["latency_us"]["max"], 0.9 * freeze_us)
        self.assertLess(step["latency_us"]["p99"], 0.1 * freeze_us)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
