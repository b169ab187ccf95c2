#include "server/metrics/atomic_histogram.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace rnn {
namespace {

std::vector<int64_t> SortedUnique(std::vector<int64_t> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

}  // namespace

AtomicHistogram::AtomicHistogram(std::vector<int64_t> upper_bounds,
                                 double units_per_base_unit)
    : upper_bounds_(SortedUnique(std::move(upper_bounds))),
      units_per_base_unit_(units_per_base_unit),
      counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i] = 0;
}

void AtomicHistogram::Observe(int64_t value) {
  value = std::max<int64_t>(value, 0);
  // The first bound >= value: `le` buckets include their bound. Past the last
  // bound this is the +Inf bucket.
  const size_t bucket =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) -
      upper_bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(static_cast<uint64_t>(value), std::memory_order_relaxed);
}

uint64_t AtomicHistogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
  }
  return total;
}

prometheus::ClientMetric::Histogram AtomicHistogram::Snapshot() const {
  prometheus::ClientMetric::Histogram histogram;
  histogram.bucket.resize(upper_bounds_.size() + 1);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    histogram.bucket[i].cumulative_count = cumulative;
    histogram.bucket[i].upper_bound =
        i < upper_bounds_.size()
            ? static_cast<double>(upper_bounds_[i]) / units_per_base_unit_
            : std::numeric_limits<double>::infinity();
  }
  histogram.sample_count = cumulative;
  histogram.sample_sum =
      static_cast<double>(sum_.load(std::memory_order_relaxed)) /
      units_per_base_unit_;
  return histogram;
}

}  // namespace rnn
