#include "client/loadgen/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace rnn::loadgen {
namespace {

constexpr int kLinearBuckets = 1 << (LatencyHistogram::kSubBucketBits + 1);
constexpr int kSubBuckets = 1 << LatencyHistogram::kSubBucketBits;

}  // namespace

int LatencyHistogram::BucketOf(int64_t value_ns) {
  if (value_ns < kLinearBuckets) return static_cast<int>(value_ns);
  const int msb = 63 - __builtin_clzll(static_cast<uint64_t>(value_ns));
  if (msb >= kMaxValueBits) return kBucketCount - 1;
  const int shift = msb - kSubBucketBits;
  return kLinearBuckets + (shift - 1) * kSubBuckets +
         static_cast<int>((value_ns >> shift) - kSubBuckets);
}

int64_t LatencyHistogram::BucketLow(int i) {
  if (i < kLinearBuckets) return i;
  const int j = i - kLinearBuckets;
  const int shift = j / kSubBuckets + 1;
  return static_cast<int64_t>(j % kSubBuckets + kSubBuckets) << shift;
}

int64_t LatencyHistogram::BucketHigh(int i) {
  if (i < kLinearBuckets) return i + 1;
  const int j = i - kLinearBuckets;
  const int shift = j / kSubBuckets + 1;
  return static_cast<int64_t>(j % kSubBuckets + kSubBuckets + 1) << shift;
}

LatencyHistogram::LatencyHistogram()
    : counts_(new std::atomic<int64_t>[kBucketCount]) {
  for (int i = 0; i < kBucketCount; ++i) {
    counts_[i].store(0, std::memory_order_relaxed);
  }
}

LatencyHistogram::LatencyHistogram(const LatencyHistogram& other)
    : LatencyHistogram() {
  CopyFrom(other);
}

LatencyHistogram& LatencyHistogram::operator=(const LatencyHistogram& other) {
  if (this != &other) CopyFrom(other);
  return *this;
}

void LatencyHistogram::CopyFrom(const LatencyHistogram& other) {
  for (int i = 0; i < kBucketCount; ++i) {
    counts_[i].store(other.bucket_count(i), std::memory_order_relaxed);
  }
  count_.store(other.count(), std::memory_order_relaxed);
  sum_.store(other.sum_ns(), std::memory_order_relaxed);
  max_.store(other.max_ns(), std::memory_order_relaxed);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBucketCount; ++i)
    Bump(counts_[i], other.bucket_count(i));
  Bump(count_, other.count());
  Bump(sum_, other.sum_ns());
  max_.store(std::max(max_ns(), other.max_ns()), std::memory_order_relaxed);
}

void LatencyHistogram::Subtract(const LatencyHistogram& earlier) {
  int highest = -1;
  int64_t total = 0;
  for (int i = 0; i < kBucketCount; ++i) {
    const int64_t n = bucket_count(i) - earlier.bucket_count(i);
    counts_[i].store(n, std::memory_order_relaxed);
    total += n;
    if (n > 0) highest = i;
  }
  count_.store(total, std::memory_order_relaxed);
  sum_.store(sum_ns() - earlier.sum_ns(), std::memory_order_relaxed);
  // The exact maximum of the interval is not known from two snapshots; the
  // top of its highest bucket bounds it. When the overall maximum falls in
  // that bucket it is the interval's maximum too.
  int64_t max = 0;
  if (highest >= 0) {
    max = BucketOf(max_ns()) == highest ? max_ns() : BucketHigh(highest) - 1;
  }
  max_.store(max, std::memory_order_relaxed);
}

double LatencyHistogram::mean_ns() const {
  const int64_t n = count();
  return n == 0 ? 0 : static_cast<double>(sum_ns()) / n;
}

double LatencyHistogram::Percentile(double p) const {
  const int64_t n = count();
  if (n == 0) return 0;
  const int64_t max = max_ns();
  if (p >= 100) return static_cast<double>(max);
  const int64_t rank =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p / 100 * n)));
  int64_t seen = 0;
  for (int i = 0; i < kBucketCount; ++i) {
    seen += bucket_count(i);
    if (seen >= rank) {
      const double mid = i < kLinearBuckets
                             ? static_cast<double>(i)
                             : (BucketLow(i) + BucketHigh(i) - 1) / 2.0;
      return std::min(mid, static_cast<double>(max));
    }
  }
  return static_cast<double>(max);
}

}  // namespace rnn::loadgen
