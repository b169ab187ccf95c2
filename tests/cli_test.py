"""rnn-client and rnn-server as a user meets them: real binaries, real
process boundaries, loopback only.

Usage (ctest runs it):
    /usr/bin/python3 tests/cli_test.py BUILD/server/rnn-server BUILD/client/rnn-client MODEL_DIR
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest

import numpy as np

SERVER, CLIENT, MODEL_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, MODEL_DIR)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402
from testlib import numpy_forward, start_server  # noqa: E402


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.target, _ = start_server(SERVER)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        cls.server.communicate(timeout=30)
        cls.tmp.cleanup()

    def client(self, *args, target=None):
        return subprocess.run([CLIENT, f"--target={target or self.target}", *args],
                              capture_output=True, text=True, timeout=60)

    def test_health(self):
        r = self.client("health")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"health\s+SERVING")
        self.assertRegex(r.stdout, r"ready\s+yes")

    def test_metadata_json(self):
        r = self.client("metadata", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = json.loads(r.stdout)
        self.assertEqual(meta["model"]["inputs"][0]["shape"], [-1, 20, 100])
        self.assertEqual(meta["model"]["outputs"][0]["name"], "probabilities")

    def test_infer_random_prints_one_row_per_sequence(self):
        r = self.client("infer", "--random=3")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l for l in r.stdout.splitlines()[1:] if l.strip()]
        self.assertEqual(len(rows), 3)

    def test_infer_eval_set_reports_the_trained_accuracy(self):
        r = self.client("infer", "--eval_set", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        _, meta = read_safetensors(os.path.join(MODEL_DIR, "rnn.safetensors"))
        n = len(out["results"])
        self.assertAlmostEqual(out["accuracy"], float(meta["eval_accuracy"]),
                               delta=1.0 / n + 1e-4)

    def test_infer_npy_matches_numpy(self):
        x = np.random.default_rng(5).uniform(-1, 1, (4, 20, 100)).astype(np.float32)
        path = os.path.join(self.tmp.name, "x.npy")
        np.save(path, x)
        r = self.client("infer", f"--input={path}", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = np.array([row["probabilities"] for row in json.loads(r.stdout)["results"]])
        weights, _ = read_safetensors(os.path.join(MODEL_DIR, "rnn.safetensors"))
        self.assertLess(np.abs(got - numpy_forward(weights, x.astype(np.float64))).max(), 1e-5)

    def test_errors_exit_non_zero_with_the_reason(self):
        bad = os.path.join(self.tmp.name, "bad.npy")
        np.save(bad, np.zeros((2, 20, 99), np.float32))
        r = self.client("infer", f"--input={bad}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("takes sequences of 20 x 100", r.stderr)
        r = self.client("--model=nope", "infer", "--random=1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_FOUND", r.stderr)
        r = self.client("infer")
        self.assertEqual(r.returncode, 2)
        self.assertIn("exactly one of", r.stderr)
        r = self.client("frobnicate")
        self.assertEqual(r.returncode, 2)
        r = self.client("--deadline_ms=500", "health", target="127.0.0.1:1")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, "UNAVAILABLE|DEADLINE_EXCEEDED")

    def test_server_refuses_bad_flags(self):
        r = subprocess.run([SERVER, "--max_batch_size=0"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--max_batch_size", r.stderr)
        r = subprocess.run([SERVER, "--max_connection_age_s=-1"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--max_connection_age_s", r.stderr)
        r = subprocess.run([SERVER, "--grpc_port=0", "--metrics_port=-1",
                            "--model=/nonexistent.safetensors"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent.safetensors", r.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
