// AtomicHistogram: a Prometheus histogram that records without a lock.
//
// prometheus-cpp 1.0's prometheus::Histogram takes a std::mutex in every
// Observe; on the request path, where every gRPC thread and every batcher
// worker records, that lock would be contended. An AtomicHistogram records
// with two relaxed atomic adds (its bucket and the sum) and never allocates;
// it is read at scrape time with Snapshot(), which prometheus::Collectable
// implementations turn into a MetricFamily (see metrics.h).
//
// Values are integers in a unit of the owner's choosing (nanoseconds, rows),
// so sums are exact and a value equal to a bound lands in that bound's bucket,
// as Prometheus' `le` ("less than or equal") requires. The snapshot converts
// them to the exported base unit by dividing by `units_per_base_unit` (1e9
// for nanoseconds exported as seconds; dividing rounds 25'000 / 1e9 to the
// double nearest 25e-6, so bounds print as written).
//
// Example:
//   AtomicHistogram latency({25'000, 50'000, 100'000}, 1e9);  // ns, as s.
//   const int64_t elapsed_ns = 42'000;  // one request's, measured
//   latency.Observe(elapsed_ns);        // lands in the 50'000 ns bucket
//   prometheus::ClientMetric::Histogram h = latency.Snapshot();
//   // h.bucket: cumulative counts 0, 1, 1, 1 (+Inf); h.sample_sum 42e-6.
//
// Thread-safety: Observe and Snapshot may be called from any thread. A
// snapshot taken while observations are in flight may count an observation
// in its bucket but not yet in the sum (or the reverse); the buckets and the
// count always agree, since the count is the buckets' total.
#ifndef RNN_SERVER_METRICS_ATOMIC_HISTOGRAM_H_
#define RNN_SERVER_METRICS_ATOMIC_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "prometheus/client_metric.h"

namespace rnn {

class AtomicHistogram {
 public:
  // `upper_bounds`: the buckets' inclusive upper bounds in the histogram's
  // unit, in any order (they are sorted and duplicates dropped). A +Inf
  // bucket is always added after them. `units_per_base_unit`: how many of
  // the histogram's units make one exported unit (1e9 ns per second).
  AtomicHistogram(std::vector<int64_t> upper_bounds,
                  double units_per_base_unit);

  AtomicHistogram(const AtomicHistogram&) = delete;
  AtomicHistogram& operator=(const AtomicHistogram&) = delete;

  // Records `value` (in the histogram's unit). Negative values count as 0:
  // the histograms here hold durations and sizes. Lock-free, allocation-free.
  void Observe(int64_t value);

  // The histogram as Prometheus exports it: cumulative bucket counts in
  // increasing bound order, the last one +Inf; bounds and sum in base units.
  prometheus::ClientMetric::Histogram Snapshot() const;

  // Observations so far, and their sum in the histogram's unit (exact,
  // unlike Snapshot's sum in base units).
  uint64_t count() const;
  uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }

  const std::vector<int64_t>& upper_bounds() const { return upper_bounds_; }

 private:
  const std::vector<int64_t> upper_bounds_;
  const double units_per_base_unit_;
  // Non-cumulative counts; one per bound, then the +Inf bucket.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_{0};  // In the histogram's unit.
};

}  // namespace rnn

#endif  // RNN_SERVER_METRICS_ATOMIC_HISTOGRAM_H_
