// StepResult: what one step of a load test measured, the data every report
// (terminal table, JSON, CSV, HTML) is written from.
//
// A step is one point of a sweep: a closed-loop concurrency or an open-loop
// request rate, measured over one or more back-to-back windows after a
// warm-up. Latencies are in microseconds; an open-loop request's latency runs
// from its *intended* send time (no coordinated omission).
#ifndef RNN_CLIENT_LOADGEN_STEP_RESULT_H_
#define RNN_CLIENT_LOADGEN_STEP_RESULT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "client/loadgen/latency_histogram.h"

namespace rnn::loadgen {

enum class LoadMode { kClosed, kOpen };

// "closed" or "open".
const char* LoadModeName(LoadMode mode);

// Percentiles and extremes of one latency distribution, microseconds.
struct LatencySummary {
  double mean_us = 0;
  double p50_us = 0, p90_us = 0, p95_us = 0, p99_us = 0, p999_us = 0;
  double max_us = 0;

  static LatencySummary Of(const LatencyHistogram& histogram);
};

// Counts for one target (server replica) of a step.
struct TargetCounts {
  int64_t requests = 0;  // Answered in the window, whatever the answer.
  int64_t ok = 0;        // Answered OK (right or wrong).
  int64_t errors = 0;    // Answered with a non-OK gRPC status.
  int64_t wrong = 0;     // Answered OK with a wrong answer.
};

// The server's own view of a step, from the differences of two /metrics
// scrapes (taken at the step's first window start and last window end).
struct ServerBreakdown {
  double queue_us = 0;      // Mean time a request waited in the queue.
  double compute_us = 0;    // Mean time one batch spent in the model.
  double request_us = 0;    // Mean time from a call's arrival to its answer.
  double batch_size = 0;    // Mean rows per executed batch.
  int64_t requests_ok = 0;  // rnn_requests_total{code="OK"} increase.
  int64_t sequences = 0;    // rnn_sequences_total increase.
};

// How an open-loop sender kept to its schedule.
struct ScheduleResult {
  double requested_rps = 0;  // The step's --rate.
  double sent_rps = 0;       // Requests actually sent per second.
  // How late sends were against their intended times, microseconds.
  LatencySummary behind_us;
  // False when the sender could not keep the rate: fewer than 99% of the
  // requests scheduled in the windows were sent in them.
  bool kept = true;
};

struct StepResult {
  LoadMode mode = LoadMode::kClosed;
  int concurrency = 0;  // Closed loop: requests in flight.
  double rate = 0;      // Open loop: requests per second asked for.
  int batch = 1;        // Sequences per request.

  double duration_s = 0;     // Measured time (sum of the windows reported).
  int windows = 1;           // Windows run; with --stability, up to the limit.
  bool stable = true;        // The last windows agreed (always true without
                             // --stability).
  bool interrupted = false;  // Cut short by SIGINT/SIGTERM.

  int64_t requests = 0;  // Answered in the measured windows.
  int64_t ok = 0;        // Answered OK (including wrong answers).
  int64_t wrong = 0;     // OK answers that failed verification.
  // Non-OK answers by gRPC status name ("UNAVAILABLE": 3). Empty when clean.
  std::map<std::string, int64_t> errors;
  // Label checks only: the fraction of rows whose top class matched.
  std::optional<double> accuracy;

  double throughput_rps = 0;   // OK answers per second.
  double sequences_per_s = 0;  // throughput_rps * batch.

  LatencyHistogram latency;                        // OK answers' latency.
  LatencySummary latency_us;                       // Summary of `latency`.
  std::optional<ScheduleResult> schedule;          // Open loop only.
  std::map<std::string, TargetCounts> per_target;  // By "host:port".
  std::optional<ServerBreakdown> server;           // With --metrics_url only.

  // The first few wrong answers, each naming its request id.
  std::vector<std::string> wrong_examples;

  int64_t error_count() const;
};

// What the whole run was, for the report headers.
struct RunInfo {
  std::vector<std::string> targets;
  std::string model, model_version;
  LoadMode mode = LoadMode::kClosed;
  // How calls went out: "h2", "grpc" (unary calls) or "stream"
  // (ModelStreamInfer streams).
  std::string transport;
  std::string arrivals;  // Open loop: "constant" or "poisson".
  int batch = 1;
  std::string inputs;      // "random (seed 1)" or "eval set <path>".
  std::string verify;      // "off", "weights <path> (1e-4)" or "labels".
  std::string started_at;  // ISO 8601, UTC.
  std::string command_line;
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_STEP_RESULT_H_
