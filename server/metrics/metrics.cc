#include "server/metrics/metrics.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"
#include "server/metrics/atomic_histogram.h"
#include "server/metrics/process_collector.h"

namespace rnn {
namespace {

// absl::StatusCode's canonical codes are 0 (OK) to 16 (UNAUTHENTICATED).
constexpr int kNumCodes = 17;

constexpr double kNanosPerSecond = 1e9;
// Documented in metrics.h, with the reasons.
std::vector<int64_t> DurationBoundsNs() {
  return {25'000,      50'000,      100'000,       250'000,
          500'000,     1'000'000,   2'500'000,     5'000'000,
          10'000'000,  25'000'000,  50'000'000,    100'000'000,
          250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000};
}

std::vector<int64_t> BatchSizeBounds(size_t max_batch_size) {
  const int64_t max =
      std::max<int64_t>(static_cast<int64_t>(max_batch_size), 1);
  std::vector<int64_t> bounds;
  for (int64_t b = 1; b < max; b *= 2) bounds.push_back(b);
  bounds.push_back(max);
  return bounds;
}

int64_t ToNanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

// A prometheus::Registry that also collects other Collectables: prometheus-cpp
// 1.0's Registry collects only the families built in it, and Metrics promises
// one registry with everything.
class CompositeRegistry final : public prometheus::Registry {
 public:
  explicit CompositeRegistry(
      std::vector<std::shared_ptr<const prometheus::Collectable>> children)
      : children_(std::move(children)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families = Registry::Collect();
    for (const auto& child : children_) {
      std::vector<prometheus::MetricFamily> more = child->Collect();
      std::move(more.begin(), more.end(), std::back_inserter(families));
    }
    return families;
  }

 private:
  const std::vector<std::shared_ptr<const prometheus::Collectable>> children_;
};

}  // namespace

class Metrics::Collector final : public prometheus::Collectable {
 public:
  explicit Collector(const Options& options)
      : options_(options),
        request_duration_(DurationBoundsNs(), kNanosPerSecond),
        queue_duration_(DurationBoundsNs(), kNanosPerSecond),
        compute_duration_(DurationBoundsNs(), kNanosPerSecond),
        batch_size_(BatchSizeBounds(options.max_batch_size), 1),
        max_rows_(std::max<size_t>(options.max_batch_size, 1)),
        per_size_(new PhaseTotals[max_rows_ + 1]) {}

  void RequestStarted() { inflight_.fetch_add(1, std::memory_order_relaxed); }

  void RequestFinished(absl::StatusCode code, absl::Duration duration) {
    int index = static_cast<int>(code);
    if (index < 0 || index >= kNumCodes) {
      index = static_cast<int>(absl::StatusCode::kUnknown);
    }
    const int64_t ns = std::max<int64_t>(ToNanos(duration), 0);
    inflight_.fetch_sub(1, std::memory_order_relaxed);
    requests_[index].fetch_add(1, std::memory_order_relaxed);
    request_duration_.Observe(ns);
    (index == 0 ? success_ns_ : fail_ns_)
        .fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
  }

  void OnBatch(size_t rows, const BatchTimes& times,
               absl::Span<const absl::Duration> queue_times) {
    const uint64_t input = NonNegativeNanos(times.input);
    const uint64_t infer = NonNegativeNanos(times.infer);
    const uint64_t output = NonNegativeNanos(times.output);
    batch_size_.Observe(static_cast<int64_t>(rows));
    sequences_.fetch_add(rows, std::memory_order_relaxed);
    // The histogram's sum and the per-size phases must agree exactly, so it
    // observes the sum of the rounded phases.
    compute_duration_.Observe(static_cast<int64_t>(input + infer + output));
    for (absl::Duration t : queue_times) queue_duration_.Observe(ToNanos(t));
    per_size_[std::min(rows, max_rows_)].Add(1, input, infer, output);
    const uint64_t slices = queue_times.size();
    per_slice_.Add(slices, slices * input, slices * infer, slices * output);
    last_inference_ms_.store(absl::ToUnixMillis(absl::Now()),
                             std::memory_order_relaxed);
  }

  Metrics::Statistics GetStatistics() const;

  void SetQueueDepthSource(std::function<int64_t()> source) {
    MutexLock lock(&sources_mu_);
    queue_depth_source_ = std::move(source);
  }

  void SetModelReadySource(std::function<bool()> source) {
    MutexLock lock(&sources_mu_);
    model_ready_source_ = std::move(source);
  }

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // A metric labelled {model, version}, plus `extra` labels.
  prometheus::ClientMetric ModelMetric(
      std::vector<prometheus::ClientMetric::Label> extra = {}) const {
    prometheus::ClientMetric metric;
    metric.label = {{"model", options_.model}, {"version", options_.version}};
    std::move(extra.begin(), extra.end(), std::back_inserter(metric.label));
    return metric;
  }

  prometheus::MetricFamily HistogramFamily(std::string name, std::string help,
                                           const AtomicHistogram& h) const {
    prometheus::ClientMetric metric = ModelMetric();
    metric.histogram = h.Snapshot();
    return {std::move(name),
            std::move(help),
            prometheus::MetricType::Histogram,
            {std::move(metric)}};
  }

  prometheus::MetricFamily CounterFamily(std::string name, std::string help,
                                         double value) const {
    prometheus::ClientMetric metric = ModelMetric();
    metric.counter.value = value;
    return {std::move(name),
            std::move(help),
            prometheus::MetricType::Counter,
            {std::move(metric)}};
  }

  static prometheus::MetricFamily GaugeFamily(std::string name,
                                              std::string help,
                                              prometheus::ClientMetric metric,
                                              double value) {
    metric.gauge.value = value;
    return {std::move(name),
            std::move(help),
            prometheus::MetricType::Gauge,
            {std::move(metric)}};
  }

  // Counts and nanoseconds of the three phases of a batch (BatchTimes).
  struct PhaseTotals {
    std::atomic<uint64_t> count{0}, input_ns{0}, infer_ns{0}, output_ns{0};
    void Add(uint64_t n, uint64_t input, uint64_t infer, uint64_t output) {
      count.fetch_add(n, std::memory_order_relaxed);
      input_ns.fetch_add(input, std::memory_order_relaxed);
      infer_ns.fetch_add(infer, std::memory_order_relaxed);
      output_ns.fetch_add(output, std::memory_order_relaxed);
    }
  };

  static uint64_t NonNegativeNanos(absl::Duration d) {
    return static_cast<uint64_t>(std::max<int64_t>(ToNanos(d), 0));
  }

  const Options options_;
  std::atomic<int64_t> inflight_{0};
  std::array<std::atomic<uint64_t>, kNumCodes> requests_{};
  std::atomic<uint64_t> sequences_{0};
  AtomicHistogram request_duration_, queue_duration_, compute_duration_;
  AtomicHistogram batch_size_;
  // Durations of the requests answered OK and of the others.
  std::atomic<uint64_t> success_ns_{0}, fail_ns_{0};
  // Indexed by batch size, 1..max_rows_.
  const size_t max_rows_;
  const std::unique_ptr<PhaseTotals[]> per_size_;
  // Each batch's phases once per slice in it (Triton's per-request view).
  PhaseTotals per_slice_;
  std::atomic<int64_t> last_inference_ms_{0};

  // Held while a source runs, so that ~Metrics, which clears the sources,
  // returns only once no source is running. Annotated std::mutex
  // (base/mutex.h): clang checks, ThreadSanitizer sees.
  mutable Mutex sources_mu_;
  std::function<int64_t()> queue_depth_source_ ABSL_GUARDED_BY(sources_mu_);
  std::function<bool()> model_ready_source_ ABSL_GUARDED_BY(sources_mu_);
};

std::vector<prometheus::MetricFamily> Metrics::Collector::Collect() const {
  std::vector<prometheus::MetricFamily> families;

  prometheus::MetricFamily requests{
      "rnn_requests_total",
      "Requests answered (ModelInfer calls and requests on ModelStreamInfer "
      "streams), by gRPC status code.",
      prometheus::MetricType::Counter,
      {}};
  for (int i = 0; i < kNumCodes; ++i) {
    prometheus::ClientMetric metric = ModelMetric(
        {{"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(i))}});
    metric.counter.value =
        static_cast<double>(requests_[i].load(std::memory_order_relaxed));
    requests.metric.push_back(std::move(metric));
  }
  families.push_back(std::move(requests));

  families.push_back(HistogramFamily(
      "rnn_request_duration_seconds",
      "Server-side time of a request, from arrival to response.",
      request_duration_));
  families.push_back(HistogramFamily(
      "rnn_queue_duration_seconds",
      "Time a request waited in the batcher's queue before its batch formed.",
      queue_duration_));
  families.push_back(HistogramFamily(
      "rnn_compute_duration_seconds",
      "Time one batch took: gathering its input, the model, scattering its "
      "output.",
      compute_duration_));
  families.push_back(HistogramFamily(
      "rnn_batch_size", "Rows (sequences) per executed batch.", batch_size_));
  families.push_back(CounterFamily(
      "rnn_sequences_total", "Sequences inferred (rows of executed batches).",
      static_cast<double>(sequences_.load(std::memory_order_relaxed))));

  int64_t queue_depth = 0;
  bool model_ready = false;
  {
    MutexLock lock(&sources_mu_);
    if (queue_depth_source_) queue_depth = queue_depth_source_();
    if (model_ready_source_) model_ready = model_ready_source_();
  }
  families.push_back(
      GaugeFamily("rnn_queue_depth", "Rows waiting in the batcher's queue.",
                  ModelMetric(), static_cast<double>(queue_depth)));
  families.push_back(GaugeFamily(
      "rnn_inflight_requests",
      "Requests in the server: arrived, not yet answered.", {},
      static_cast<double>(inflight_.load(std::memory_order_relaxed))));
  families.push_back(GaugeFamily(
      "rnn_model_ready", "1 if the model is loaded and serving, else 0.",
      ModelMetric(), model_ready ? 1 : 0));

  families.push_back(GaugeFamily(
      "rnn_last_inference_timestamp_seconds",
      "When the last batch finished, in seconds since the epoch; 0 before "
      "the first.",
      ModelMetric(),
      static_cast<double>(last_inference_ms_.load(std::memory_order_relaxed)) /
          1000));

  prometheus::ClientMetric build;
  build.label = {{"version", options_.server_version},
                 {"grpc", options_.grpc_version},
                 {"onednn", options_.onednn_version}};
  families.push_back(
      GaugeFamily("rnn_build_info",
                  "Always 1; labels give the server, gRPC and oneDNN versions.",
                  std::move(build), 1));
  return families;
}

Metrics::Statistics Metrics::Collector::GetStatistics() const {
  auto load = [](const std::atomic<uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  Statistics stats;
  stats.inference_count = load(sequences_);
  stats.execution_count = batch_size_.count();
  stats.last_inference_ms = last_inference_ms_.load(std::memory_order_relaxed);
  stats.success = {load(requests_[0]), load(success_ns_)};
  for (int i = 1; i < kNumCodes; ++i) stats.fail.count += load(requests_[i]);
  stats.fail.ns = load(fail_ns_);
  stats.queue = {queue_duration_.count(), queue_duration_.sum()};
  const uint64_t slices = load(per_slice_.count);
  stats.compute_input = {slices, load(per_slice_.input_ns)};
  stats.compute_infer = {slices, load(per_slice_.infer_ns)};
  stats.compute_output = {slices, load(per_slice_.output_ns)};
  for (size_t rows = 1; rows <= max_rows_; ++rows) {
    const PhaseTotals& p = per_size_[rows];
    const uint64_t batches = load(p.count);
    if (batches == 0) continue;
    stats.batch_sizes.push_back({rows,
                                 {batches, load(p.input_ns)},
                                 {batches, load(p.infer_ns)},
                                 {batches, load(p.output_ns)}});
  }
  return stats;
}

Metrics::Metrics(const Options& options)
    : collector_(std::make_shared<Collector>(options)),
      registry_(std::make_shared<CompositeRegistry>(
          std::vector<std::shared_ptr<const prometheus::Collectable>>{
              collector_, std::make_shared<ProcessCollector>()})) {}

Metrics::~Metrics() {
  collector_->SetQueueDepthSource(nullptr);
  collector_->SetModelReadySource(nullptr);
}

void Metrics::SetQueueDepthSource(std::function<int64_t()> rows_waiting) {
  collector_->SetQueueDepthSource(std::move(rows_waiting));
}

void Metrics::SetModelReadySource(std::function<bool()> ready) {
  collector_->SetModelReadySource(std::move(ready));
}

void Metrics::RequestStarted() { collector_->RequestStarted(); }

void Metrics::RequestFinished(absl::StatusCode code, absl::Duration duration) {
  collector_->RequestFinished(code, duration);
}

void Metrics::OnBatch(size_t rows, const BatchTimes& times,
                      absl::Span<const absl::Duration> queue_times) {
  collector_->OnBatch(rows, times, queue_times);
}

Metrics::Statistics Metrics::GetStatistics() const {
  return collector_->GetStatistics();
}

}  // namespace rnn
