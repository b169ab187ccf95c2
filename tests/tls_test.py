"""TLS and mutual TLS on rnn-server's gRPC port, end to end.

Throwaway certificates are made with Debian's openssl at test time (nothing
secret is committed): a CA, a server certificate for 127.0.0.1 signed by it,
a client certificate signed by it, and a second CA with a client certificate
of its own. Clients are grpcio's, independent of the project's C++ client.

Proves: over TLS a client that trusts the CA is served and a plaintext
client is not; with --tls_client_ca_file a client without a certificate and
one whose certificate comes from another CA are refused, one with the CA's
certificate is served; renewed files are picked up without a restart; bad
TLS flags and files are refused at start with a message.

Then the project's own clients, rnn-client and rnn-loadgen (--transport=grpc
and --streaming), against the same servers: served with the right CA and
client certificate, refused with a clear non-zero exit otherwise (exit 1 for
a server that will not have them or an unreadable file, 2 for flag misuse).

Usage (ctest runs it):
    /usr/bin/python3 tests/tls_test.py BUILD/server/rnn-server model/rnn.safetensors \
        BUILD/client/rnn-client BUILD/client/rnn-loadgen
"""

import json

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from testlib import infer_request, start_server  # noqa: E402

SERVER, WEIGHTS, CLIENT, LOADGEN = sys.argv[1:5]
SERVICE = "/inference.GRPCInferenceService/"
LIVE_TRUE = b"\x08\x01"  # ServerLiveResponse{live: true}


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory, name):
    key, pem = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pem")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
            "-out", pem, "-days", "1", "-subj", "/CN=" + name)
    return key, pem


def make_cert(directory, name, ca, server=False):
    """A certificate for `name` signed by `ca` (key, pem); a server one is
    valid for 127.0.0.1."""
    key = os.path.join(directory, name + ".key")
    csr = os.path.join(directory, name + ".csr")
    pem = os.path.join(directory, name + ".pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=" + name)
    args = ["x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0],
            "-CAcreateserial", "-out", pem, "-days", "1"]
    if server:
        ext = os.path.join(directory, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        args += ["-extfile", ext]
    openssl(*args)
    return key, pem


def read(path):
    with open(path, "rb") as f:
        return f.read()


def call(address, credentials, method="ServerLive", body=b""):
    """The raw response bytes of one call, or its status code's name."""
    channel = (grpc.secure_channel(address, credentials) if credentials
               else grpc.insecure_channel(address))
    with channel:
        rpc = channel.unary_unary(SERVICE + method)
        try:
            return rpc(body, timeout=5)
        except grpc.RpcError as e:
            return e.code().name


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.ca = make_ca(d, "ca")
        cls.server = make_cert(d, "server", cls.ca, server=True)
        cls.client = make_cert(d, "client", cls.ca)
        cls.other_ca = make_ca(d, "other-ca")
        cls.intruder = make_cert(d, "intruder", cls.other_ca)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def start(self, *flags):
        proc, address, _ = start_server(SERVER, f"--model={WEIGHTS}", *flags)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        return proc, address

    def trusting(self, ca, cert=None):
        if cert is None:
            return grpc.ssl_channel_credentials(read(ca[1]))
        return grpc.ssl_channel_credentials(read(ca[1]), read(cert[0]), read(cert[1]))

    def test_tls_serves_tls_clients_only(self):
        proc, address = self.start(f"--tls_cert_file={self.server[1]}",
                                   f"--tls_key_file={self.server[0]}")
        self.assertEqual(call(address, self.trusting(self.ca)), LIVE_TRUE)
        # Inference itself over TLS: a non-empty answer, not an error name.
        answer = call(address, self.trusting(self.ca), "ModelInfer", infer_request(3))
        self.assertIsInstance(answer, bytes)
        self.assertGreater(len(answer), 3 * 10 * 4)
        self.assertEqual(call(address, None), "UNAVAILABLE")
        # A client that does not trust the server's CA refuses the server.
        self.assertEqual(call(address, self.trusting(self.other_ca)), "UNAVAILABLE")

    def test_mutual_tls_requires_a_certificate_from_the_ca(self):
        proc, address = self.start(f"--tls_cert_file={self.server[1]}",
                                   f"--tls_key_file={self.server[0]}",
                                   f"--tls_client_ca_file={self.ca[1]}")
        self.assertEqual(call(address, self.trusting(self.ca, self.client)), LIVE_TRUE)
        self.assertEqual(call(address, self.trusting(self.ca)), "UNAVAILABLE")
        self.assertEqual(call(address, self.trusting(self.ca, self.intruder)), "UNAVAILABLE")
        self.assertEqual(call(address, None), "UNAVAILABLE")

    def test_renewed_certificate_is_used_without_a_restart(self):
        d = tempfile.mkdtemp(dir=self.tmp.name)
        cert, key = os.path.join(d, "tls.pem"), os.path.join(d, "tls.key")
        shutil.copy(self.server[1], cert)
        shutil.copy(self.server[0], key)
        proc, address = self.start(f"--tls_cert_file={cert}", f"--tls_key_file={key}",
                                   "--tls_reload_interval_s=1")
        self.assertEqual(call(address, self.trusting(self.ca)), LIVE_TRUE)
        # The renewal comes from a new CA, so that which certificate the
        # server presents is visible to clients.
        new_ca = make_ca(d, "renewal-ca")
        renewed = make_cert(d, "renewed", new_ca, server=True)
        shutil.copy(renewed[0], key + ".new")
        shutil.copy(renewed[1], cert + ".new")
        os.replace(key + ".new", key)
        os.replace(cert + ".new", cert)
        give_up = time.monotonic() + 15
        while call(address, self.trusting(new_ca)) != LIVE_TRUE:
            self.assertLess(time.monotonic(), give_up, "renewed certificate never served")
            time.sleep(0.2)
        self.assertEqual(call(address, self.trusting(self.ca)), "UNAVAILABLE")
        self.assertIsNone(proc.poll())

    def test_bad_tls_flags_and_files_are_refused_at_start(self):
        def run(*flags):
            return subprocess.run([SERVER, f"--model={WEIGHTS}", "--grpc_port=0",
                                   "--metrics_port=-1", *flags],
                                  capture_output=True, text=True, timeout=60)
        r = run(f"--tls_cert_file={self.server[1]}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls_cert_file and --tls_key_file go together", r.stderr)
        r = run(f"--tls_client_ca_file={self.ca[1]}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls_client_ca_file needs --tls_cert_file", r.stderr)
        r = run("--tls_cert_file=/nonexistent.pem", f"--tls_key_file={self.server[0]}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--tls_cert_file: /nonexistent.pem: cannot open", r.stderr)
        # A key where the certificate belongs.
        r = run(f"--tls_cert_file={self.server[0]}", f"--tls_key_file={self.server[0]}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("holds no PEM CERTIFICATE", r.stderr)


class ClientTlsTest(unittest.TestCase):
    """rnn-client and rnn-loadgen over TLS and mutual TLS."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.ca = make_ca(d, "ca")
        cls.server = make_cert(d, "server", cls.ca, server=True)
        cls.client = make_cert(d, "client", cls.ca)
        cls.other_ca = make_ca(d, "other-ca")
        cls.intruder = make_cert(d, "intruder", cls.other_ca)
        cls.tls_proc, cls.tls_address, _ = start_server(
            SERVER, f"--model={WEIGHTS}", "--metrics_port=-1",
            f"--tls_cert_file={cls.server[1]}", f"--tls_key_file={cls.server[0]}")
        cls.mtls_proc, cls.mtls_address, _ = start_server(
            SERVER, f"--model={WEIGHTS}", "--metrics_port=-1",
            f"--tls_cert_file={cls.server[1]}", f"--tls_key_file={cls.server[0]}",
            f"--tls_client_ca_file={cls.ca[1]}")

    @classmethod
    def tearDownClass(cls):
        for proc in (cls.tls_proc, cls.mtls_proc):
            proc.terminate()
            proc.communicate(timeout=30)
        cls.tmp.cleanup()

    def rnn_client(self, target, *args):
        return subprocess.run([CLIENT, f"--target={target}", "--deadline_ms=5000", *args],
                              capture_output=True, text=True, timeout=60)

    def loadgen(self, target, *args):
        return subprocess.run([LOADGEN, f"--target={target}", "--duration=0.5",
                               "--warmup=0", "--concurrency=4", *args],
                              capture_output=True, text=True, timeout=60)

    def with_cert(self, cert):
        return [f"--tls_cert_file={cert[1]}", f"--tls_key_file={cert[0]}"]

    def assert_infers(self, r, rows):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["results"]), rows)

    def assert_refused(self, r):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("UNAVAILABLE", r.stderr)

    def test_rnn_client_over_tls(self):
        ca = f"--tls_ca_file={self.ca[1]}"
        self.assert_infers(self.rnn_client(self.tls_address, ca, "infer", "--random=3", "--json"), 3)
        self.assertEqual(self.rnn_client(self.tls_address, ca, "health").returncode, 0)
        # Several targets (here the one server twice) are checked against
        # the first target's host, and retries work over TLS.
        both = f"{self.tls_address},{self.tls_address}"
        self.assert_infers(self.rnn_client(both, ca, "--max_attempts=3", "infer", "--random=2",
                                       "--json"), 2)
        # A name the certificate does not hold.
        r = self.rnn_client(self.tls_address, ca, "--tls_server_name=other.example", "health")
        self.assert_refused(r)
        self.assertIn("other.example", r.stderr)
        # Plaintext to a TLS server, a CA that did not sign it, and the
        # system's roots (which do not hold the throwaway CA).
        self.assert_refused(self.rnn_client(self.tls_address, "health"))
        r = self.rnn_client(self.tls_address, f"--tls_ca_file={self.other_ca[1]}", "health")
        self.assert_refused(r)
        self.assertIn("certificate verify failed", r.stderr)
        self.assert_refused(self.rnn_client(self.tls_address, "--tls", "health"))

    def test_rnn_client_over_mutual_tls(self):
        ca = f"--tls_ca_file={self.ca[1]}"
        self.assert_infers(self.rnn_client(self.mtls_address, ca, *self.with_cert(self.client),
                                       "infer", "--random=2", "--json"), 2)
        self.assert_refused(self.rnn_client(self.mtls_address, ca, "health"))
        self.assert_refused(self.rnn_client(self.mtls_address, ca, *self.with_cert(self.intruder),
                                        "health"))
        self.assert_refused(self.rnn_client(self.mtls_address, "health"))

    def test_rnn_client_refuses_bad_tls_flags_and_files(self):
        target = self.mtls_address
        r = self.rnn_client(target, f"--tls_cert_file={self.client[1]}", "health")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls_cert_file and --tls_key_file go together", r.stderr)
        r = self.rnn_client(target, "--tls_server_name=x", "health")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls_server_name needs TLS", r.stderr)
        for flags, message in [
                (["--tls_ca_file=/nonexistent.pem"],
                 "tls_ca_file /nonexistent.pem: cannot open: No such file or directory"),
                ([f"--tls_ca_file={self.tmp.name}"], "cannot read: Is a directory"),
                # A key where a certificate belongs, and the other way round.
                ([f"--tls_ca_file={self.ca[0]}"], "holds no PEM CERTIFICATE"),
                ([f"--tls_cert_file={self.client[0]}", f"--tls_key_file={self.client[0]}"],
                 "holds no PEM CERTIFICATE"),
                ([f"--tls_cert_file={self.client[1]}", f"--tls_key_file={self.client[1]}"],
                 "holds no PEM PRIVATE KEY")]:
            r = self.rnn_client(target, *flags, "health")
            self.assertEqual(r.returncode, 1, (flags, r.stderr))
            self.assertIn(message, r.stderr)
            self.assertIn("INVALID_ARGUMENT", r.stderr)

    def test_rnn_loadgen_over_mutual_tls(self):
        report = os.path.join(self.tmp.name, "loadgen.json")
        flags = [f"--tls_ca_file={self.ca[1]}", *self.with_cert(self.client),
                 f"--weights={WEIGHTS}", f"--json={report}"]
        for transport in (["--transport=grpc"], ["--streaming"]):
            r = self.loadgen(self.mtls_address, *transport, *flags)
            self.assertEqual(r.returncode, 0, r.stderr)
            step = json.loads(read(report))["results"][0]
            self.assertGreater(step["ok"], 0)
            self.assertEqual(step["requests"], step["ok"])
            self.assertEqual(step["wrong"], 0)
        # No client certificate, or one from another CA: the run cannot start.
        for cert in ([], self.with_cert(self.intruder)):
            r = self.loadgen(self.mtls_address, "--transport=grpc",
                             f"--tls_ca_file={self.ca[1]}", *cert)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"cannot reach {self.mtls_address}: UNAVAILABLE", r.stderr)

    def test_rnn_loadgen_over_tls(self):
        r = self.loadgen(self.tls_address, "--streaming", f"--tls_ca_file={self.ca[1]}",
                         f"--weights={WEIGHTS}")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.loadgen(self.tls_address, "--transport=grpc")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot reach", r.stderr)
        r = self.loadgen(self.tls_address, "--transport=grpc",
                         f"--tls_ca_file={self.other_ca[1]}")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("certificate verify failed", r.stderr)

    def test_rnn_loadgen_refuses_bad_tls_flags_and_files(self):
        ca = f"--tls_ca_file={self.ca[1]}"
        # The default h2 transport speaks plaintext only.
        r = self.loadgen(self.tls_address, ca)
        self.assertEqual(r.returncode, 2)
        self.assertIn("TLS needs --transport=grpc or --streaming", r.stderr)
        r = self.loadgen(self.mtls_address, "--transport=grpc", f"--tls_key_file={self.client[0]}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls_cert_file and --tls_key_file go together", r.stderr)
        r = self.loadgen(self.tls_address, "--transport=grpc", "--tls_ca_file=/nonexistent.pem")
        self.assertEqual(r.returncode, 1)
        self.assertIn("tls_ca_file /nonexistent.pem: cannot open", r.stderr)
        r = self.loadgen(self.tls_address, "--streaming", f"--tls_ca_file={self.ca[0]}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("holds no PEM CERTIFICATE", r.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
