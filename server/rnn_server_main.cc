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
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model/bundled.h"
#include "server/memory_release.h"
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
ABSL_FLAG(rnn::RnnModel::Options::Precision, precision,
          rnn::RnnModel::Options::Precision::kFp32,
          "The model's arithmetic: fp32, or bf16 (opt-in, on CPUs with "
          "AVX512-BF16: about 1.8x the throughput at batch 64, answers "
          "differ from fp32 by up to ~0.05; docs/benchmarks.md)");
ABSL_FLAG(int, instances, 1,
          "Model instances computing batches in parallel (instances); each "
          "is one worker thread");
ABSL_FLAG(int, max_batch_size, 64, "Most sequences per batch (sequences)");
ABSL_FLAG(bool, inline_when_idle, true,
          "When nothing is queued or computing, compute a request on the "
          "gRPC thread that received it, then the batches queued behind it "
          "(up to 16), instead of waking a worker; false hands every "
          "request to the instances' worker threads");
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
ABSL_FLAG(int, max_inflight_per_stream, 128,
          "Requests a ModelStreamInfer stream may hold unanswered; beyond it "
          "the server stops reading that stream until answers are written");
ABSL_FLAG(int, max_concurrent_streams, 100,
          "Calls a client connection may have open at once "
          "(HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)");
ABSL_FLAG(int, transport_memory_mb, 128,
          "Memory gRPC's transport may use for connections and their "
          "buffers (MiB); under pressure it refuses new streams");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain: serve gRPC over TLS (with --tls_key_file)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle: also require client certificates signed by one of "
          "these CAs (mutual TLS)");
ABSL_FLAG(int, tls_reload_interval_s, 60,
          "Re-read the TLS files this often (seconds), so renewed "
          "certificates apply to new connections without a restart");
ABSL_FLAG(std::string, metrics_host, "",
          "Address of the metrics endpoint; empty: the same as --host");
ABSL_FLAG(int, shutdown_timeout_s, 10,
          "On SIGTERM/SIGINT, how long calls in flight may take to finish "
          "(seconds)");

#ifdef RNN_WITH_JEMALLOC
// rnn-server is linked with jemalloc, which replaces malloc for the whole
// process: under load its per-thread caches spent ~15% less CPU per request
// than glibc's malloc, whose arena locks the gRPC and batch threads
// contended for (docs/benchmarks.md). jemalloc reads these settings at its
// start (MALLOC_CONF in the environment adds to them): a background thread
// hands freed pages back to the system after about a second, so a burst of
// large requests does not leave the process at its peak.
extern "C" {
const char* malloc_conf =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
#endif

namespace {

// The flags as options, unchecked: each option is checked by its owner
// (ServerOptions::Validate), which names the flag in its message.
rnn::ServerOptions OptionsFromFlags() {
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
  o.precision = absl::GetFlag(FLAGS_precision);
  o.instances = absl::GetFlag(FLAGS_instances);
  o.batching.queue.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  o.batching.run_on_caller_when_idle = absl::GetFlag(FLAGS_inline_when_idle);
  o.batching.queue.max_queue_delay =
      absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  o.batching.queue.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  o.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  o.max_connection_age =
      absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_s));
  o.max_inflight_per_stream = absl::GetFlag(FLAGS_max_inflight_per_stream);
  o.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  o.transport_memory_bytes = int64_t{absl::GetFlag(FLAGS_transport_memory_mb)}
                             << 20;
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  o.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  o.tls_reload_interval =
      absl::Seconds(absl::GetFlag(FLAGS_tls_reload_interval_s));
  o.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves the Keras SimpleRNN classifier over gRPC (Open Inference "
      "Protocol / KServe v2).\nUsage: rnn-server [--model=PATH] "
      "[--grpc_port=8001] [flags]");
  absl::ParseCommandLine(argc, argv);
#ifndef RNN_WITH_JEMALLOC
  rnn::ConfigureAllocator();  // glibc's malloc (memory_release.h).
#endif
  // Each client connection takes a descriptor; the soft limit (often 1024)
  // is a default, not a decision. Up to the hard limit is ours to use.
  rlimit files = {};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 &&
      files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  // Debian builds Abseil with its debug-mode deadlock detector on; gRPC
  // creates and destroys an absl::Mutex per call, and the detector's graph
  // bookkeeping took ~2% of the server's CPU under load.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const rnn::ServerOptions options = OptionsFromFlags();
  const int shutdown_timeout_s = absl::GetFlag(FLAGS_shutdown_timeout_s);
  absl::Status valid = options.Validate();
  // The one option rnn-server owns rather than RnnServer.
  if (valid.ok() && shutdown_timeout_s < 0) {
    valid = absl::InvalidArgumentError(absl::StrCat(
        "--shutdown_timeout_s must be >= 0; was ", shutdown_timeout_s));
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "rnn-server: %s\n",
                 std::string(valid.message()).c_str());
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
      rnn::RnnServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "rnn-server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  const rnn::ModelSignature& sig = (*server)->signature();
  const rnn::BatchQueue::Options& batching = options.batching.queue;
  std::printf(
      "rnn-server %s: model '%s' version %s from %s (T=%lld C=%lld O=%lld), "
      "%s, %d instance(s), max batch %d, queue delay %lld us, queue %lld\n"
      "listening on %s:%d (gRPC%s, health, reflection)\n",
      PROJECT_VERSION, sig.name.c_str(), sig.version.c_str(),
      options.model_path.c_str(), static_cast<long long>(sig.sequence_length),
      static_cast<long long>(sig.input_size),
      static_cast<long long>(sig.num_classes),
      AbslUnparseFlag(options.precision).c_str(), options.instances,
      batching.max_batch_size,
      static_cast<long long>(
          absl::ToInt64Microseconds(batching.max_queue_delay)),
      static_cast<long long>(batching.max_queue_size), options.host.c_str(),
      (*server)->grpc_port(),
      options.tls_cert_file.empty()        ? ""
      : options.tls_client_ca_file.empty() ? " over TLS"
                                           : " over mutual TLS");
  if ((*server)->metrics_port() >= 0) {
    std::printf(
        "metrics on http://%s:%d/metrics\n",
        (options.metrics_host.empty() ? options.host : options.metrics_host)
            .c_str(),
        (*server)->metrics_port());
  }
  std::fflush(stdout);

#ifndef RNN_WITH_JEMALLOC
  // Returns a burst's memory to the system (memory_release.h); jemalloc's
  // background thread does that (malloc_conf above).
  rnn::MemoryReleaser releaser(absl::Seconds(5), size_t{16} << 20);
#endif
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    std::printf("rnn-server: %s, draining\n", strsignal(signal));
    std::fflush(stdout);
    (*server)->Shutdown(absl::Seconds(shutdown_timeout_s));
  });
  (*server)->Wait();
  waiter.join();
  const rnn::Batcher::Stats stats = (*server)->batcher().stats();
  std::printf("rnn-server: stopped after %lld sequences in %lld batches\n",
              static_cast<long long>(stats.rows),
              static_cast<long long>(stats.batches));
  return 0;
}
