// LatencyHistogram: a log-linear histogram of durations in the style of
// HdrHistogram, with bounded relative error and fixed memory.
//
// Values are nanoseconds. Below 256 ns every value has its own bucket; above,
// each power of two is split into 128 equal buckets, so a bucket is at most
// 1/128 of the values it holds wide and the value reported for it (its
// midpoint) is within 0.4% of any value recorded into it. Values up to 2^40 ns
// (18 minutes) are tracked; larger ones land in the last bucket. The mean
// and the maximum are kept exactly.
//
// Recording is lock-free and allocation-free: one thread records, any thread
// may read at the same time (counters are relaxed atomics with a single
// writer, so a read taken while recording goes on is a consistent-enough
// snapshot for a progress line). Copies are snapshots; Merge and Subtract
// combine snapshots, e.g. per-thread histograms at the end of a step, or two
// cumulative snapshots into the histogram of the window between them.
//
// Example:
//   LatencyHistogram window;        // one thread's, recording
//   window.Record(12'500);          // ns: 12.5 µs
//   window.Record(80'000);
//   LatencyHistogram total;         // the step's, merged at the window's end
//   total.Merge(window);
//   const bool slow = total.Percentile(99) > 1e6;  // p99 over 1 ms?
//   if (slow) return absl::DeadlineExceededError("p99 over 1 ms");
#ifndef RNN_CLIENT_LOADGEN_LATENCY_HISTOGRAM_H_
#define RNN_CLIENT_LOADGEN_LATENCY_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace rnn::loadgen {

class LatencyHistogram {
 public:
  // Bits of sub-bucket resolution per power of two (128 buckets each).
  static constexpr int kSubBucketBits = 7;
  // Largest value tracked exactly to the bucket resolution: 2^40 ns.
  static constexpr int kMaxValueBits = 40;
  static constexpr int kBucketCount =
      (1 << (kSubBucketBits + 1)) +
      (kMaxValueBits - kSubBucketBits - 1) * (1 << kSubBucketBits);

  LatencyHistogram();
  LatencyHistogram(const LatencyHistogram& other);
  LatencyHistogram& operator=(const LatencyHistogram& other);

  // Records one value (negative values count as 0). Single writer.
  void Record(int64_t value_ns) {
    if (value_ns < 0) value_ns = 0;
    Bump(counts_[BucketOf(value_ns)], 1);
    Bump(count_, 1);
    Bump(sum_, value_ns);
    if (value_ns > max_.load(std::memory_order_relaxed)) {
      max_.store(value_ns, std::memory_order_relaxed);
    }
  }

  // Adds every value of `other`.
  void Merge(const LatencyHistogram& other);
  // Removes the values of `earlier`, a snapshot of this same histogram taken
  // before: the result holds the values recorded in between. The maximum
  // then becomes the top of the highest non-empty bucket (within 0.8%).
  void Subtract(const LatencyHistogram& earlier);

  int64_t count() const { return count_.load(std::memory_order_relaxed); }
  int64_t sum_ns() const { return sum_.load(std::memory_order_relaxed); }
  double mean_ns() const;
  int64_t max_ns() const { return max_.load(std::memory_order_relaxed); }
  // The value at percentile `p` (0..100): the smallest recorded value such
  // that p% of values are at or below it, to the bucket resolution. 0 when
  // empty.
  double Percentile(double p) const;

  // Buckets, for plotting the distribution: the count of bucket i and the
  // range [BucketLow(i), BucketHigh(i)) of values it holds.
  int64_t bucket_count(int i) const {
    return counts_[i].load(std::memory_order_relaxed);
  }
  static int64_t BucketLow(int i);
  static int64_t BucketHigh(int i);
  static int BucketOf(int64_t value_ns);

 private:
  static void Bump(std::atomic<int64_t>& counter, int64_t by) {
    counter.store(counter.load(std::memory_order_relaxed) + by,
                  std::memory_order_relaxed);
  }
  void CopyFrom(const LatencyHistogram& other);

  std::unique_ptr<std::atomic<int64_t>[]> counts_;
  std::atomic<int64_t> count_{0};
  std::atomic<int64_t> sum_{0};
  std::atomic<int64_t> max_{0};
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_LATENCY_HISTOGRAM_H_
