// rnn-server: serves the RNN over gRPC (Open Inference Protocol), with
// grpc.health.v1 and server reflection.
//
//   rnn-server                                     # bundled model on :8001
//   rnn-server --model=my.safetensors --grpc_port=9001 --instances=2
//   rnn-server --help
//
// SIGINT or SIGTERM drains: health turns NOT_SERVING, calls in flight finish
// (up to --shutdown_timeout_s), every accepted request is answered, then the
// process exits 0.
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model/bundled.h"
#include "model/rnn_model.h"
#include "server/rnn_server.h"

ABSL_FLAG(std::string, host, "0.0.0.0",
          "Address to listen on (0.0.0.0: every IPv4 interface; [::] for "
          "IPv6)");
ABSL_FLAG(int, grpc_port, 8001, "gRPC port (0: pick a free port)");
ABSL_FLAG(int, metrics_port, 8002,
          "Port of the Prometheus endpoint /metrics, on --host (0: pick a "
          "free port; -1: no metrics)");
ABSL_FLAG(std::string, model, "",
          "Safetensors weights file (default: the bundled rnn.safetensors)");
ABSL_FLAG(std::string, model_name, "rnn", "Name the model is served under");
ABSL_FLAG(int, sequence_length, 0,
          "Time steps per sequence; 0 takes it from the weights file's "
          "metadata, or 20 when it has none");
ABSL_FLAG(int, model_threads, 1,
          "OpenMP threads per model instance (threads); 1 is fastest for "
          "the batch sizes served here on few cores");
ABSL_FLAG(int, instances, 1,
          "Model instances computing batches in parallel (instances); each "
          "is one worker thread");
ABSL_FLAG(int, max_batch_size, 64, "Most sequences per batch (sequences)");
ABSL_FLAG(int64_t, max_queue_delay_us, 0,
          "How long the oldest queued request may wait for a batch to fill "
          "(microseconds); 0 takes whatever is queued now");
ABSL_FLAG(int64_t, max_queue_size, 4096,
          "Most sequences waiting at once (sequences); beyond it requests "
          "are refused with UNAVAILABLE");
ABSL_FLAG(int, max_receive_message_bytes, 16 << 20,
          "Largest request accepted (bytes); larger ones get "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_connection_age_s, 0,
          "Send GOAWAY to client connections older than this (seconds), so "
          "clients reconnect and rebalance over replicas; 0: never");
ABSL_FLAG(int, shutdown_timeout_s, 10,
          "On SIGTERM/SIGINT, how long calls in flight may take to finish "
          "(seconds)");

namespace {

absl::StatusOr<rnn::ServerOptions> OptionsFromFlags() {
  rnn::ServerOptions o;
  o.host = absl::GetFlag(FLAGS_host);
  o.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  o.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o.model_path = absl::GetFlag(FLAGS_model);
  if (o.model_path.empty()) {
    o.model_path = rnn::FindBundledFile(rnn::kBundledModelFile);
  }
  o.model_name = absl::GetFlag(FLAGS_model_name);
  o.sequence_length = absl::GetFlag(FLAGS_sequence_length);
  o.model_threads = absl::GetFlag(FLAGS_model_threads);
  o.instances = absl::GetFlag(FLAGS_instances);
  o.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  const int max_age_s = absl::GetFlag(FLAGS_max_connection_age_s);
  if (max_age_s < 0 || max_age_s > 24 * 3600) {
    return absl::InvalidArgumentError(
        "--max_connection_age_s must be in [0, 86400]");
  }
  o.max_connection_age = absl::Seconds(max_age_s);
  const int max_batch = absl::GetFlag(FLAGS_max_batch_size);
  const int64_t delay_us = absl::GetFlag(FLAGS_max_queue_delay_us);
  const int64_t queue = absl::GetFlag(FLAGS_max_queue_size);
  if (o.grpc_port < 0 || o.grpc_port > 65535) {
    return absl::InvalidArgumentError("--grpc_port must be in [0, 65535]");
  }
  if (o.metrics_port < -1 || o.metrics_port > 65535) {
    return absl::InvalidArgumentError("--metrics_port must be in [-1, 65535]");
  }
  if (max_batch < 1 || delay_us < 0 || queue < 1 || o.model_threads < 1 ||
      o.instances < 1 || o.max_receive_message_bytes < 1 ||
      o.sequence_length < 0) {
    return absl::InvalidArgumentError(
        "--max_batch_size, --max_queue_size, --model_threads, --instances "
        "and --max_receive_message_bytes must be >= 1; "
        "--max_queue_delay_us and --sequence_length >= 0");
  }
  o.batching.max_batch_size = static_cast<size_t>(max_batch);
  o.batching.max_queue_delay = absl::Microseconds(delay_us);
  o.batching.max_queue_size = static_cast<size_t>(queue);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves the Keras SimpleRNN classifier over gRPC (Open Inference "
      "Protocol / KServe v2).\nUsage: rnn-server [--model=PATH] "
      "[--grpc_port=8001] [flags]");
  absl::ParseCommandLine(argc, argv);
  // Debian builds Abseil with its debug-mode deadlock detector on; gRPC
  // creates and destroys an absl::Mutex per call, and the detector's graph
  // bookkeeping took ~2% of the server's CPU under load.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::StatusOr<rnn::ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "rnn-server: %s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }

  // Signals are taken by one thread with sigwait, so they must be blocked
  // before any other thread starts and inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<rnn::RnnServer>> server =
      rnn::RnnServer::Start(*options);
  if (!server.ok()) {
    std::fprintf(stderr, "rnn-server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  const rnn::ModelSignature& sig = (*server)->signature();
  std::printf(
      "rnn-server %s: model '%s' version %s from %s (T=%lld C=%lld O=%lld), "
      "%d instance(s), max batch %zu, queue delay %lld us, queue %zu\n"
      "listening on %s:%d (gRPC, health, reflection)\n",
      PROJECT_VERSION, sig.name.c_str(), sig.version.c_str(),
      options->model_path.c_str(), static_cast<long long>(sig.sequence_length),
      static_cast<long long>(sig.input_size),
      static_cast<long long>(sig.num_classes), options->instances,
      options->batching.max_batch_size,
      static_cast<long long>(absl::GetFlag(FLAGS_max_queue_delay_us)),
      options->batching.max_queue_size, options->host.c_str(),
      (*server)->grpc_port());
  if ((*server)->metrics_port() >= 0) {
    std::printf("metrics on http://%s:%d/metrics\n", options->host.c_str(),
                (*server)->metrics_port());
  }
  std::fflush(stdout);

  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    std::printf("rnn-server: %s, draining\n", strsignal(signal));
    std::fflush(stdout);
    (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_timeout_s)));
  });
  (*server)->Wait();
  waiter.join();
  const rnn::Batcher::Stats stats = (*server)->batcher().stats();
  std::printf("rnn-server: stopped after %lld sequences in %lld batches\n",
              static_cast<long long>(stats.rows),
              static_cast<long long>(stats.batches));
  return 0;
}
