// LoadRunner: drives one step of a load test against one or more Open
// Inference Protocol servers and measures it.
//
// Closed loop: `concurrency` requests are always in flight; each answer
// sends the next request at once. Latency runs from each request's send.
// Open loop: requests are sent at the planned rate, constant or Poisson,
// whatever the answers do. Latency runs from each request's *intended*
// send time, so a server that stalls cannot hide the requests it delayed
// (no coordinated omission, as wrk2); when the sender cannot keep up (too
// many requests in flight, or no CPU), sends fall behind schedule and the
// result says by how much.
//
// Each thread owns a transport (a gRPC completion queue, its own HTTP/2
// connections and epoll loop, or its own ModelStreamInfer streams, whose
// answers gRPC's threads queue for it) and drives its share of the load from
// it alone; calls are spread round-robin over the targets and, within a
// target, over its HTTP/2 connections.
// Requests come pre-serialized from the RequestPool; answers are checked
// against it after they arrive. Per-thread counters and histograms are
// single-writer atomics, read without locks for the progress line and
// merged at window ends: no lock and no allocation per request in this
// code (gRPC itself allocates per call).
//
// Example:
//   PoolSpec spec;  // model "rnn", [1, 20, 100] per request
//   absl::StatusOr<std::unique_ptr<RequestPool>> pool = RequestPool::Create(
//       spec, std::vector<float>(64 * 20 * 100, 0.5f), /*labels=*/{});
//   if (!pool.ok()) return pool.status();
//   RunnerOptions options;
//   options.targets = {"localhost:8001"};
//   absl::StatusOr<std::unique_ptr<LoadRunner>> runner =
//       LoadRunner::Create(options, **pool);
//   if (!runner.ok()) return runner.status();
//   absl::Status connected = (*runner)->Connect(absl::Seconds(5));
//   if (!connected.ok()) return connected;
//   StepPlan plan;
//   plan.mode = LoadMode::kClosed;
//   plan.concurrency = 16;
//   absl::StatusOr<StepResult> result = (*runner)->RunStep(plan, {});
//   if (!result.ok()) return result.status();
//
// Thread-safety: RunStep calls must not overlap. The pool must outlive the
// runner.
#ifndef RNN_CLIENT_LOADGEN_LOAD_RUNNER_H_
#define RNN_CLIENT_LOADGEN_LOAD_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/channel_credentials.h"
#include "client/inference_client.h"
#include "client/loadgen/load_plan.h"
#include "client/loadgen/request_pool.h"
#include "client/loadgen/step_result.h"
#include "client/loadgen/transport.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"

namespace rnn::loadgen {

// How calls reach the wire (transport.h).
enum class TransportKind {
  kGrpc,    // gRPC's C++ library, a unary ModelInfer call per request.
  kH2,      // The gRPC protocol over nghttp2, as h2load.
  kStream,  // gRPC's C++ library, requests on ModelStreamInfer streams.
};

// "grpc", "h2" or "stream", as reports name them.
const char* TransportName(TransportKind kind);

struct RunnerOptions {
  // Default h2: it takes much less client CPU per call than gRPC's library
  // (measured in docs/benchmarks.md), so the generator takes less of the
  // machine from the server.
  TransportKind transport = TransportKind::kH2;
  // "host:port" each (or any gRPC target URI). Calls go round-robin.
  std::vector<std::string> targets;
  // HTTP/2 connections to each target, over all threads (at least one per
  // thread with the h2 and stream transports; the stream transport keeps
  // one ModelStreamInfer stream on each). Default 1: one connection carries
  // many streams, as gRPC clients usually do; h2load's -c is the same knob.
  int connections = 1;
  // Completion-queue threads. Default 1: on a 2-core machine one thread
  // drives tens of thousands of calls per second and leaves the other core
  // to the server; each thread adds a core's worth of sending.
  int threads = 1;
  // Deadline of each call; zero means none (perf_analyzer and h2load set
  // none). A call still unanswered 10 s after its step ends is cancelled.
  absl::Duration deadline = absl::ZeroDuration();
  // Open loop: most requests in flight over all threads; beyond it sends
  // wait (and fall behind schedule). Default 10000: far above what a healthy
  // server holds, low enough to bound memory when a server stalls.
  int max_inflight = 10000;
  int max_receive_message_bytes = 64 << 20;
  // TLS or mutual TLS (client/channel_credentials.h), with the grpc and
  // stream transports only: h2 speaks plaintext TCP. Default plaintext.
  TlsOptions tls;
};

struct StepPlan {
  LoadMode mode = LoadMode::kClosed;
  int concurrency = 1;  // Closed loop.
  double rate = 0;      // Open loop, requests per second.
  Arrivals arrivals = Arrivals::kConstant;
  uint64_t seed = 1;                             // Poisson gaps.
  absl::Duration warmup = absl::ZeroDuration();  // Load, not measured.
  absl::Duration window = absl::Seconds(5);      // One measurement window.
  // When > 0, a window ends after this many answers instead of after
  // `window`.
  int64_t window_requests = 0;
  // When > 0: windows repeat until the last three agree within this many
  // percent (IsStable), at most max_windows; the last three are reported.
  double stability_percent = 0;
  int max_windows = 10;
};

// The live state of a step, for a progress line.
struct Progress {
  bool measuring = false;  // False during warm-up.
  int window = 0;          // 1-based while measuring.
  double elapsed_s = 0;    // In the current phase (warm-up or window).
  int64_t requests = 0;    // Answers in the current phase.
  double throughput_rps = 0;
  double p50_us = 0, p99_us = 0;
  int64_t errors = 0, wrong = 0;
};

class LoadRunner {
 public:
  struct Hooks {
    // About twice a second, on the thread calling RunStep.
    std::function<void(const Progress&)> progress;
    // At each window boundary: 0 when measurement starts, k when window k
    // ends. On the thread calling RunStep; load continues meanwhile.
    std::function<void(int boundary)> window_boundary;
    // When set and it becomes true, the step ends at once: warm-up or the
    // current window is cut short and reported as measured so far.
    const std::atomic<bool>* interrupt = nullptr;
  };

  // InvalidArgument for no targets, counts below 1, TLS with the h2
  // transport, or unusable TLS files.
  static absl::StatusOr<std::unique_ptr<LoadRunner>> Create(
      const RunnerOptions& options, const RequestPool& pool);
  ~LoadRunner();

  // Waits until every connection is up; Unavailable naming the target that
  // is not after `timeout`.
  absl::Status Connect(absl::Duration timeout);

  // Runs one step: warm-up, then measurement windows; returns what the
  // reported windows measured. The load stops when it returns.
  absl::StatusOr<StepResult> RunStep(const StepPlan& plan, const Hooks& hooks);

 private:
  struct Counters;
  struct Snapshot;
  class Worker;

  LoadRunner(const RunnerOptions& options, const RequestPool& pool,
             std::shared_ptr<grpc::ChannelCredentials> credentials);
  Snapshot TakeSnapshot() const;

  const RunnerOptions options_;
  const RequestPool& pool_;
  // gRPC and stream transports: channels_[target * connections +
  // connection], and a stub (gRPC) or a client (stream) for each, shared by
  // the workers.
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  std::vector<std::unique_ptr<InferenceClient>> clients_;
  std::vector<std::unique_ptr<Worker>> workers_;  // The running step's.
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_LOAD_RUNNER_H_
