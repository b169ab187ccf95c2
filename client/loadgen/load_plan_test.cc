#include "client/loadgen/load_plan.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn::loadgen {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseSweepTest, SingleValue) {
  EXPECT_THAT(*ParseSweep("64", true), ElementsAre(64));
  EXPECT_THAT(*ParseSweep("1500.5", false), ElementsAre(1500.5));
}

TEST(ParseSweepTest, Geometric) {
  EXPECT_THAT(*ParseSweep("1:64:x2", true),
              ElementsAre(1, 2, 4, 8, 16, 32, 64));
  // END is the last step even when the factor skips past it.
  EXPECT_THAT(*ParseSweep("1:50:x2", true),
              ElementsAre(1, 2, 4, 8, 16, 32, 50));
  // Rounding never repeats a step.
  EXPECT_THAT(*ParseSweep("1:4:x1.5", true), ElementsAre(1, 2, 3, 4));
}

TEST(ParseSweepTest, Arithmetic) {
  EXPECT_THAT(*ParseSweep("1:8:+1", true), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_THAT(*ParseSweep("1000:5000:+1000", false),
              ElementsAre(1000, 2000, 3000, 4000, 5000));
  EXPECT_EQ(ParseSweep("0.1:0.3:+0.1", false)->size(), 3u);
  EXPECT_THAT(*ParseSweep("1:10:+4", true), ElementsAre(1, 5, 9, 10));
}

TEST(ParseSweepTest, RefusesBadSpecsNamingTheProblem) {
  struct Case {
    const char* spec;
    bool integers;
    const char* message;
  } cases[] = {
      {"", true, "not a number"},
      {"abc", true, "not a number"},
      {"0", true, "positive"},
      {"-4", true, "positive"},
      {"2.5", true, "whole number"},
      {"1:64", true, "expected"},
      {"64:1:x2", true, "below start"},
      {"1:64:*2", true, "xFACTOR"},
      {"1:64:x1", true, "above 1"},
      {"1:64:+0", true, "positive"},
      {"1:1000000:+1", true, "more than 1000 steps"},
      {"nan", false, "not a number"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<double>> s = ParseSweep(c.spec, c.integers);
    ASSERT_FALSE(s.ok()) << c.spec;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.status().message(), HasSubstr(c.message)) << c.spec;
  }
}

TEST(ArrivalsTest, ParsesNames) {
  EXPECT_EQ(*ParseArrivals("constant"), Arrivals::kConstant);
  EXPECT_EQ(*ParseArrivals("poisson"), Arrivals::kPoisson);
  EXPECT_FALSE(ParseArrivals("uniform").ok());
}

TEST(ArrivalScheduleTest, ConstantIsEvenlySpacedWithoutDrift) {
  ArrivalSchedule s(Arrivals::kConstant, 3000, 1, 1'000'000);  // 333.3 us
  int64_t last = 0;
  for (int i = 1; i <= 30000; ++i) last = s.Next();
  // 30000 gaps of 1/3000 s are exactly 10 s after the start.
  EXPECT_NEAR(last, 1'000'000 + 10'000'000'000, 1);
}

TEST(ArrivalScheduleTest, PhaseShiftsConstantSenders) {
  ArrivalSchedule a(Arrivals::kConstant, 1000, 1, 0, 0.0);
  ArrivalSchedule b(Arrivals::kConstant, 1000, 1, 0, 0.5);
  EXPECT_EQ(a.Next(), 1'000'000);
  EXPECT_EQ(b.Next(), 1'500'000);
}

TEST(ArrivalScheduleTest, PoissonHasTheRateAndExponentialGaps) {
  ArrivalSchedule s(Arrivals::kPoisson, 10'000, 42, 0);
  const int n = 200'000;
  int64_t prev = 0, last = 0;
  int short_gaps = 0;  // Below the mean gap of 100 us.
  for (int i = 0; i < n; ++i) {
    last = s.Next();
    ASSERT_GE(last, prev);
    if (last - prev < 100'000) ++short_gaps;
    prev = last;
  }
  EXPECT_NEAR(last / 1e9, n / 10'000.0, 0.01 * n / 10'000.0);
  // P(gap < mean) = 1 - 1/e = 0.632 for exponential gaps.
  EXPECT_NEAR(static_cast<double>(short_gaps) / n, 1 - std::exp(-1.0), 0.005);
  // Reproducible from the seed.
  ArrivalSchedule again(Arrivals::kPoisson, 10'000, 42, 0);
  ArrivalSchedule other(Arrivals::kPoisson, 10'000, 43, 0);
  ArrivalSchedule same(Arrivals::kPoisson, 10'000, 42, 0);
  const int64_t first = again.Next();
  EXPECT_EQ(same.Next(), first);
  EXPECT_NE(other.Next(), first);
}

TEST(IsStableTest, NeedsThreeWindowsWithinThePercentage) {
  EXPECT_FALSE(IsStable({{1000, 100}, {1000, 100}}, 10));
  EXPECT_TRUE(IsStable({{1000, 100}, {1050, 104}, {980, 97}}, 10));
  // Throughput outside.
  EXPECT_FALSE(IsStable({{1000, 100}, {1300, 100}, {1000, 100}}, 10));
  // p99 outside.
  EXPECT_FALSE(IsStable({{1000, 100}, {1000, 150}, {1000, 100}}, 10));
  // Only the last three count.
  EXPECT_TRUE(IsStable({{10, 9000}, {1000, 100}, {1000, 100}, {1000, 100}}, 5));
}

}  // namespace
}  // namespace rnn::loadgen
