#include "server/metrics/metrics_server.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics.h"
#include "server/metrics/testing/http_get.h"

namespace rnn {
namespace {

using ::rnn::testing::HttpGet;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MetricsServerTest, ServesTheRegistryAtMetrics) {
  Metrics metrics(Metrics::Options{});
  metrics.RequestStarted();
  metrics.RequestFinished(absl::StatusCode::kOk, absl::Milliseconds(1));
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);

  absl::StatusOr<std::string> response = HttpGet((*server)->port(), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(*response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(*response, HasSubstr("\r\n\r\n# HELP "));
  EXPECT_THAT(*response,
              HasSubstr("rnn_requests_total{model=\"rnn\",version=\"1\","
                        "code=\"OK\"} 1\n"));
  EXPECT_THAT(*response, HasSubstr("\nprocess_resident_memory_bytes "));
}

TEST(MetricsServerTest, SlowClientsDoNotStarveScrapes) {
  Metrics metrics(Metrics::Options{});
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  // Fewer stalled requests than workers: scrapes go on beside them.
  std::vector<int> slow;
  for (int i = 0; i < MetricsServer::kWorkers / 2; ++i) {
    slow.push_back(rnn::testing::OpenSlowRequest(port));
    ASSERT_GE(slow.back(), 0);
  }
  for (int i = 0; i < 7; ++i) {
    absl::StatusOr<std::string> response =
        HttpGet(port, "/metrics", absl::Seconds(1));
    ASSERT_TRUE(response.ok()) << "scrape " << i << ": " << response.status();
    EXPECT_THAT(*response, StartsWith("HTTP/1.1 200 OK\r\n"));
  }
  // More stalled requests than workers: the timeout frees the workers, and
  // a scrape gets through within it.
  for (int i = 0; i < MetricsServer::kWorkers; ++i) {
    slow.push_back(rnn::testing::OpenSlowRequest(port));
  }
  absl::StatusOr<std::string> response = HttpGet(
      port, "/metrics",
      absl::Milliseconds(MetricsServer::kRequestTimeoutMs) + absl::Seconds(2));
  EXPECT_TRUE(response.ok()) << response.status();
  for (int fd : slow) close(fd);
}

TEST(MetricsServerTest, TakenPortIsUnavailableNamingTheAddress) {
  Metrics metrics(Metrics::Options{});
  absl::StatusOr<std::unique_ptr<MetricsServer>> first =
      MetricsServer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->port());

  absl::StatusOr<std::unique_ptr<MetricsServer>> second =
      MetricsServer::Start(address, metrics.registry());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(address));
  // The first server is unharmed.
  absl::StatusOr<std::string> response = HttpGet((*first)->port(), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(*response, StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST(MetricsServerTest, BadAddressIsUnavailable) {
  Metrics metrics(Metrics::Options{});
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("not an address", metrics.registry());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(server.status().message(), HasSubstr("not an address"));
}

TEST(MetricsServerTest, NullRegistryIsInvalid) {
  EXPECT_EQ(MetricsServer::Start("127.0.0.1:0", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rnn
