// Metrics: the server's Prometheus metrics, recorded without locks.
//
// Families (names and labels are an interface: dashboards and alerts use
// them). Every rnn_* family has the labels `model` and `version` (the model's,
// from Options) unless noted; durations are in seconds.
//   rnn_requests_total{code}        counter   Finished requests (unary
//                                             ModelInfer calls and requests on
//                                             ModelStreamInfer streams alike)
//                                             by gRPC status name ("OK",
//                                             "UNAVAILABLE", ...); all 17
//                                             canonical codes exist from
//                                             start-up, at 0.
//   rnn_request_duration_seconds    histogram A request's arrival to its
//                                             response (see RequestFinished).
//   rnn_queue_duration_seconds      histogram A request's wait in the batcher's
//                                             queue, one per batch slice.
//   rnn_compute_duration_seconds    histogram One batch: gathering its input,
//                                             the model, scattering its output.
//   rnn_batch_size                  histogram Rows per executed batch.
//   rnn_sequences_total             counter   Rows inferred (the batch sizes'
//                                             sum).
//   rnn_queue_depth                 gauge     Rows waiting now.
//   rnn_inflight_requests           gauge     Requests in the server now,
//                                             unary or streamed; no labels.
//   rnn_model_ready                 gauge     1 if the model serves, else 0.
//   rnn_last_inference_timestamp_seconds
//                                   gauge     When the last batch finished
//                                             (Unix time); 0 before the first.
//   rnn_build_info{version,grpc,onednn}
//                                   gauge     Always 1; labels only, and
//                                             `version` is the server's.
//   process_*                       the standard process collector
//                                   (process_collector.h).
//
// Buckets. The three duration histograms share 16 bounds: 25, 50, 100, 250,
// 500 µs, 1, 2.5, 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5 s. By the times
// measured in docs/benchmarks.md, one sequence computes within the first
// bound and a batch of 64 within 500 µs, so the low end separates a lone
// request from a full batch; a full default queue (4096 rows) drains within
// 25 ms, and client deadlines are in seconds, so the high end shows overload
// and timeouts. The 1-2.5-5 steps resolve quantiles to within a factor of
// about 2.5 everywhere at 17 series per histogram. rnn_batch_size's bounds are
// 1, 2, 4, ... up to and including max_batch_size (added if not a power of 2):
// batch sizes spread geometrically with load, and the top bucket holds exactly
// the full batches.
//
// Recording. Counters and histograms are relaxed atomics read at scrape time
// (prometheus-cpp's own Histogram takes a mutex per Observe; see
// atomic_histogram.h); no call on the request path locks, allocates or looks
// up a label set. rnn_inflight_requests is an atomic kept by
// RequestStarted/RequestFinished. rnn_queue_depth and rnn_model_ready are not
// recorded at all: they are read from sources the owner supplies, when
// Prometheus scrapes.
//
// Triton's ModelStatistics (Statistics()) reads the same counters and
// histograms: no figure is kept twice. What it adds is kept only here:
// durations split by outcome (success/fail) and by batch phase
// (BatchTimes), per batch size.
//
// Example (RnnServer, rnn_server.cc, wires it up the same way):
//   Metrics::Options options;
//   options.max_batch_size = 64;  // the batcher's max_batch_size
//   Metrics metrics(options);
//   int64_t rows_waiting = 0;     // RnnServer reads Batcher::queued_rows()
//   metrics.SetQueueDepthSource([&] { return rows_waiting; });
//   metrics.SetModelReadySource([] { return true; });
//   // Then: Batcher::Options::observer = &metrics, and
//   // MetricsServer::Start("0.0.0.0:8002", metrics.registry()).
//   // Per ModelInfer call, from its arrival to its answer:
//   metrics.RequestStarted();
//   metrics.RequestFinished(absl::StatusCode::kOk, absl::Microseconds(350));
//
// Thread-safety: every method may be called from any thread.
#ifndef RNN_SERVER_METRICS_METRICS_H_
#define RNN_SERVER_METRICS_METRICS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "prometheus/registry.h"
#include "server/batching/batch_observer.h"

namespace rnn {

class Metrics final : public BatchObserver {
 public:
  struct Options {
    // Label values of every rnn_* family but rnn_inflight_requests and
    // rnn_build_info. Defaults match the model the server ships.
    std::string model = "rnn";
    std::string version = "1";
    // The batcher's max_batch_size; sets rnn_batch_size's top bucket. Default
    // 64, the batcher's default. Values below 1 count as 1.
    size_t max_batch_size = 64;
    // rnn_build_info's labels `version`, `grpc` and `onednn`. Default empty:
    // only the server knows them (PROJECT_VERSION, grpc::Version(),
    // dnnl_version()).
    std::string server_version, grpc_version, onednn_version;
  };

  // Registers every family; the 17 rnn_requests_total series start at 0.
  explicit Metrics(const Options& options);

  // Detaches the gauge sources (see below); waits for a scrape that is
  // reading them. The registry may outlive the Metrics; a later scrape
  // reports the last values, and 0 for the gauges with sources.
  ~Metrics() override;

  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Sources of rnn_queue_depth (rows waiting) and rnn_model_ready, called on
  // a scrape thread at each scrape, one call at a time. Either may be left
  // unset or empty; it then reads 0. A source must stay callable until it is
  // replaced or the Metrics destroyed, and must not call into this object.
  void SetQueueDepthSource(std::function<int64_t()> rows_waiting);
  void SetModelReadySource(std::function<bool()> ready);

  // The request path; lock-free and allocation-free.
  // A request arrived (a ModelInfer call, or a request read from a stream):
  // rnn_inflight_requests +1.
  void RequestStarted();
  // The request was answered with `code` after `duration` (arrival to
  // response; negative counts as 0): rnn_inflight_requests -1,
  // rnn_requests_total{code} +1, rnn_request_duration_seconds observes
  // `duration`. Codes outside the 17 canonical ones count as UNKNOWN. Call
  // once per RequestStarted.
  void RequestFinished(absl::StatusCode code, absl::Duration duration);

  // BatchObserver: rnn_batch_size observes `rows`, rnn_sequences_total +=
  // rows, rnn_compute_duration_seconds observes times.total(),
  // rnn_queue_duration_seconds each of `queue_times`, and the batch's phases
  // are added to its size's and (once per slice) to the per-request
  // statistics. `rows` above max_batch_size (which the batcher never forms)
  // count under max_batch_size in the per-size statistics.
  void OnBatch(size_t rows, const BatchTimes& times,
               absl::Span<const absl::Duration> queue_times) override;

  // Triton's ModelStatistics figures for the model.
  struct Statistics {
    struct Duration {
      uint64_t count = 0;
      uint64_t ns = 0;
    };
    struct BatchSize {
      uint64_t batch_size = 0;
      // compute_infer.count is the number of batches of this size.
      Duration compute_input, compute_infer, compute_output;
    };
    uint64_t inference_count = 0;  // rnn_sequences_total
    uint64_t execution_count = 0;  // rnn_batch_size's count
    // Milliseconds since the epoch; 0 before the first batch.
    // (rnn_last_inference_timestamp_seconds)
    int64_t last_inference_ms = 0;
    // Requests answered OK (rnn_requests_total{code="OK"}) and otherwise;
    // their durations add up to rnn_request_duration_seconds' sum.
    Duration success, fail;
    // One per executed slice of a request (a request above max_batch_size
    // rows runs in several): count and sum of rnn_queue_duration_seconds.
    Duration queue;
    // Per slice, the phases of the batch it ran in.
    Duration compute_input, compute_infer, compute_output;
    // Batch sizes executed at least once, ascending; their phases add up to
    // rnn_compute_duration_seconds' sum.
    std::vector<BatchSize> batch_sizes;
  };
  // Read without stopping the recording: figures taken while requests are
  // being answered may be a few events apart from each other.
  Statistics GetStatistics() const;

  // Holds every family above, process_* included: serve it with
  // MetricsServer or serialize its Collect(). Callers may register more
  // families in it, except under the rnn_ and process_ prefixes.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  class Collector;  // The rnn_* families' state; shared with the registry.

  const std::shared_ptr<Collector> collector_;
  const std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace rnn

#endif  // RNN_SERVER_METRICS_METRICS_H_
