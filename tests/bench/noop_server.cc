// noop-server: the ceiling for any server of this protocol on this machine.
// Benchmark-only (never installed, never shipped).
//
// Same gRPC (the callback API, as rnn-server), same protocol, the same
// request parse and response shape as rnn-server: it parses each
// ModelInferRequest, reads the batch size from the input's shape, and
// answers a fixed [N, 10] FP32 output without computing anything (and
// ModelMetadata, as rnn-server's, for clients that ask first). Anything
// rnn-server spends beyond this is the price of its batching, model and
// metrics; tests/bench/ceiling_bench.py measures the two side by side.
//
//   build/release/tests/bench/noop-server --host=127.0.0.1 --grpc_port=0
//
// Prints "listening on HOST:PORT" when serving, and on SIGTERM or SIGINT
// "stopped after N sequences in M batches" (M = calls), as rnn-server does,
// so the same scripts drive both. --metrics_port is accepted and ignored
// (there are no metrics).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc_predict_v2.grpc.pb.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on");
ABSL_FLAG(int, grpc_port, 8001, "gRPC port (0: pick a free port)");
ABSL_FLAG(int, metrics_port, -1, "Ignored (no metrics)");

namespace {

constexpr int kNumClasses = 10;

class NoopService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // rnn-server's metadata, so that clients which ask first (rnn-loadgen)
  // drive this server too.
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override {
    response->set_name(request->name());
    response->add_versions("1");
    response->set_platform("noop");
    inference::ModelMetadataResponse::TensorMetadata* input =
        response->add_inputs();
    input->set_name("input");
    input->set_datatype("FP32");
    for (int64_t d : {-1, 20, 100}) input->add_shape(d);
    inference::ModelMetadataResponse::TensorMetadata* output =
        response->add_outputs();
    output->set_name("probabilities");
    output->set_datatype("FP32");
    for (int64_t d : {-1, kNumClasses}) output->add_shape(d);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->inputs_size() != 1 || request->inputs(0).shape_size() < 1) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "expected one input with a shape"));
      return reactor;
    }
    const int64_t rows = request->inputs(0).shape(0);
    response->set_model_name(request->model_name());
    response->set_model_version("1");
    response->set_id(request->id());
    inference::ModelInferResponse::InferOutputTensor* output =
        response->add_outputs();
    output->set_name("probabilities");
    output->set_datatype("FP32");
    output->add_shape(rows);
    output->add_shape(kNumClasses);
    std::string* raw = response->add_raw_output_contents();
    raw->resize(static_cast<size_t>(rows) * kNumClasses * sizeof(float));
    float* probabilities = reinterpret_cast<float*>(raw->data());
    for (int64_t i = 0; i < rows * kNumClasses; ++i) {
      probabilities[i] = 1.0f / kNumClasses;
    }
    sequences_.fetch_add(rows, std::memory_order_relaxed);
    calls_.fetch_add(1, std::memory_order_relaxed);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  int64_t sequences() const { return sequences_.load(); }
  int64_t calls() const { return calls_.load(); }

 private:
  std::atomic<int64_t> sequences_{0};
  std::atomic<int64_t> calls_{0};
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  NoopService service;
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string host = absl::GetFlag(FLAGS_host);
  builder.AddListeningPort(
      absl::StrCat(host, ":", absl::GetFlag(FLAGS_grpc_port)),
      grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "noop-server: cannot listen on %s:%d\n", host.c_str(),
                 absl::GetFlag(FLAGS_grpc_port));
    return 1;
  }
  std::printf("listening on %s:%d (no-op)\n", host.c_str(), port);
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  server->Shutdown();
  std::printf("noop-server: stopped after %lld sequences in %lld batches\n",
              static_cast<long long>(service.sequences()),
              static_cast<long long>(service.calls()));
  return 0;
}
