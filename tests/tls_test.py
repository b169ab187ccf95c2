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

Usage (ctest runs it):
    /usr/bin/python3 tests/tls_test.py BUILD/server/rnn-server model/rnn.safetensors
"""

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

SERVER, WEIGHTS = sys.argv[1], sys.argv[2]
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


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
