"""rnn-server's /metrics against the real Prometheus tools from Debian's
`prometheus` package, on loopback only:

1. `promtool check metrics` on a real scrape after real traffic: no lint
   findings allowed.
2. A real Prometheus server scraping rnn-server every second: its HTTP API
   must return the rnn_* and process_* series with the traffic's counts.

Usage (ctest runs it):
    /usr/bin/python3 tests/prometheus_test.py BUILD/server/rnn-server BUILD/client/rnn-client
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from testlib import field, free_port, start_server, varint  # noqa: E402

SERVER, CLIENT = sys.argv[1], sys.argv[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def request_bytes(model, rows, data_rows):
    """A serialized ModelInferRequest whose shape says `rows` sequences and
    whose payload holds `data_rows` (zeros)."""
    shape = b"".join(varint(d) for d in (rows, 20, 100))
    tensor = field(1, 2, b"sequence") + field(2, 2, b"FP32") + field(3, 2, shape)
    return (field(1, 2, model.encode()) + field(5, 2, tensor)
            + field(7, 2, bytes(4 * 2000 * data_rows)))


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class PrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.grpc, cls.metrics = start_server(SERVER)
        # Known traffic: 3 good calls of 4 sequences (rnn-client), then one
        # ModelInfer for an unknown model and one whose payload is too short
        # (raw protocol bytes through grpcio).
        for _ in range(3):
            subprocess.run([CLIENT, f"--target={cls.grpc}", "infer", "--random=4"],
                           check=True, capture_output=True, timeout=60)
        with grpc.insecure_channel(cls.grpc) as channel:
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                        request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
            for message, code in (
                    (request_bytes("nope", rows=1, data_rows=1), grpc.StatusCode.NOT_FOUND),
                    (request_bytes("rnn", rows=2, data_rows=1),
                     grpc.StatusCode.INVALID_ARGUMENT)):
                try:
                    infer(message, timeout=10)
                    raise AssertionError("bad request accepted")
                except grpc.RpcError as e:
                    assert e.code() == code, e
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        cls.server.communicate(timeout=30)
        cls.tmp.cleanup()

    def test_promtool_finds_nothing_to_lint(self):
        scrape = get(f"http://{self.metrics}/metrics")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=scrape,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual((r.stdout + r.stderr).strip(), "")
        for family in ("rnn_requests_total", "rnn_request_duration_seconds_bucket",
                       "rnn_queue_duration_seconds_bucket",
                       "rnn_compute_duration_seconds_bucket", "rnn_batch_size_bucket",
                       "rnn_sequences_total", "rnn_queue_depth", "rnn_inflight_requests",
                       "rnn_model_ready", "rnn_build_info",
                       "process_resident_memory_bytes", "process_cpu_seconds_total",
                       "process_start_time_seconds", "process_open_fds"):
            self.assertIn(family, scrape)

    def test_real_prometheus_receives_the_series(self):
        port = free_port()
        config = os.path.join(self.tmp.name, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: rnn-server\n"
                    f"    static_configs:\n      - targets: ['{self.metrics}']\n")
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self.tmp.name, 'data')}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            query = urllib.parse.quote('rnn_requests_total{code="OK"}')
            deadline = time.time() + 60
            result = []
            while time.time() < deadline:
                try:
                    body = json.loads(get(f"http://127.0.0.1:{port}/api/v1/query?query={query}"))
                    result = body["data"]["result"]
                    if result:
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            self.assertTrue(result, "no rnn_requests_total series arrived in Prometheus")
            series = result[0]
            self.assertEqual(series["metric"]["model"], "rnn")
            self.assertEqual(series["metric"]["job"], "rnn-server")
            self.assertEqual(float(series["value"][1]), 3.0)
            for expr, expected in (('rnn_requests_total{code="NOT_FOUND"}', 1.0),
                                   ('rnn_requests_total{code="INVALID_ARGUMENT"}', 1.0),
                                   ("rnn_sequences_total", 12.0),
                                   ("rnn_batch_size_sum", 12.0),
                                   ("rnn_request_duration_seconds_count", 5.0),
                                   ("rnn_model_ready", 1.0),
                                   ('up{job="rnn-server"}', 1.0)):
                body = json.loads(get(f"http://127.0.0.1:{port}/api/v1/query?query="
                                      + urllib.parse.quote(expr)))
                values = [float(s["value"][1]) for s in body["data"]["result"]]
                self.assertEqual(values, [expected], expr)
            body = json.loads(get(f"http://127.0.0.1:{port}/api/v1/query?query="
                                  + urllib.parse.quote("process_resident_memory_bytes")))
            self.assertGreater(float(body["data"]["result"][0]["value"][1]), 0)
        finally:
            prom.send_signal(signal.SIGTERM)
            prom.communicate(timeout=30)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
