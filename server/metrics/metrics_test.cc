#include "server/metrics/metrics.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace rnn {
namespace {

using ::testing::HasSubstr;

// Every sample of a scrape in the text exposition format, keyed by the
// series as written ("name{label=\"value\",...}").
using Samples = std::map<std::string, double>;

std::string Serialize(const Metrics& metrics) {
  return prometheus::TextSerializer().Serialize(metrics.registry()->Collect());
}

Samples Scrape(const Metrics& metrics) {
  Samples samples;
  for (absl::string_view line :
       absl::StrSplit(Serialize(metrics), '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    double value;
    if (space == absl::string_view::npos ||
        !absl::SimpleAtod(line.substr(space + 1), &value)) {
      ADD_FAILURE() << "unparsable sample: " << line;
      continue;
    }
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

// The key of a series labelled {model="rnn",version="1"} plus `extra`.
std::string Series(absl::string_view name, absl::string_view extra = "") {
  return absl::StrCat(name, "{model=\"rnn\",version=\"1\"",
                      extra.empty() ? "" : ",", extra, "}");
}

std::string Bucket(absl::string_view histogram, absl::string_view le) {
  return Series(absl::StrCat(histogram, "_bucket"),
                absl::StrCat("le=\"", le, "\""));
}

std::string Requests(absl::string_view code) {
  return Series("rnn_requests_total", absl::StrCat("code=\"", code, "\""));
}

// A batch that spent `d` in the model, with nothing gathered or scattered.
BatchTimes InModel(absl::Duration d) {
  return {absl::ZeroDuration(), d, absl::ZeroDuration()};
}

Metrics::Options DefaultOptions() {
  Metrics::Options options;
  options.server_version = "0.1.0";
  options.grpc_version = "1.51.1";
  options.onednn_version = "3.0.0";
  return options;
}

TEST(MetricsTest, CountsRequestsByCodeName) {
  Metrics metrics(DefaultOptions());
  for (int i = 0; i < 5; ++i) {
    metrics.RequestStarted();
    metrics.RequestFinished(absl::StatusCode::kOk, absl::Milliseconds(1));
  }
  for (int i = 0; i < 2; ++i) {
    metrics.RequestStarted();
    metrics.RequestFinished(absl::StatusCode::kInvalidArgument,
                            absl::Milliseconds(1));
  }
  metrics.RequestStarted();
  metrics.RequestFinished(absl::StatusCode::kUnavailable,
                          absl::Milliseconds(1));

  Samples samples = Scrape(metrics);
  EXPECT_EQ(samples[Requests("OK")], 5);
  EXPECT_EQ(samples[Requests("INVALID_ARGUMENT")], 2);
  EXPECT_EQ(samples[Requests("UNAVAILABLE")], 1);
  EXPECT_EQ(samples[Requests("DEADLINE_EXCEEDED")], 0);
  EXPECT_EQ(samples[Series("rnn_request_duration_seconds_count")], 8);
}

TEST(MetricsTest, EveryCanonicalCodeExistsFromStartUp) {
  const Samples samples = Scrape(Metrics(DefaultOptions()));
  for (const char* code :
       {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"}) {
    ASSERT_EQ(samples.count(Requests(code)), 1u) << code;
    EXPECT_EQ(samples.at(Requests(code)), 0) << code;
  }
  int series = 0;
  for (const auto& [key, value] : samples) {
    series += absl::StartsWith(key, "rnn_requests_total{");
  }
  EXPECT_EQ(series, 17);
}

TEST(MetricsTest, NonCanonicalCodeCountsAsUnknown) {
  Metrics metrics(DefaultOptions());
  metrics.RequestStarted();
  metrics.RequestFinished(static_cast<absl::StatusCode>(99),
                          absl::Milliseconds(1));
  EXPECT_EQ(Scrape(metrics)[Requests("UNKNOWN")], 1);
}

TEST(MetricsTest, RequestDurationBucketsIncludeTheirBound) {
  Metrics metrics(DefaultOptions());
  const auto finish = [&](absl::Duration d) {
    metrics.RequestStarted();
    metrics.RequestFinished(absl::StatusCode::kOk, d);
  };
  finish(absl::Microseconds(25));  // Exactly the lowest bound.
  finish(-absl::Microseconds(3));  // Counts as 0.
  finish(absl::Milliseconds(1));   // Exactly a bound.
  finish(absl::Milliseconds(1));
  finish(absl::Microseconds(1001));  // Just past it.
  finish(absl::Seconds(2.5));        // Exactly the highest bound.
  finish(absl::Seconds(3));          // Only in +Inf.

  Samples samples = Scrape(metrics);
  const std::string h = "rnn_request_duration_seconds";
  EXPECT_EQ(samples[Bucket(h, "2.5e-05")], 2);
  EXPECT_EQ(samples[Bucket(h, "0.0005")], 2);
  EXPECT_EQ(samples[Bucket(h, "0.001")], 4);
  EXPECT_EQ(samples[Bucket(h, "0.0025")], 5);
  EXPECT_EQ(samples[Bucket(h, "1")], 5);
  EXPECT_EQ(samples[Bucket(h, "2.5")], 6);
  EXPECT_EQ(samples[Bucket(h, "+Inf")], 7);
  EXPECT_EQ(samples[Series(h + "_count")], 7);
  EXPECT_DOUBLE_EQ(samples[Series(h + "_sum")],
                   25e-6 + 0.001 + 0.001 + 0.001001 + 2.5 + 3);
}

TEST(MetricsTest, DurationHistogramsHaveTheDocumentedBuckets) {
  const Samples samples = Scrape(Metrics(DefaultOptions()));
  for (const char* h :
       {"rnn_request_duration_seconds", "rnn_queue_duration_seconds",
        "rnn_compute_duration_seconds"}) {
    std::vector<std::string> buckets;
    for (const auto& [key, value] : samples) {
      if (absl::StartsWith(key, absl::StrCat(h, "_bucket{"))) {
        buckets.push_back(key);
      }
    }
    EXPECT_EQ(buckets.size(), 17u) << h;
    for (const char* le : {"2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005",
                           "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                           "0.1", "0.25", "0.5", "1", "2.5", "+Inf"}) {
      EXPECT_EQ(samples.count(Bucket(h, le)), 1u) << h << " le=" << le;
    }
  }
}

TEST(MetricsTest, BatchesFeedSizeComputeQueueAndSequences) {
  Metrics metrics(DefaultOptions());
  const std::vector<absl::Duration> one_wait = {absl::Microseconds(10)};
  const std::vector<absl::Duration> two_waits = {absl::ZeroDuration(),
                                                 absl::Microseconds(50)};
  const std::vector<absl::Duration> many_waits(8, absl::Milliseconds(2));
  metrics.OnBatch(1, InModel(absl::Microseconds(20)), one_wait);
  metrics.OnBatch(3, InModel(absl::Microseconds(60)), two_waits);
  metrics.OnBatch(64, InModel(absl::Microseconds(300)), many_waits);

  Samples samples = Scrape(metrics);
  const std::string size = "rnn_batch_size";
  EXPECT_EQ(samples[Bucket(size, "1")], 1);
  EXPECT_EQ(samples[Bucket(size, "2")], 1);
  EXPECT_EQ(samples[Bucket(size, "4")], 2);
  EXPECT_EQ(samples[Bucket(size, "32")], 2);
  EXPECT_EQ(samples[Bucket(size, "64")], 3);
  EXPECT_EQ(samples[Bucket(size, "+Inf")], 3);
  EXPECT_EQ(samples[Series(size + "_count")], 3);
  EXPECT_EQ(samples[Series(size + "_sum")], 68);
  EXPECT_EQ(samples[Series("rnn_sequences_total")], 68);

  const std::string compute = "rnn_compute_duration_seconds";
  EXPECT_EQ(samples[Bucket(compute, "2.5e-05")], 1);
  EXPECT_EQ(samples[Bucket(compute, "0.0001")], 2);
  EXPECT_EQ(samples[Bucket(compute, "0.00025")], 2);
  EXPECT_EQ(samples[Bucket(compute, "0.0005")], 3);
  EXPECT_EQ(samples[Series(compute + "_count")], 3);
  EXPECT_DOUBLE_EQ(samples[Series(compute + "_sum")], 380e-6);

  const std::string queue = "rnn_queue_duration_seconds";
  EXPECT_EQ(samples[Bucket(queue, "2.5e-05")], 2);
  EXPECT_EQ(samples[Bucket(queue, "5e-05")], 3);
  EXPECT_EQ(samples[Bucket(queue, "0.001")], 3);
  EXPECT_EQ(samples[Bucket(queue, "0.0025")], 11);
  EXPECT_EQ(samples[Series(queue + "_count")], 11);
  EXPECT_DOUBLE_EQ(samples[Series(queue + "_sum")], 60e-6 + 8 * 0.002);
}

TEST(MetricsTest, BatchSizeBucketsDoubleUpToMaxBatchSize) {
  Metrics::Options options = DefaultOptions();
  options.max_batch_size = 48;
  Metrics metrics(options);
  metrics.OnBatch(48, InModel(absl::Microseconds(100)), {});

  Samples samples = Scrape(metrics);
  std::set<std::string> buckets;
  for (const auto& [key, value] : samples) {
    if (absl::StartsWith(key, "rnn_batch_size_bucket{")) buckets.insert(key);
  }
  std::set<std::string> expected;
  for (const char* le : {"1", "2", "4", "8", "16", "32", "48", "+Inf"}) {
    expected.insert(Bucket("rnn_batch_size", le));
  }
  EXPECT_EQ(buckets, expected);
  EXPECT_EQ(samples[Bucket("rnn_batch_size", "32")], 0);
  EXPECT_EQ(samples[Bucket("rnn_batch_size", "48")], 1);
}

TEST(MetricsTest, InflightCountsStartedButUnfinishedCallsWithoutLabels) {
  Metrics metrics(DefaultOptions());
  for (int i = 0; i < 3; ++i) metrics.RequestStarted();
  metrics.RequestFinished(absl::StatusCode::kOk, absl::Milliseconds(1));

  const Samples samples = Scrape(metrics);
  ASSERT_EQ(samples.count("rnn_inflight_requests"), 1u);
  EXPECT_EQ(samples.at("rnn_inflight_requests"), 2);
}

TEST(MetricsTest, GaugeSourcesAreReadAtScrapeTime) {
  Metrics metrics(DefaultOptions());
  EXPECT_EQ(Scrape(metrics)[Series("rnn_queue_depth")], 0);
  EXPECT_EQ(Scrape(metrics)[Series("rnn_model_ready")], 0);

  std::atomic<int64_t> rows_waiting{7};
  std::atomic<bool> ready{true};
  metrics.SetQueueDepthSource([&] { return rows_waiting.load(); });
  metrics.SetModelReadySource([&] { return ready.load(); });
  Samples first = Scrape(metrics);
  EXPECT_EQ(first[Series("rnn_queue_depth")], 7);
  EXPECT_EQ(first[Series("rnn_model_ready")], 1);

  rows_waiting = 4096;
  ready = false;
  Samples second = Scrape(metrics);
  EXPECT_EQ(second[Series("rnn_queue_depth")], 4096);
  EXPECT_EQ(second[Series("rnn_model_ready")], 0);
}

TEST(MetricsTest, RegistryOutlivesMetricsWithoutCallingSources) {
  std::shared_ptr<prometheus::Registry> registry;
  bool source_alive = true;
  {
    Metrics metrics(DefaultOptions());
    metrics.SetQueueDepthSource([&] {
      EXPECT_TRUE(source_alive) << "source called after ~Metrics";
      return int64_t{5};
    });
    metrics.RequestStarted();
    metrics.RequestFinished(absl::StatusCode::kOk, absl::Milliseconds(1));
    registry = metrics.registry();
  }
  source_alive = false;

  const std::string text =
      prometheus::TextSerializer().Serialize(registry->Collect());
  EXPECT_THAT(text, HasSubstr(Requests("OK") + " 1\n"));
  EXPECT_THAT(text, HasSubstr(Series("rnn_queue_depth") + " 0\n"));
}

TEST(MetricsTest, BuildInfoIsOneWithVersionLabels) {
  EXPECT_EQ(
      Scrape(Metrics(
          DefaultOptions()))["rnn_build_info{version=\"0.1.0\",grpc=\"1.51.1\","
                             "onednn=\"3.0.0\"}"],
      1);
}

TEST(MetricsTest, LabelsComeFromOptions) {
  Metrics::Options options = DefaultOptions();
  options.model = "lstm";
  options.version = "7";
  Metrics metrics(options);
  metrics.OnBatch(2, InModel(absl::Microseconds(30)), {});
  EXPECT_EQ(
      Scrape(metrics)["rnn_sequences_total{model=\"lstm\",version=\"7\"}"], 2);
}

TEST(MetricsTest, RegistryHoldsExactlyTheDocumentedFamiliesWithHelp) {
  Metrics metrics(DefaultOptions());
  std::set<std::string> names;
  for (const prometheus::MetricFamily& family : metrics.registry()->Collect()) {
    EXPECT_FALSE(family.help.empty()) << family.name;
    EXPECT_TRUE(names.insert(family.name).second) << "twice: " << family.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{
                       "rnn_requests_total",
                       "rnn_request_duration_seconds",
                       "rnn_queue_duration_seconds",
                       "rnn_compute_duration_seconds",
                       "rnn_batch_size",
                       "rnn_sequences_total",
                       "rnn_queue_depth",
                       "rnn_inflight_requests",
                       "rnn_model_ready",
                       "rnn_last_inference_timestamp_seconds",
                       "rnn_build_info",
                       "process_cpu_seconds_total",
                       "process_open_fds",
                       "process_max_fds",
                       "process_virtual_memory_bytes",
                       "process_resident_memory_bytes",
                       "process_start_time_seconds",
                   }));
}

TEST(MetricsTest, ConcurrentRecordingLosesNothing) {
  constexpr int kThreads = 8, kCalls = 10'000;
  Metrics metrics(DefaultOptions());
  const std::vector<absl::Duration> waits = {absl::Microseconds(5),
                                             absl::Microseconds(5)};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        metrics.RequestStarted();
        metrics.OnBatch(2, InModel(absl::Microseconds(40)), waits);
        metrics.RequestFinished(absl::StatusCode::kOk, absl::Microseconds(80));
      }
    });
  }
  for (auto& thread : threads) thread.join();

  Samples samples = Scrape(metrics);
  constexpr double kTotal = double{kThreads} * kCalls;
  EXPECT_EQ(samples[Requests("OK")], kTotal);
  EXPECT_EQ(samples[Series("rnn_request_duration_seconds_count")], kTotal);
  EXPECT_EQ(samples[Bucket("rnn_request_duration_seconds", "0.0001")], kTotal);
  EXPECT_EQ(samples[Series("rnn_compute_duration_seconds_count")], kTotal);
  EXPECT_EQ(samples[Series("rnn_queue_duration_seconds_count")], 2 * kTotal);
  EXPECT_EQ(samples[Series("rnn_batch_size_sum")], 2 * kTotal);
  EXPECT_EQ(samples[Series("rnn_sequences_total")], 2 * kTotal);
  EXPECT_EQ(samples["rnn_inflight_requests"], 0);
}

TEST(MetricsTest, StatisticsAreTritonsViewOfTheSameRecording) {
  Metrics metrics(DefaultOptions());
  EXPECT_EQ(metrics.GetStatistics().last_inference_ms, 0);
  for (int i = 0; i < 3; ++i) metrics.RequestStarted();
  metrics.RequestFinished(absl::StatusCode::kOk, absl::Microseconds(100));
  metrics.RequestFinished(absl::StatusCode::kOk, absl::Microseconds(300));
  metrics.RequestFinished(absl::StatusCode::kUnavailable,
                          absl::Microseconds(7));
  const absl::Time before = absl::Now();
  // Two slices in a batch of 5: each slice is charged the batch's phases.
  metrics.OnBatch(
      5, {absl::Nanoseconds(10), absl::Nanoseconds(200), absl::Nanoseconds(30)},
      {absl::Microseconds(4), absl::Microseconds(6)});
  metrics.OnBatch(1, InModel(absl::Nanoseconds(50)), {absl::Microseconds(1)});
  metrics.OnBatch(5, InModel(absl::Nanoseconds(150)), {absl::Microseconds(2)});

  const Metrics::Statistics stats = metrics.GetStatistics();
  EXPECT_EQ(stats.inference_count, 11u);
  EXPECT_EQ(stats.execution_count, 3u);
  EXPECT_GE(stats.last_inference_ms, absl::ToUnixMillis(before));
  EXPECT_LE(stats.last_inference_ms, absl::ToUnixMillis(absl::Now()));
  EXPECT_EQ(stats.success.count, 2u);
  EXPECT_EQ(stats.success.ns, 400'000u);
  EXPECT_EQ(stats.fail.count, 1u);
  EXPECT_EQ(stats.fail.ns, 7'000u);
  EXPECT_EQ(stats.queue.count, 4u);
  EXPECT_EQ(stats.queue.ns, 13'000u);
  EXPECT_EQ(stats.compute_input.count, 4u);
  EXPECT_EQ(stats.compute_input.ns, 2u * 10);
  EXPECT_EQ(stats.compute_infer.ns, 2u * 200 + 50 + 150);
  EXPECT_EQ(stats.compute_output.ns, 2u * 30);
  ASSERT_EQ(stats.batch_sizes.size(), 2u);
  EXPECT_EQ(stats.batch_sizes[0].batch_size, 1u);
  EXPECT_EQ(stats.batch_sizes[0].compute_infer.count, 1u);
  EXPECT_EQ(stats.batch_sizes[0].compute_infer.ns, 50u);
  EXPECT_EQ(stats.batch_sizes[1].batch_size, 5u);
  EXPECT_EQ(stats.batch_sizes[1].compute_input.count, 2u);
  EXPECT_EQ(stats.batch_sizes[1].compute_input.ns, 10u);
  EXPECT_EQ(stats.batch_sizes[1].compute_infer.ns, 350u);
  EXPECT_EQ(stats.batch_sizes[1].compute_output.ns, 30u);

  // The same figures as /metrics exports.
  Samples samples = Scrape(metrics);
  EXPECT_EQ(samples[Series("rnn_sequences_total")], 11);
  EXPECT_EQ(samples[Series("rnn_batch_size_count")], 3);
  EXPECT_EQ(samples[Requests("OK")], 2);
  EXPECT_DOUBLE_EQ(samples[Series("rnn_request_duration_seconds_sum")], 407e-6);
  EXPECT_DOUBLE_EQ(samples[Series("rnn_compute_duration_seconds_sum")], 440e-9);
  EXPECT_DOUBLE_EQ(samples[Series("rnn_last_inference_timestamp_seconds")],
                   stats.last_inference_ms / 1000.0);
}

}  // namespace
}  // namespace rnn
