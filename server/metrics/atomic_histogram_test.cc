#include "server/metrics/atomic_histogram.h"

#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using ::testing::ElementsAre;

std::vector<uint64_t> CumulativeCounts(
    const prometheus::ClientMetric::Histogram& h) {
  std::vector<uint64_t> counts;
  for (const auto& bucket : h.bucket) counts.push_back(bucket.cumulative_count);
  return counts;
}

std::vector<double> UpperBounds(const prometheus::ClientMetric::Histogram& h) {
  std::vector<double> bounds;
  for (const auto& bucket : h.bucket) bounds.push_back(bucket.upper_bound);
  return bounds;
}

TEST(AtomicHistogramTest, ValueEqualToABoundIsInThatBucket) {
  AtomicHistogram h({10, 20, 30}, 1);
  for (int64_t v : {10, 11, 20, 30, 31}) h.Observe(v);

  const prometheus::ClientMetric::Histogram s = h.Snapshot();
  EXPECT_THAT(UpperBounds(s), ElementsAre(10, 20, 30, INFINITY));
  EXPECT_THAT(CumulativeCounts(s), ElementsAre(1, 3, 4, 5));
  EXPECT_EQ(s.sample_count, 5u);
  EXPECT_EQ(s.sample_sum, 102);
}

TEST(AtomicHistogramTest, NegativeValuesCountAsZero) {
  AtomicHistogram h({0, 10}, 1);
  h.Observe(-7);

  const prometheus::ClientMetric::Histogram s = h.Snapshot();
  EXPECT_THAT(CumulativeCounts(s), ElementsAre(1, 1, 1));
  EXPECT_EQ(s.sample_sum, 0);
}

TEST(AtomicHistogramTest, EmptyHistogramHasZeroBucketsAndInf) {
  const prometheus::ClientMetric::Histogram s =
      AtomicHistogram({5}, 1).Snapshot();
  EXPECT_THAT(UpperBounds(s), ElementsAre(5, INFINITY));
  EXPECT_THAT(CumulativeCounts(s), ElementsAre(0, 0));
  EXPECT_EQ(s.sample_count, 0u);
  EXPECT_EQ(s.sample_sum, 0);
}

TEST(AtomicHistogramTest, BoundsAreSortedAndDeduplicated) {
  AtomicHistogram h({30, 10, 20, 10}, 1);
  EXPECT_THAT(h.upper_bounds(), ElementsAre(10, 20, 30));
}

TEST(AtomicHistogramTest, ExportsInBaseUnits) {
  AtomicHistogram h({25'000, 1'000'000}, 1e9);  // Nanoseconds as seconds.
  h.Observe(25'000);
  h.Observe(1'500'000'000);

  const prometheus::ClientMetric::Histogram s = h.Snapshot();
  // Exactly the doubles the literals denote, so they serialize as written.
  EXPECT_THAT(UpperBounds(s), ElementsAre(25e-6, 0.001, INFINITY));
  EXPECT_THAT(CumulativeCounts(s), ElementsAre(1, 1, 2));
  EXPECT_DOUBLE_EQ(s.sample_sum, 1.500025);
  // The exact figures, in the histogram's own unit.
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.sum(), 1'500'025'000u);
}

TEST(AtomicHistogramTest, ConcurrentObservationsAreAllCounted) {
  constexpr int kThreads = 8, kPerThread = 20'000;
  AtomicHistogram h({1, 2, 4}, 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.Observe(t % 5);
    });
  }
  for (auto& thread : threads) thread.join();

  const prometheus::ClientMetric::Histogram s = h.Snapshot();
  EXPECT_EQ(s.sample_count, uint64_t{kThreads} * kPerThread);
  // Threads 0..7 observe 0,1,2,3,4,0,1,2.
  EXPECT_EQ(s.sample_sum, 13.0 * kPerThread);
  EXPECT_THAT(CumulativeCounts(s), ElementsAre(4 * kPerThread, 6 * kPerThread,
                                               8 * kPerThread, 8 * kPerThread));
}

}  // namespace
}  // namespace rnn
