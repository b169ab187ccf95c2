"""ModelStreamInfer against real rnn-server processes, with Python's grpcio.

Stubs are compiled at test time from the project's proto/ with grpc_tools;
answers are checked against the numpy float64 forward pass of the weights
file (tests/testlib.py), independent of the C++ code.

- A slow reader: one stream carries 20000 requests while its client reads
  nothing for several seconds; the server's resident memory must stay
  bounded (it stops reading at --max_inflight_per_stream unanswered
  requests, and HTTP/2 flow control then stops the client). Then every one
  of the 20000 answers is read and must be right.
- SIGTERM mid-stream: every request the server accepted before the signal
  is answered with its result, requests written after the drain began get
  UNAVAILABLE if they get anything, the stream ends UNAVAILABLE and the
  process exits 0.

Usage (ctest runs it):
    /usr/bin/python3 tests/stream_test.py BUILD/server/rnn-server model/rnn.safetensors proto
"""

import os
import queue
import re
import signal
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model"))
from safetensors_io import read_safetensors  # noqa: E402

sys.path.insert(0, HERE)
from testlib import compile_stubs, numpy_forward, start_server  # noqa: E402

SERVER, WEIGHTS, PROTO_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
T, C = 20, 100
RSS_GROWTH_LIMIT = 64 << 20


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def scrape(address):
    """Unlabelled and labelled samples of one /metrics scrape, by series."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


class Sequences:
    """`count` distinct random sequences and their numpy probabilities."""

    def __init__(self, count, seed):
        self.x = np.random.default_rng(seed).uniform(-1, 1, (count, T, C)).astype("<f4")
        weights, _ = read_safetensors(WEIGHTS)
        self.expected = numpy_forward(weights, self.x.astype(np.float64))
        self.raw = [row.tobytes() for row in self.x]


class StreamTestBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pb, cls.pb_grpc = compile_stubs(PROTO_DIR, cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def start(self, *flags, channel_options=()):
        proc, address, metrics = start_server(SERVER, f"--model={WEIGHTS}", *flags)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)

        self.addCleanup(stop)
        channel = grpc.insecure_channel(address, options=list(channel_options))
        self.addCleanup(channel.close)
        grpc.channel_ready_future(channel).result(timeout=10)
        return proc, channel, metrics

    def request(self, seqs, i, request_id):
        request = self.pb.ModelInferRequest(model_name="rnn", id=request_id)
        tensor = request.inputs.add(name="sequence", datatype="FP32")
        tensor.shape.extend([1, T, C])
        request.raw_input_contents.append(seqs.raw[i])
        return request

    def check_answer(self, response, seqs, i):
        self.assertEqual(response.error_message, "", response.infer_response.id)
        r = response.infer_response
        self.assertEqual(list(r.outputs[0].shape), [1, 10])
        probs = np.frombuffer(r.raw_output_contents[0], "<f4")
        self.assertLess(np.abs(probs - seqs.expected[i]).max(), 1e-5, r.id)


class SlowReaderTest(StreamTestBase):
    N = 20000
    POOL = 1000

    def test_slow_reader_bounds_server_memory_and_gets_every_answer(self):
        # A client that accepts at most 64 KiB of answers it has not read
        # (gRPC would otherwise grow its window to take all 20000 answers,
        # about 2 MB, and the server would never meet a slow reader).
        proc, channel, metrics = self.start(channel_options=[
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", 65536)])
        stub = self.pb_grpc.GRPCInferenceServiceStub(channel)
        seqs = Sequences(self.POOL, seed=11)

        # Warm-up: a fully read stream, so that gRPC's buffers and the
        # allocator's arenas exist before the baseline is taken.
        warm = list(stub.ModelStreamInfer(
            iter([self.request(seqs, i, f"w{i}") for i in range(500)]), timeout=60))
        self.assertEqual(len(warm), 500)
        baseline = rss_bytes(proc.pid)

        sent = [0]

        def requests():
            for i in range(self.N):
                sent[0] = i + 1
                yield self.request(seqs, i % self.POOL, f"r{i}")

        responses = stub.ModelStreamInfer(requests(), timeout=240)
        # Read nothing while the client keeps writing: at least 3 s, then
        # until the writes have stalled for 2 s (the server stopped reading)
        # or all were sent; never more than 60 s.
        start = last_change = time.monotonic()
        last_sent, most_rss, most_inflight = 0, baseline, 0.0
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            most_rss = max(most_rss, rss_bytes(proc.pid))
            most_inflight = max(most_inflight, scrape(metrics)["rnn_inflight_requests"])
            if sent[0] != last_sent:
                last_sent, last_change = sent[0], now
            if now - start >= 3 and (now - last_change >= 2 or sent[0] == self.N):
                break
            self.assertLess(now - start, 60, "the writes neither stalled nor finished")
        growth = most_rss - baseline
        print(f"not reading for {now - start:.1f} s: {sent[0]} of {self.N} requests "
              f"sent, RSS +{growth / 2**20:.1f} MiB, at most {most_inflight:.0f} "
              f"requests in flight", file=sys.stderr)
        self.assertLess(growth, RSS_GROWTH_LIMIT)
        # 20000 requests are 160 MB: only a server that kept reading from a
        # client that reads nothing could have taken them all.
        self.assertLess(sent[0], self.N, "the server never stopped reading")
        # One stream's unanswered requests are bounded (default 128).
        self.assertLessEqual(most_inflight, 128)

        seen = {}
        for response in responses:
            rid = response.infer_response.id
            self.assertNotIn(rid, seen)
            seen[rid] = response
        self.assertEqual(len(seen), self.N)
        for i in range(self.N):
            self.check_answer(seen[f"r{i}"], seqs, i % self.POOL)
        self.assertLess(rss_bytes(proc.pid) - baseline, RSS_GROWTH_LIMIT)


class StreamCollector:
    """Writes requests put with write() on one stream; reads every response
    on a thread. close() half-closes; the stream's end is awaited with
    wait_end()."""

    def __init__(self, stub):
        self.outgoing = queue.Queue()
        self.responses = []
        self.status = None
        self.cond = threading.Condition()
        self.call = stub.ModelStreamInfer(iter(self.outgoing.get, None), timeout=120)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for response in self.call:
                with self.cond:
                    self.responses.append(response)
                    self.cond.notify_all()
            status = grpc.StatusCode.OK
        except grpc.RpcError as e:
            status = e.code()
        with self.cond:
            self.status = status
            self.cond.notify_all()

    def write(self, request):
        self.outgoing.put(request)

    def close(self):
        self.outgoing.put(None)

    def wait_for(self, n, timeout):
        with self.cond:
            return self.cond.wait_for(
                lambda: len(self.responses) >= n or self.status is not None, timeout)

    def wait_end(self, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.status is not None, timeout)
            return self.status


class SigtermTest(StreamTestBase):
    def test_sigterm_mid_stream_answers_every_accepted_request(self):
        # Batches fill to 64 rows or wait 5 s: the second group of requests
        # is surely queued, accepted and unanswered, when the signal comes.
        proc, channel, metrics = self.start("--max_batch_size=64",
                                            "--max_queue_delay_us=5000000")
        stub = self.pb_grpc.GRPCInferenceServiceStub(channel)
        seqs = Sequences(200, seed=5)
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch",
                                     request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)(b"", timeout=60)
        self.assertEqual(next(watch), b"\x08\x01")  # SERVING

        stream = StreamCollector(stub)
        self.addCleanup(stream.close)
        sent = {}
        # Traffic flowing: one full batch, answered at once.
        for i in range(64):
            sent[f"a{i}"] = i
            stream.write(self.request(seqs, i, f"a{i}"))
        self.assertTrue(stream.wait_for(64, 30), len(stream.responses))
        # 50 more, read and queued by the server, then the signal.
        for i in range(64, 114):
            sent[f"b{i}"] = i
            stream.write(self.request(seqs, i, f"b{i}"))
        deadline = time.monotonic() + 30
        while scrape(metrics)["rnn_inflight_requests"] < 50:
            self.assertLess(time.monotonic(), deadline, "requests never accepted")
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(next(watch), b"\x08\x02")  # NOT_SERVING
        # Written after the drain began: UNAVAILABLE if read at all.
        late = {}
        for i in range(114, 124):
            late[f"late{i}"] = i
            stream.write(self.request(seqs, i, f"late{i}"))

        self.assertEqual(stream.wait_end(60), grpc.StatusCode.UNAVAILABLE)
        stream.close()
        rest = proc.communicate(timeout=30)[0]
        self.assertEqual(proc.returncode, 0, rest)

        answered = {}
        for response in stream.responses:
            rid = response.infer_response.id
            self.assertNotIn(rid, answered)
            answered[rid] = response
        for rid, i in sent.items():
            self.assertIn(rid, answered, "an accepted request was never answered")
            self.check_answer(answered[rid], seqs, i)
        late_answers = 0
        for rid, response in answered.items():
            if rid in sent:
                continue
            self.assertIn(rid, late, "an answer to a request never sent")
            late_answers += 1
            self.assertNotEqual(response.error_message, "")
            self.assertEqual(
                response.infer_response.parameters["error_code"].string_param,
                "UNAVAILABLE")
        print(f"{len(sent)} accepted requests answered, {late_answers} of "
              f"{len(late)} late ones answered UNAVAILABLE", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
