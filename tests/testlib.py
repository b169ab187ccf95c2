"""Helpers shared by the Python tests and benchmarks (tests/*.py,
tests/bench/*.py, deploy/check-*.py): starting the real rnn-server on free
loopback ports, hand-encoded ModelInferRequest bytes, and the numpy float64
forward pass used as an oracle independent of the C++.
"""

import os
import re
import socket
import subprocess
import sys

import numpy as np


def start_server(binary, *flags):
    """Starts rnn-server on 127.0.0.1 with free ports; returns
    (process, grpc "host:port", metrics "host:port" or None). The process's
    stdout is left open for the caller to read what remains."""
    has_metrics = not any(f == "--metrics_port=-1" for f in flags)
    args = [binary, "--host=127.0.0.1", "--grpc_port=0"]
    if has_metrics and not any(f.startswith("--metrics_port") for f in flags):
        args.append("--metrics_port=0")
    proc = subprocess.Popen(args + list(flags), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    grpc_address = metrics_address = None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        m = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
        if m:
            grpc_address = m.group(1)
        m = re.search(r"metrics on http://(127\.0\.0\.1:\d+)/metrics", line)
        if m:
            metrics_address = m.group(1)
        if grpc_address and (metrics_address or not has_metrics):
            return proc, grpc_address, metrics_address
    raise RuntimeError("rnn-server did not start:\n" + "".join(seen))


def compile_stubs(proto_dir, tmp):
    """The project's proto (proto_dir) compiled for Python into `tmp`;
    returns the modules (pb, pb_grpc)."""
    from grpc_tools import protoc
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={tmp}",
                      f"--grpc_python_out={tmp}",
                      os.path.join(proto_dir, "model_config.proto"),
                      os.path.join(proto_dir, "grpc_predict_v2.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, tmp)
    import grpc_predict_v2_pb2 as pb
    import grpc_predict_v2_pb2_grpc as pb_grpc
    return pb, pb_grpc


def free_port():
    """A TCP port free on 127.0.0.1 now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# gRPC request bodies encoded by hand from the public protocol's field
# numbers, for tools that send raw bytes (h2load) and for malformed requests.

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, wire_type, payload):
    key = varint((number << 3) | wire_type)
    if wire_type == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def infer_request(rows, t=20, c=100, seed=1):
    """A serialized ModelInferRequest, encoded by hand from the public
    protocol's field numbers (model_name 1, inputs 5 {name 1, datatype 2,
    shape 3 packed}, raw_input_contents 7)."""
    x = np.random.default_rng(seed).uniform(-1, 1, (rows, t, c)).astype("<f4")
    shape = b"".join(varint(d) for d in (rows, t, c))
    tensor = field(1, 2, b"sequence") + field(2, 2, b"FP32") + field(3, 2, shape)
    return field(1, 2, b"rnn") + field(5, 2, tensor) + field(7, 2, x.tobytes())


def numpy_forward(weights, x):
    """Keras SimpleRNN(relu) + Dense(softmax) in float64. `weights` maps the
    Keras tensor names to arrays; `x` is [N, T, C]."""
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    h = np.zeros((x.shape[0], w["simple_rnn/bias"].shape[0]))
    for t in range(x.shape[1]):
        h = np.maximum(x[:, t, :] @ w["simple_rnn/kernel"]
                       + h @ w["simple_rnn/recurrent_kernel"] + w["simple_rnn/bias"], 0.0)
    logits = h @ w["dense/kernel"] + w["dense/bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
