#include "client/loadgen/server_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn::loadgen {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The message as a std::string, which gMock's string matchers need (Debian's
// absl::string_view is not std::string_view).
std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

// A scrape of rnn-server 0.1.0 (model "rnn", version 1) after three
// 4-sequence requests, taken with curl; only the HTTP head is cut off.
constexpr absl::string_view kRealScrape = R"txt(
# HELP exposer_transferred_bytes_total Transferred bytes to metrics services
# TYPE exposer_transferred_bytes_total counter
exposer_transferred_bytes_total 0
# HELP exposer_scrapes_total Number of times metrics were scraped
# TYPE exposer_scrapes_total counter
exposer_scrapes_total 0
# HELP exposer_request_latencies Latencies of serving scrape requests, in microseconds
# TYPE exposer_request_latencies summary
exposer_request_latencies_count 0
exposer_request_latencies_sum 0
exposer_request_latencies{quantile="0.5"} Nan
exposer_request_latencies{quantile="0.9"} Nan
exposer_request_latencies{quantile="0.99"} Nan
# HELP rnn_requests_total ModelInfer calls finished, by gRPC status code.
# TYPE rnn_requests_total counter
rnn_requests_total{model="rnn",version="1",code="OK"} 3
rnn_requests_total{model="rnn",version="1",code="CANCELLED"} 0
rnn_requests_total{model="rnn",version="1",code="UNKNOWN"} 0
rnn_requests_total{model="rnn",version="1",code="INVALID_ARGUMENT"} 0
rnn_requests_total{model="rnn",version="1",code="DEADLINE_EXCEEDED"} 0
rnn_requests_total{model="rnn",version="1",code="NOT_FOUND"} 0
rnn_requests_total{model="rnn",version="1",code="ALREADY_EXISTS"} 0
rnn_requests_total{model="rnn",version="1",code="PERMISSION_DENIED"} 0
rnn_requests_total{model="rnn",version="1",code="RESOURCE_EXHAUSTED"} 0
rnn_requests_total{model="rnn",version="1",code="FAILED_PRECONDITION"} 0
rnn_requests_total{model="rnn",version="1",code="ABORTED"} 0
rnn_requests_total{model="rnn",version="1",code="OUT_OF_RANGE"} 0
rnn_requests_total{model="rnn",version="1",code="UNIMPLEMENTED"} 0
rnn_requests_total{model="rnn",version="1",code="INTERNAL"} 0
rnn_requests_total{model="rnn",version="1",code="UNAVAILABLE"} 0
rnn_requests_total{model="rnn",version="1",code="DATA_LOSS"} 0
rnn_requests_total{model="rnn",version="1",code="UNAUTHENTICATED"} 0
# HELP rnn_request_duration_seconds Server-side time of a ModelInfer call, from arrival to response.
# TYPE rnn_request_duration_seconds histogram
rnn_request_duration_seconds_count{model="rnn",version="1"} 3
rnn_request_duration_seconds_sum{model="rnn",version="1"} 0.00057538
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="2.5e-05"} 0
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="5e-05"} 0
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.0001"} 0
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.00025"} 2
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.0005"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.001"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.0025"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.005"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.01"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.025"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.05"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.1"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.25"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="0.5"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="1"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="2.5"} 3
rnn_request_duration_seconds_bucket{model="rnn",version="1",le="+Inf"} 3
# HELP rnn_queue_duration_seconds Time a request waited in the batcher's queue before its batch formed.
# TYPE rnn_queue_duration_seconds histogram
rnn_queue_duration_seconds_count{model="rnn",version="1"} 3
rnn_queue_duration_seconds_sum{model="rnn",version="1"} 9.0084e-05
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="2.5e-05"} 1
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="5e-05"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.0001"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.00025"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.0005"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.001"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.0025"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.005"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.01"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.025"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.05"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.1"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.25"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="0.5"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="1"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="2.5"} 3
rnn_queue_duration_seconds_bucket{model="rnn",version="1",le="+Inf"} 3
# HELP rnn_compute_duration_seconds Time the model spent computing one batch.
# TYPE rnn_compute_duration_seconds histogram
rnn_compute_duration_seconds_count{model="rnn",version="1"} 3
rnn_compute_duration_seconds_sum{model="rnn",version="1"} 0.000430858
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="2.5e-05"} 0
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="5e-05"} 0
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.0001"} 0
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.00025"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.0005"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.001"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.0025"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.005"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.01"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.025"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.05"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.1"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.25"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="0.5"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="1"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="2.5"} 3
rnn_compute_duration_seconds_bucket{model="rnn",version="1",le="+Inf"} 3
# HELP rnn_batch_size Rows (sequences) per executed batch.
# TYPE rnn_batch_size histogram
rnn_batch_size_count{model="rnn",version="1"} 3
rnn_batch_size_sum{model="rnn",version="1"} 12
rnn_batch_size_bucket{model="rnn",version="1",le="1"} 0
rnn_batch_size_bucket{model="rnn",version="1",le="2"} 0
rnn_batch_size_bucket{model="rnn",version="1",le="4"} 3
rnn_batch_size_bucket{model="rnn",version="1",le="8"} 3
rnn_batch_size_bucket{model="rnn",version="1",le="16"} 3
rnn_batch_size_bucket{model="rnn",version="1",le="32"} 3
rnn_batch_size_bucket{model="rnn",version="1",le="64"} 3
rnn_batch_size_bucket{model="rnn",version="1",le="+Inf"} 3
# HELP rnn_sequences_total Sequences inferred (rows of executed batches).
# TYPE rnn_sequences_total counter
rnn_sequences_total{model="rnn",version="1"} 12
# HELP rnn_queue_depth Rows waiting in the batcher's queue.
# TYPE rnn_queue_depth gauge
rnn_queue_depth{model="rnn",version="1"} 0
# HELP rnn_inflight_requests ModelInfer calls in the server: arrived, not yet answered.
# TYPE rnn_inflight_requests gauge
rnn_inflight_requests 0
# HELP rnn_model_ready 1 if the model is loaded and serving, else 0.
# TYPE rnn_model_ready gauge
rnn_model_ready{model="rnn",version="1"} 1
# HELP rnn_build_info Always 1; labels give the server, gRPC and oneDNN versions.
# TYPE rnn_build_info gauge
rnn_build_info{version="0.1.0",grpc="1.51.1",onednn="2.6.3"} 1
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 0.06
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 13
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 20000
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 1467351040
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 45871104
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1795675656
)txt";

// ---------------------------------------------------------------------------
// ParseHttpUrl

struct GoodUrl {
  absl::string_view url;
  absl::string_view host;
  int port;
  absl::string_view path;
};

TEST(ParseHttpUrlTest, AcceptsHostPortAndPath) {
  const GoodUrl cases[] = {
      {"http://127.0.0.1:8002/metrics", "127.0.0.1", 8002, "/metrics"},
      {"http://localhost/metrics", "localhost", 80, "/metrics"},
      {"http://metrics.example.com", "metrics.example.com", 80, "/"},
      {"HTTP://Host:1/", "Host", 1, "/"},
      {"http://[::1]:8002/metrics", "::1", 8002, "/metrics"},
      {"http://[::1]", "::1", 80, "/"},
      {"http://h:65535/a/b?x=1&y=2#top", "h", 65535, "/a/b?x=1&y=2"},
      {"http://h:8002?x=1", "h", 8002, "/?x=1"},
      {"http://h#frag", "h", 80, "/"},
  };
  for (const GoodUrl& c : cases) {
    SCOPED_TRACE(c.url);
    absl::StatusOr<HttpUrl> url = ParseHttpUrl(c.url);
    ASSERT_TRUE(url.ok()) << url.status();
    EXPECT_EQ(url->host, c.host);
    EXPECT_EQ(url->port, c.port);
    EXPECT_EQ(url->path, c.path);
  }
}

struct BadUrl {
  absl::string_view url;
  absl::string_view message;  // Part of the error message.
};

TEST(ParseHttpUrlTest, RejectsBadUrlsSayingWhy) {
  const BadUrl cases[] = {
      {"https://h:8002/metrics", "https is not supported"},
      {"h:8002/metrics", "expected http://host[:port][/path]"},
      {"ftp://h/metrics", "expected http://"},
      {"", "expected http://"},
      {"http://", "empty host"},
      {"http:///metrics", "empty host"},
      {"http://:8002/metrics", "empty host"},
      {"http://[]:8002/", "empty host"},
      {"http://h:/metrics", "empty port"},
      {"http://h:0/", "1 to 65535"},
      {"http://h:65536/", "1 to 65535"},
      {"http://h:99999999999999999999/", "1 to 65535"},
      {"http://h:-1/", "1 to 65535"},
      {"http://h:+80/", "1 to 65535"},
      {"http://h:80a/", "1 to 65535"},
      {"http://::1:8002/", "needs brackets"},
      {"http://[::1/metrics", "no ']'"},
      {"http://[::1]8002/", "expected ':port' after ']'"},
      {"http://user@h:8002/", "user info"},
  };
  for (const BadUrl& c : cases) {
    SCOPED_TRACE(c.url);
    absl::StatusOr<HttpUrl> url = ParseHttpUrl(c.url);
    EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(url.status()), HasSubstr(c.message));
  }
}

// ---------------------------------------------------------------------------
// ParseMetrics

TEST(ParseMetricsTest, ReadsRealScrape) {
  absl::StatusOr<MetricsSnapshot> s = ParseMetrics(kRealScrape, "rnn");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->request_duration_s.sum, DoubleEq(0.00057538));
  EXPECT_THAT(s->request_duration_s.count, DoubleEq(3));
  EXPECT_THAT(s->queue_duration_s.sum, DoubleEq(9.0084e-05));
  EXPECT_THAT(s->queue_duration_s.count, DoubleEq(3));
  EXPECT_THAT(s->compute_duration_s.sum, DoubleEq(0.000430858));
  EXPECT_THAT(s->compute_duration_s.count, DoubleEq(3));
  EXPECT_THAT(s->batch_size.sum, DoubleEq(12));
  EXPECT_THAT(s->batch_size.count, DoubleEq(3));
  EXPECT_THAT(s->requests_ok, DoubleEq(3));
  EXPECT_THAT(s->sequences, DoubleEq(12));
  EXPECT_TRUE(s->has_rnn_metrics);
  EXPECT_THAT(s->models, ElementsAre("rnn"));
}

TEST(ParseMetricsTest, EmptyModelCountsTheRealScrapeToo) {
  absl::StatusOr<MetricsSnapshot> s = ParseMetrics(kRealScrape, "");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->requests_ok, DoubleEq(3));
  EXPECT_THAT(s->sequences, DoubleEq(12));
}

// Lines a real page could hold that the scrape above does not: other models,
// several versions, escapes, exponents, timestamps, odd spacing, CRLF.
constexpr absl::string_view kTrickyPage =
    "# HELP rnn_sequences_total Sequences \"inferred\" \\ here.\n"
    "  # an indented comment\n"
    "\n"
    "rnn_sequences_total{model=\"rnn\",version=\"1\"} 1e3\n"
    "rnn_sequences_total{version=\"2\",model=\"rnn\",} 2.5E+2 1700000000000\n"
    "rnn_sequences_total{model=\"rnn2\",version=\"1\"} 7\n"
    "rnn_sequences_total{model=\"rnn\\\"\",version=\"1\"} 11\n"
    "rnn_sequences_total{model=\"x\",note=\"model=\\\"rnn\\\"\"} 13\n"
    "rnn_sequences_total{version=\"1\"} 17\n"
    "rnn_requests_total{model=\"rnn\",version=\"1\",code=\"OK\"} 40\r\n"
    "rnn_requests_total{model=\"rnn\",version=\"2\",code=\"OK\"}\t2\t-5\n"
    "rnn_requests_total{model=\"rnn\",version=\"1\",code=\"CANCELLED\"} 9\n"
    "rnn_requests_total{model=\"rnn2\",version=\"1\",code=\"OK\"} 100\n"
    "rnn_queue_duration_seconds_sum{ model = \"rnn\" , version=\"1\" } "
    "1.5e-3\n"
    "rnn_queue_duration_seconds_count{model=\"rnn\",version=\"1\"} 15\n"
    "rnn_queue_duration_seconds_bucket{model=\"rnn\",version=\"1\","
    "le=\"+Inf\"} 15\n"
    "rnn_queue_duration_seconds_sum{model=\"rnn2\",version=\"1\"} 9\n"
    "rnn_queue_duration_seconds_count{model=\"rnn2\",version=\"1\"} 9\n"
    "rnn_batch_size_sum{model=\"rnn\",help=\"a } b, c\\\\\"} 64\n"
    "rnn_batch_size_count{model=\"rnn\",help=\"line\\nbreak\"} 2\n"
    "rnn_inflight_requests 3\n"
    "rnn_queue_depth{model=\"rnn\",version=\"1\"} NaN\n"
    "other_metric{model=\"rnn\"} +Inf\n"
    "other_summary{quantile=\"0.5\"} Nan\n"
    "recording:rule_total -Inf\n";

TEST(ParseMetricsTest, CountsOnlyTheModelsSeriesAndSumsVersions) {
  absl::StatusOr<MetricsSnapshot> s = ParseMetrics(kTrickyPage, "rnn");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->sequences, DoubleEq(1000 + 250));
  EXPECT_THAT(s->requests_ok, DoubleEq(40 + 2));
  EXPECT_THAT(s->queue_duration_s.sum, DoubleEq(0.0015));
  EXPECT_THAT(s->queue_duration_s.count, DoubleEq(15));
  EXPECT_THAT(s->batch_size.sum, DoubleEq(64));
  EXPECT_THAT(s->batch_size.count, DoubleEq(2));
  EXPECT_THAT(s->request_duration_s.count, DoubleEq(0));
  EXPECT_TRUE(s->has_rnn_metrics);
  EXPECT_THAT(s->models, ElementsAre("rnn", "rnn\"", "rnn2", "x"));
}

TEST(ParseMetricsTest, EmptyModelSumsEveryModel) {
  absl::StatusOr<MetricsSnapshot> s = ParseMetrics(kTrickyPage, "");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->sequences, DoubleEq(1000 + 250 + 7 + 11 + 13 + 17));
  EXPECT_THAT(s->requests_ok, DoubleEq(40 + 2 + 100));
  EXPECT_THAT(s->queue_duration_s.count, DoubleEq(15 + 9));
}

TEST(ParseMetricsTest, PageWithoutRnnMetricsIsNotAnError) {
  absl::StatusOr<MetricsSnapshot> s =
      ParseMetrics("# TYPE up gauge\nup 1\nprocess_open_fds 13\n", "rnn");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->has_rnn_metrics);
  EXPECT_TRUE(s->models.empty());
  EXPECT_THAT(s->sequences, DoubleEq(0));
}

struct BadLine {
  absl::string_view line;
  absl::string_view message;  // Part of the error message.
};

TEST(ParseMetricsTest, RejectsMalformedLinesByNumber) {
  const BadLine cases[] = {
      {"<html><body>Hello</body></html>", "expected a metric name"},
      {"rnn_x{model=\"rnn} 1", "unterminated value of label model"},
      {"rnn_x{model=rnn} 1", "expected '\"' opening label model"},
      {"rnn_x{model \"rnn\"} 1", "expected '=' after label model"},
      {"rnn_x{model=\"rnn\" version=\"1\"} 1", "expected ',' or '}'"},
      {"rnn_x{model=\"a\\q\"} 1", "bad escape in label model"},
      {"rnn_x{,} 1", "expected a label name or '}'"},
      {"rnn_x{1a=\"b\"} 1", "expected a label name or '}'"},
      {"rnn_x", "no value"},
      {"rnn_x{model=\"rnn\"}", "no value"},
      {"rnn_x one", "bad value \"one\""},
      {"rnn_x 1 1.5", "bad timestamp \"1.5\""},
      {"rnn_x 1 2 3", "text after the timestamp"},
      {"rnn_sequences_total{model=\"rnn\"} +Inf", "is not finite"},
      {"rnn_batch_size_sum NaN", "is not finite"},
  };
  for (const BadLine& c : cases) {
    SCOPED_TRACE(c.line);
    absl::StatusOr<MetricsSnapshot> s =
        ParseMetrics(absl::StrCat("# TYPE rnn_x counter\n", c.line, "\n"), "");
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s.status()), StartsWith("line 2"));
    EXPECT_THAT(Message(s.status()), HasSubstr(c.message));
  }
}

// ---------------------------------------------------------------------------
// Breakdown

MetricsSnapshot Snapshot(double scale) {
  MetricsSnapshot s;
  s.queue_duration_s = {0.002 * scale, 20 * scale};
  s.compute_duration_s = {0.004 * scale, 10 * scale};
  s.request_duration_s = {0.006 * scale, 20 * scale};
  s.batch_size = {40 * scale, 10 * scale};
  s.requests_ok = 20 * scale;
  s.sequences = 40 * scale;
  return s;
}

TEST(BreakdownTest, MeansOfTheIncreases) {
  MetricsSnapshot before = Snapshot(1);
  MetricsSnapshot after = before;
  // 100 requests queued 0.010 s in all, in 50 batches of 4 rows computed in
  // 0.025 s in all; 100 OK requests took 0.030 s in all.
  after.queue_duration_s = {0.002 + 0.010, 20 + 100};
  after.compute_duration_s = {0.004 + 0.025, 10 + 50};
  after.request_duration_s = {0.006 + 0.030, 20 + 100};
  after.batch_size = {40 + 200, 10 + 50};
  after.requests_ok = 20 + 100;
  after.sequences = 40 + 200;

  const ServerBreakdown b = Breakdown(before, after);
  EXPECT_NEAR(b.queue_us, 100, 1e-9);
  EXPECT_NEAR(b.compute_us, 500, 1e-9);
  EXPECT_NEAR(b.request_us, 300, 1e-9);
  EXPECT_NEAR(b.batch_size, 4, 1e-12);
  EXPECT_EQ(b.requests_ok, 100);
  EXPECT_EQ(b.sequences, 200);
}

TEST(BreakdownTest, NothingInBetweenGivesZeros) {
  const MetricsSnapshot s = Snapshot(3);
  const ServerBreakdown b = Breakdown(s, s);
  EXPECT_EQ(b.queue_us, 0);
  EXPECT_EQ(b.compute_us, 0);
  EXPECT_EQ(b.request_us, 0);
  EXPECT_EQ(b.batch_size, 0);
  EXPECT_EQ(b.requests_ok, 0);
  EXPECT_EQ(b.sequences, 0);

  const ServerBreakdown empty = Breakdown(MetricsSnapshot(), MetricsSnapshot());
  EXPECT_EQ(empty.queue_us, 0);
  EXPECT_EQ(empty.batch_size, 0);
}

TEST(BreakdownTest, RestartedServerCountsFromZero) {
  // `after` is from a server that restarted and has since served 20 requests
  // (Snapshot(1)); `before` is from the old one, further along.
  const ServerBreakdown b = Breakdown(Snapshot(5), Snapshot(1));
  EXPECT_NEAR(b.queue_us, 100, 1e-9);    // 0.002 s / 20
  EXPECT_NEAR(b.compute_us, 400, 1e-9);  // 0.004 s / 10
  EXPECT_NEAR(b.request_us, 300, 1e-9);  // 0.006 s / 20
  EXPECT_NEAR(b.batch_size, 4, 1e-12);   // 40 / 10
  EXPECT_EQ(b.requests_ok, 20);
  EXPECT_EQ(b.sequences, 40);
}

TEST(BreakdownTest, OfTwoParsedPages) {
  absl::StatusOr<MetricsSnapshot> before = ParseMetrics(kRealScrape, "rnn");
  absl::StatusOr<MetricsSnapshot> after = ParseMetrics(
      "rnn_queue_duration_seconds_sum{model=\"rnn\",version=\"1\"} "
      "0.010090084\n"
      "rnn_queue_duration_seconds_count{model=\"rnn\",version=\"1\"} 103\n"
      "rnn_requests_total{model=\"rnn\",version=\"1\",code=\"OK\"} 103\n"
      "rnn_sequences_total{model=\"rnn\",version=\"1\"} 412\n",
      "rnn");
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(after.ok()) << after.status();
  const ServerBreakdown b = Breakdown(*before, *after);
  EXPECT_NEAR(b.queue_us, 100, 1e-6);
  EXPECT_EQ(b.requests_ok, 100);
  EXPECT_EQ(b.sequences, 400);
}

// ---------------------------------------------------------------------------
// HttpGet and ScrapeMetrics, against a server run by the test.

// A TCP socket bound to port 0 of the loopback address of `family`; -1 when
// that family has no loopback here.
int BindLoopback(int family, int* port) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_storage address{};
  socklen_t length = 0;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&address);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    length = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&address);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    length = sizeof(*a);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(family == AF_INET6
                    ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  return fd;
}

// Serves one connection, in a thread: reads the request head, then acts as
// `Mode` says. Reading to the end of the stream before closing lets the
// client close first, so that no reset can overtake the answer.
class OneShotServer {
 public:
  enum class Mode {
    kAnswerAndClose,  // Send `response`, then end the stream.
    kAnswerAndHold,   // Send `response`, then keep the stream open.
    kNeverAnswer,     // Send nothing.
  };

  // Null when `family` has no loopback address here.
  static std::unique_ptr<OneShotServer> Start(std::string response, Mode mode,
                                              int family = AF_INET) {
    int port = 0;
    const int fd = BindLoopback(family, &port);
    if (fd < 0) return nullptr;
    if (listen(fd, 1) != 0) {
      close(fd);
      return nullptr;
    }
    return std::unique_ptr<OneShotServer>(
        new OneShotServer(fd, port, std::move(response), mode));
  }

  ~OneShotServer() {
    // Wakes accept() if no client ever came.
    shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
  }

  int port() const { return port_; }

  // What the client sent; waits for the connection to end.
  std::string request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  OneShotServer(int listen_fd, int port, std::string response, Mode mode)
      : listen_fd_(listen_fd),
        port_(port),
        response_(std::move(response)),
        mode_(mode),
        thread_([this] { Serve(); }) {}

  void Serve() {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    char buffer[4096];
    bool answered = false;
    for (;;) {
      if (!answered && mode_ != Mode::kNeverAnswer &&
          request_.find("\r\n\r\n") != std::string::npos) {
        answered = true;
        send(fd, response_.data(), response_.size(), MSG_NOSIGNAL);
        if (mode_ == Mode::kAnswerAndClose) shutdown(fd, SHUT_WR);
      }
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      request_.append(buffer, static_cast<size_t>(n));
    }
    close(fd);
  }

  const int listen_fd_;
  const int port_;
  const std::string response_;
  const Mode mode_;
  std::string request_;  // Written by thread_ only, read after joining it.
  std::thread thread_;
};

HttpUrl Loopback(int port, std::string path = "/metrics") {
  HttpUrl url;
  url.host = "127.0.0.1";
  url.port = port;
  url.path = std::move(path);
  return url;
}

constexpr absl::Duration kTimeout = absl::Seconds(10);

TEST(HttpGetTest, Returns200Body) {
  auto server = OneShotServer::Start(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
      "\r\nhello\nworld",
      OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), kTimeout);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello\nworld");

  const std::string request = server->request();
  EXPECT_THAT(request, StartsWith("GET /metrics HTTP/1.0\r\n"));
  EXPECT_THAT(request, HasSubstr(absl::StrCat(
                           "\r\nHost: 127.0.0.1:", server->port(), "\r\n")));
  EXPECT_THAT(request, HasSubstr("\r\nConnection: close\r\n"));
}

TEST(HttpGetTest, BodyRunsToTheEndWithoutContentLength) {
  auto server = OneShotServer::Start("HTTP/1.0 200 OK\r\n\r\nall of it",
                                     OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), kTimeout);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "all of it");
}

TEST(HttpGetTest, StopsAtContentLengthOnAConnectionLeftOpen) {
  // Were the client to wait for the end of the stream, it would time out.
  auto server =
      OneShotServer::Start("HTTP/1.1 200 OK\r\nconTENT-length:  4 \r\n\r\nbody",
                           OneShotServer::Mode::kAnswerAndHold);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), kTimeout);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "body");
}

TEST(HttpGetTest, Answers404AsNotFound) {
  auto server = OneShotServer::Start(
      "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
      OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port(), "/nope"), kTimeout);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(body.status()), HasSubstr("HTTP/1.1 404 Not Found"));
  EXPECT_THAT(Message(body.status()),
              HasSubstr(absl::StrCat("127.0.0.1:", server->port(), "/nope")));
}

TEST(HttpGetTest, OtherStatusesAreFailedPrecondition) {
  auto server = OneShotServer::Start("HTTP/1.1 503 Service Unavailable\r\n\r\n",
                                     OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), kTimeout);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(body.status()),
              HasSubstr("HTTP/1.1 503 Service Unavailable"));
}

TEST(HttpGetTest, ShortBodyIsUnavailable) {
  auto server = OneShotServer::Start(
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
      OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), kTimeout);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(body.status()), HasSubstr("after 9 of 100 body bytes"));
}

TEST(HttpGetTest, NonHttpAnswerIsFailedPrecondition) {
  auto server = OneShotServer::Start("SSH-2.0-OpenSSH_9.2\r\n",
                                     OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), kTimeout);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(body.status()), HasSubstr("not an HTTP response"));
}

TEST(HttpGetTest, ChunkedAnswerIsRefused) {
  auto server = OneShotServer::Start(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n"
      "\r\n",
      OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), kTimeout);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(body.status()), HasSubstr("chunked"));
}

TEST(HttpGetTest, RefusedConnectionIsUnavailableNamingHostPort) {
  // Bound but not listening: the port stays ours, and connecting is refused.
  int port = 0;
  const int fd = BindLoopback(AF_INET, &port);
  ASSERT_GE(fd, 0);
  absl::StatusOr<std::string> body = HttpGet(Loopback(port), kTimeout);
  close(fd);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(body.status()),
              HasSubstr(absl::StrCat("127.0.0.1:", port)));
  EXPECT_THAT(Message(body.status()), HasSubstr("refused"));
}

TEST(HttpGetTest, SilentServerTimesOut) {
  auto server = OneShotServer::Start("", OneShotServer::Mode::kNeverAnswer);
  ASSERT_NE(server, nullptr);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> body =
      HttpGet(Loopback(server->port()), absl::Milliseconds(200));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(body.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Message(body.status()), HasSubstr("200ms"));
  EXPECT_GE(elapsed, std::chrono::milliseconds(200));
  EXPECT_LT(elapsed, std::chrono::milliseconds(900));
  // The request had been sent before the wait.
  EXPECT_THAT(server->request(), StartsWith("GET /metrics HTTP/1.0\r\n"));
}

TEST(HttpGetTest, SpeaksIpv6) {
  auto server =
      OneShotServer::Start("HTTP/1.1 200 OK\r\n\r\nsix",
                           OneShotServer::Mode::kAnswerAndClose, AF_INET6);
  if (server == nullptr) GTEST_SKIP() << "no IPv6 loopback here";
  absl::StatusOr<HttpUrl> url =
      ParseHttpUrl(absl::StrCat("http://[::1]:", server->port(), "/metrics"));
  ASSERT_TRUE(url.ok()) << url.status();
  absl::StatusOr<std::string> body = HttpGet(*url, kTimeout);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "six");
  EXPECT_THAT(
      server->request(),
      HasSubstr(absl::StrCat("\r\nHost: [::1]:", server->port(), "\r\n")));
}

std::string Http200(absl::string_view body) {
  return absl::StrCat(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: ",
      body.size(), "\r\n\r\n", body);
}

TEST(ScrapeMetricsTest, ReadsAnRnnServersPage) {
  auto server = OneShotServer::Start(Http200(kRealScrape),
                                     OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<MetricsSnapshot> s =
      ScrapeMetrics(Loopback(server->port()), "rnn", kTimeout);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->queue_duration_s.sum, DoubleEq(9.0084e-05));
  EXPECT_THAT(s->requests_ok, DoubleEq(3));
  EXPECT_THAT(s->sequences, DoubleEq(12));
}

TEST(ScrapeMetricsTest, PageWithoutRnnMetricsIsFailedPrecondition) {
  auto server = OneShotServer::Start(Http200("# TYPE up gauge\nup 1\n"),
                                     OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<MetricsSnapshot> s =
      ScrapeMetrics(Loopback(server->port()), "rnn", kTimeout);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s.status()), HasSubstr("no rnn_* metrics"));
}

TEST(ScrapeMetricsTest, AnotherModelIsNotFoundListingTheServers) {
  auto server = OneShotServer::Start(Http200(kRealScrape),
                                     OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<MetricsSnapshot> s =
      ScrapeMetrics(Loopback(server->port()), "lstm", kTimeout);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s.status()),
              HasSubstr("no metrics for model \"lstm\"; the server has: rnn"));
}

TEST(ScrapeMetricsTest, HtmlPageIsInvalidArgumentNamingTheUrl) {
  auto server = OneShotServer::Start(Http200("<html>\n<p>hi</p>\n</html>\n"),
                                     OneShotServer::Mode::kAnswerAndClose);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<MetricsSnapshot> s =
      ScrapeMetrics(Loopback(server->port()), "rnn", kTimeout);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s.status()),
              StartsWith(absl::StrCat("http://127.0.0.1:", server->port(),
                                      "/metrics: line 1")));
}

}  // namespace
}  // namespace rnn::loadgen
