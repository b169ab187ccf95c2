#include "client/loadgen/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace rnn::loadgen {
namespace {

// The exact value at percentile p of sorted `v`, by the same rank rule.
double Exact(const std::vector<int64_t>& v, double p) {
  const size_t rank =
      std::max<size_t>(1, static_cast<size_t>(std::ceil(p / 100 * v.size())));
  return static_cast<double>(v[rank - 1]);
}

TEST(LatencyHistogramTest, EmptyHistogramReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.Percentile(50), 0);
  EXPECT_EQ(h.mean_ns(), 0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int v = 0; v < 256; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 127);
  EXPECT_EQ(h.Percentile(100), 255);
  EXPECT_DOUBLE_EQ(h.mean_ns(), 127.5);
}

TEST(LatencyHistogramTest, BucketsTileTheRangeWithoutGaps) {
  for (int i = 0; i + 1 < LatencyHistogram::kBucketCount; ++i) {
    ASSERT_EQ(LatencyHistogram::BucketHigh(i),
              LatencyHistogram::BucketLow(i + 1))
        << i;
    ASSERT_EQ(LatencyHistogram::BucketOf(LatencyHistogram::BucketLow(i)), i);
    ASSERT_EQ(LatencyHistogram::BucketOf(LatencyHistogram::BucketHigh(i) - 1),
              i);
  }
  EXPECT_EQ(LatencyHistogram::BucketOf(int64_t{1} << 50),
            LatencyHistogram::kBucketCount - 1);
}

// Percentiles within 1% of the exact ones over six decades of latency.
TEST(LatencyHistogramTest, PercentilesHaveBoundedRelativeError) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(200'000.0), 2.0);
  LatencyHistogram h;
  std::vector<int64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    const int64_t v = static_cast<int64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99}) {
    const double exact = Exact(values, p);
    EXPECT_NEAR(h.Percentile(p), exact, exact * 0.01) << "p" << p;
  }
  EXPECT_EQ(h.Percentile(100), values.back());
  EXPECT_EQ(h.max_ns(), values.back());
  double sum = 0;
  for (int64_t v : values) sum += v;
  EXPECT_NEAR(h.mean_ns(), sum / values.size(), 1e-6 * sum / values.size());
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (int64_t v = 1; v < 1'000'000; v = v * 3 / 2 + 1) {
    (v % 2 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.sum_ns(), all.sum_ns());
  EXPECT_EQ(a.max_ns(), all.max_ns());
  for (double p : {10.0, 50.0, 99.0})
    EXPECT_EQ(a.Percentile(p), all.Percentile(p));
}

TEST(LatencyHistogramTest, SubtractGivesTheIntervalBetweenSnapshots) {
  LatencyHistogram h;
  for (int i = 0; i < 1000; ++i) h.Record(10'000);  // 10 us
  const LatencyHistogram before = h;
  for (int i = 0; i < 100; ++i) h.Record(5'000'000);  // 5 ms
  LatencyHistogram window = h;
  window.Subtract(before);
  EXPECT_EQ(window.count(), 100);
  EXPECT_EQ(window.sum_ns(), 500'000'000);
  EXPECT_NEAR(window.Percentile(1), 5'000'000, 5'000'000 * 0.01);
  EXPECT_EQ(window.max_ns(), 5'000'000);

  // A window whose values all sit below the overall maximum gets its own.
  LatencyHistogram later = h;
  for (int i = 0; i < 10; ++i) later.Record(20'000);
  const LatencyHistogram mid = h;
  later.Subtract(mid);
  EXPECT_EQ(later.count(), 10);
  EXPECT_NEAR(later.max_ns(), 20'000, 20'000 * 0.01);
}

TEST(LatencyHistogramTest, NegativeValuesCountAsZero) {
  LatencyHistogram h;
  h.Record(-5);
  EXPECT_EQ(h.count(), 1);
  EXPECT_EQ(h.Percentile(50), 0);
}

}  // namespace
}  // namespace rnn::loadgen
