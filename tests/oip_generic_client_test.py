"""A generic Open Inference Protocol client against the real rnn-server.

It knows only what any generic client knows: the server's address and the
name of the model. Everything else comes from the server itself, the way
grpcurl works: the service list and the message definitions through gRPC
server reflection, the input's name and shape through ModelMetadata. It then
sends a batch and checks the probabilities against a numpy float64 forward
pass of the weights file (independent of the C++ code), checks
grpc.health.v1 with hand-encoded messages, calls Triton's extensions the
same way (ModelConfig, ModelStatistics, ServerMetadata's extension list and
a ModelStreamInfer round trip, its streaming shape also learnt from
reflection), and finally sends SIGTERM and expects a clean exit.

Usage (ctest runs it):
    /usr/bin/python3 tests/oip_generic_client_test.py BUILD/server/rnn-server model/rnn.safetensors
"""

import os
import signal
import sys
import tempfile
import unittest

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model"))
from safetensors_io import read_safetensors  # noqa: E402

sys.path.insert(0, HERE)
from testlib import numpy_forward, start_server  # noqa: E402

SERVER, WEIGHTS = sys.argv[1], sys.argv[2]
SERVICE = "inference.GRPCInferenceService"


def reflection_stubs(tmp):
    """Compiles the reflection protocol (generic infrastructure, like grpcurl's)."""
    rc = protoc.main(["protoc", f"-I{HERE}", f"--python_out={tmp}",
                      f"--grpc_python_out={tmp}",
                      os.path.join(HERE, "reflection_v1alpha.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, tmp)
    import reflection_v1alpha_pb2 as pb  # noqa: E402
    import reflection_v1alpha_pb2_grpc as pb_grpc  # noqa: E402
    return pb, pb_grpc


class GenericClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, address, _ = start_server(SERVER, f"--model={WEIGHTS}")
        cls.port = int(address.rsplit(":", 1)[1])
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.port}")
        grpc.channel_ready_future(cls.channel).result(timeout=10)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pb, cls.pb_grpc = reflection_stubs(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        if cls.proc.poll() is None:
            cls.proc.kill()
        cls.tmp.cleanup()

    def reflect(self, **request):
        stub = self.pb_grpc.ServerReflectionStub(self.channel)
        responses = stub.ServerReflectionInfo(
            iter([self.pb.ServerReflectionRequest(**request)]), timeout=10)
        return next(iter(responses))

    def messages(self):
        """The inference API's message classes, built from reflection alone."""
        response = self.reflect(file_containing_symbol=SERVICE)
        self.assertFalse(response.HasField("error_response"), response.error_response)
        files = {}
        for raw in response.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
        # The service's file imports others (the model configuration's);
        # reflection sends them all, in no promised order: add each file
        # after the files it depends on.
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name in added:
                return
            self.assertIn(name, files, "reflection left out a dependency")
            for dependency in files[name].dependency:
                add(dependency)
            pool.Add(files[name])
            added.add(name)

        for name in files:
            add(name)
        service = pool.FindServiceByName(SERVICE)
        classes = {}
        for method in service.methods:
            classes[method.name] = (
                message_factory.MessageFactory(pool).GetPrototype(method.input_type),
                message_factory.MessageFactory(pool).GetPrototype(method.output_type))
        return classes

    def method_protos(self):
        """The service's methods as reflection describes them (with their
        streaming flags), by name."""
        response = self.reflect(file_containing_symbol=SERVICE)
        package, name = SERVICE.rsplit(".", 1)
        for raw in response.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            for service in fd.service:
                if fd.package == package and service.name == name:
                    return {m.name: m for m in service.method}
        self.fail(f"reflection does not describe {SERVICE}")

    def call(self, classes, method, request):
        req_cls, resp_cls = classes[method]
        rpc = self.channel.unary_unary(f"/{SERVICE}/{method}",
                                       request_serializer=req_cls.SerializeToString,
                                       response_deserializer=resp_cls.FromString)
        return rpc(request, timeout=10)

    def test_1_reflection_lists_the_services(self):
        names = {s.name for s in self.reflect(list_services="*")
                 .list_services_response.service}
        self.assertIn(SERVICE, names)
        self.assertIn("grpc.health.v1.Health", names)
        self.assertIn("grpc.reflection.v1alpha.ServerReflection", names)

    def test_2_health_is_serving(self):
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check",
                                         request_serializer=lambda b: b,
                                         response_deserializer=lambda b: b)
        for service in (b"", SERVICE.encode()):
            request = b"\x0a" + bytes([len(service)]) + service if service else b""
            # HealthCheckResponse{status = SERVING (1)} encodes as 08 01.
            self.assertEqual(check(request, timeout=10), b"\x08\x01")

    def test_3_generic_inference_matches_numpy(self):
        classes = self.messages()
        req_cls = classes["ServerReady"][0]
        self.assertTrue(self.call(classes, "ServerReady", req_cls()).ready)
        meta = self.call(classes, "ModelMetadata", classes["ModelMetadata"][0](name="rnn"))
        self.assertEqual(len(meta.inputs), 1)
        (inp,), (out,) = meta.inputs, meta.outputs
        self.assertEqual(inp.datatype, "FP32")
        _, t, c = inp.shape
        n = 5
        x = np.random.default_rng(3).uniform(-1, 1, (n, t, c)).astype("<f4")
        request = classes["ModelInfer"][0](model_name=meta.name, id="generic")
        tensor = request.inputs.add(name=inp.name, datatype="FP32")
        tensor.shape.extend([n, t, c])
        request.raw_input_contents.append(x.tobytes())
        response = self.call(classes, "ModelInfer", request)
        self.assertEqual(response.id, "generic")
        names = [o.name for o in response.outputs]
        self.assertEqual(names, [out.name])
        probs = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(
            list(response.outputs[0].shape))
        weights, _ = read_safetensors(WEIGHTS)
        expected = numpy_forward(weights, x.astype(np.float64))
        self.assertEqual(probs.shape, expected.shape)
        self.assertLess(np.abs(probs - expected).max(), 1e-5)

    def test_4_bad_input_gets_invalid_argument(self):
        classes = self.messages()
        request = classes["ModelInfer"][0](model_name="rnn")
        tensor = request.inputs.add(name="sequence", datatype="FP32")
        tensor.shape.extend([1, 20, 100])
        request.raw_input_contents.append(b"\0" * 12)
        with self.assertRaises(grpc.RpcError) as err:
            self.call(classes, "ModelInfer", request)
        self.assertEqual(err.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("raw_input_contents[0] has 12 bytes", err.exception.details())

    def test_5_model_config_and_extensions(self):
        classes = self.messages()
        server = self.call(classes, "ServerMetadata", classes["ServerMetadata"][0]())
        self.assertEqual(sorted(server.extensions), ["model_configuration", "statistics"])
        meta = self.call(classes, "ModelMetadata", classes["ModelMetadata"][0](name="rnn"))
        config = self.call(classes, "ModelConfig",
                           classes["ModelConfig"][0](name="rnn")).config
        self.assertEqual(config.name, meta.name)
        self.assertEqual(config.platform, meta.platform)
        self.assertEqual(config.max_batch_size, 64)  # rnn-server's default.
        (inp,), (out,) = config.input, config.output
        self.assertEqual(inp.name, meta.inputs[0].name)
        # Triton's dims leave out the batch dimension that metadata shows as -1.
        self.assertEqual(list(inp.dims), list(meta.inputs[0].shape)[1:])
        self.assertEqual(out.name, meta.outputs[0].name)
        self.assertEqual(list(out.dims), list(meta.outputs[0].shape)[1:])
        fp32 = type(config).DESCRIPTOR.fields_by_name["input"].message_type \
            .fields_by_name["data_type"].enum_type.values_by_name["TYPE_FP32"].number
        self.assertEqual(inp.data_type, fp32)
        self.assertEqual(out.data_type, fp32)
        self.assertFalse(inp.is_shape_tensor)
        self.assertTrue(config.HasField("dynamic_batching"))
        self.assertFalse(config.HasField("sequence_batching"))
        self.assertFalse(config.model_transaction_policy.decoupled)
        with self.assertRaises(grpc.RpcError) as err:
            self.call(classes, "ModelConfig", classes["ModelConfig"][0](name="gru"))
        self.assertEqual(err.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_6_model_statistics_count_an_inference(self):
        classes = self.messages()
        stats_request = classes["ModelStatistics"][0](name="rnn")

        def stats():
            (s,) = self.call(classes, "ModelStatistics", stats_request).model_stats
            self.assertEqual((s.name, s.version), ("rnn", "1"))
            return s

        before = stats()
        n = 3
        x = np.random.default_rng(6).uniform(-1, 1, (n, 20, 100)).astype("<f4")
        request = classes["ModelInfer"][0](model_name="rnn")
        tensor = request.inputs.add(name="sequence", datatype="FP32")
        tensor.shape.extend([n, 20, 100])
        request.raw_input_contents.append(x.tobytes())
        self.call(classes, "ModelInfer", request)
        after = stats()
        self.assertEqual(after.inference_count - before.inference_count, n)
        self.assertEqual(after.inference_stats.success.count
                         - before.inference_stats.success.count, 1)
        self.assertEqual(after.inference_stats.fail.count,
                         before.inference_stats.fail.count)
        self.assertGreaterEqual(after.execution_count - before.execution_count, 1)
        self.assertGreater(after.inference_stats.success.ns,
                           before.inference_stats.success.ns)
        self.assertGreaterEqual(after.last_inference, before.last_inference)
        self.assertGreater(after.last_inference, 0)

    def test_7_stream_round_trip(self):
        classes = self.messages()
        method = self.method_protos()["ModelStreamInfer"]
        self.assertTrue(method.client_streaming and method.server_streaming)
        req_cls, resp_cls = classes["ModelStreamInfer"]
        rpc = self.channel.stream_stream(f"/{SERVICE}/ModelStreamInfer",
                                         request_serializer=req_cls.SerializeToString,
                                         response_deserializer=resp_cls.FromString)
        n = 2
        x = np.random.default_rng(7).uniform(-1, 1, (n, 20, 100)).astype("<f4")
        good = req_cls(model_name="rnn", id="stream-good")
        tensor = good.inputs.add(name="sequence", datatype="FP32")
        tensor.shape.extend([n, 20, 100])
        good.raw_input_contents.append(x.tobytes())
        bad = req_cls(model_name="rnn", id="stream-bad")
        tensor = bad.inputs.add(name="sequence", datatype="FP32")
        tensor.shape.extend([1, 20, 100])
        bad.raw_input_contents.append(b"\0" * 12)
        answers = {r.infer_response.id: r for r in rpc(iter([bad, good]), timeout=10)}
        self.assertEqual(sorted(answers), ["stream-bad", "stream-good"])
        ok = answers["stream-good"]
        self.assertEqual(ok.error_message, "")
        probs = np.frombuffer(ok.infer_response.raw_output_contents[0], "<f4").reshape(
            list(ok.infer_response.outputs[0].shape))
        weights, _ = read_safetensors(WEIGHTS)
        expected = numpy_forward(weights, x.astype(np.float64))
        self.assertEqual(probs.shape, expected.shape)
        self.assertLess(np.abs(probs - expected).max(), 1e-5)
        err = answers["stream-bad"]
        self.assertIn("raw_input_contents[0] has 12 bytes", err.error_message)
        self.assertEqual(err.infer_response.parameters["error_code"].string_param,
                         "INVALID_ARGUMENT")
        self.assertEqual(err.infer_response.model_name, "rnn")

    def test_9_sigterm_drains_and_exits_cleanly(self):
        self.proc.send_signal(signal.SIGTERM)
        rest = self.proc.communicate(timeout=30)[0]
        self.assertEqual(self.proc.returncode, 0, rest)
        self.assertIn("draining", rest)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
