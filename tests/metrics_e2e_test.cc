// Metrics end to end: known traffic through the real server and client, then
// a real scrape of /metrics over HTTP, whose numbers must agree exactly.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "client/inference_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/testing/safetensors_builder.h"
#include "server/metrics/testing/http_get.h"
#include "server/rnn_server.h"
#include "server/testing/bad_requests.h"
#include "tests/testing/client_helpers.h"

namespace rnn {
namespace {

using ::rnn::testing::HttpGet;
using ::rnn::testing::RandomInput;

constexpr size_t kPerRow = 20 * 100;

// Sample name with labels (as printed) -> value, from one scrape.
std::map<std::string, double> Scrape(int port) {
  absl::StatusOr<std::string> response = HttpGet(port, "/metrics");
  EXPECT_TRUE(response.ok()) << response.status();
  std::map<std::string, double> samples;
  if (!response.ok()) return samples;
  const size_t body = response->find("\r\n\r\n");
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(*response).substr(body + 4), '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space != absl::string_view::npos &&
        absl::SimpleAtod(line.substr(space + 1), &value)) {
      samples[std::string(line.substr(0, space))] = value;
    }
  }
  return samples;
}

std::string Rnn(const std::string& name, const std::string& extra = "") {
  return absl::StrCat(name, "{model=\"rnn\",version=\"1\"", extra, "}");
}

std::string Code(const std::string& code) {
  return Rnn("rnn_requests_total", absl::StrCat(",code=\"", code, "\""));
}

TEST(MetricsEndToEndTest, ScrapeAgreesWithTheTrafficSent) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.metrics_port = 0;
  options.model_path = RNN_SOURCE_DIR "/model/rnn.safetensors";
  options.batching.queue.max_queue_size = 64;
  auto server = RnnServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = testing::LoopbackClient((*server)->grpc_port());

  int64_t ok = 0, ok_rows = 0, refused = 0;
  for (int rows : {1, 7, 64}) {
    const std::vector<float> data = RandomInput(rows, kPerRow, rows);
    InferInput in;
    in.data = data;
    in.shape = {rows, 20, 100};
    ASSERT_TRUE(client->Infer(in).ok());
    ++ok;
    ok_rows += rows;
  }
  const auto bad = testing::BadRequests((*server)->signature());
  int invalid = 0, not_found = 0;
  for (const auto& b : bad) {
    EXPECT_FALSE(client->InferRaw(b.request).ok());
    invalid += b.code == absl::StatusCode::kInvalidArgument;
    not_found += b.code == absl::StatusCode::kNotFound;
  }
  // Bursts of 7-sequence requests against a 64-sequence queue until some
  // are refused as queue-full (the first burst practically always is).
  for (int burst = 0; burst < 5 && refused == 0; ++burst) {
    constexpr int kBurst = 100;
    const std::vector<float> data = RandomInput(7, kPerRow, 100 + burst);
    std::vector<InferInput> calls(kBurst);
    for (InferInput& in : calls) {
      in.data = data;
      in.shape = {7, 20, 100};
    }
    const std::vector<absl::StatusOr<InferOutput>> out =
        testing::InferAllAtOnce(*client, calls);
    for (int i = 0; i < kBurst; ++i) {
      if (out[i].ok()) {
        ++ok;
        ok_rows += 7;
      } else {
        ASSERT_EQ(out[i].status().code(), absl::StatusCode::kUnavailable);
        ++refused;
      }
    }
  }
  ASSERT_GT(refused, 0);

  std::map<std::string, double> m = Scrape((*server)->metrics_port());
  const int64_t total = ok + refused + invalid + not_found;
  EXPECT_EQ(m[Code("OK")], ok);
  EXPECT_EQ(m[Code("UNAVAILABLE")], refused);
  EXPECT_EQ(m[Code("INVALID_ARGUMENT")], invalid);
  EXPECT_EQ(m[Code("NOT_FOUND")], not_found);
  EXPECT_EQ(m[Code("DEADLINE_EXCEEDED")], 0);
  EXPECT_EQ(m[Rnn("rnn_request_duration_seconds_count")], total);
  EXPECT_EQ(m[Rnn("rnn_request_duration_seconds_bucket", ",le=\"+Inf\"")],
            total);
  // Every accepted request here fits one batch: one queue wait each.
  EXPECT_EQ(m[Rnn("rnn_queue_duration_seconds_count")], ok);
  const Batcher::Stats stats = (*server)->batcher().stats();
  EXPECT_EQ(m[Rnn("rnn_sequences_total")], ok_rows);
  EXPECT_EQ(m[Rnn("rnn_batch_size_sum")], ok_rows);
  EXPECT_EQ(m[Rnn("rnn_batch_size_count")], stats.batches);
  EXPECT_EQ(m[Rnn("rnn_compute_duration_seconds_count")], stats.batches);
  EXPECT_EQ(m[Rnn("rnn_queue_depth")], 0);
  EXPECT_EQ(m["rnn_inflight_requests"], 0);
  EXPECT_EQ(m[Rnn("rnn_model_ready")], 1);
  EXPECT_GT(m["process_resident_memory_bytes"], 0);
  EXPECT_GT(m["process_open_fds"], 3);
  EXPECT_GT(m["process_start_time_seconds"], 1.7e9);
  bool build_info = false;
  for (const auto& [name, value] : m) {
    if (name.rfind("rnn_build_info{", 0) == 0) build_info = value == 1;
  }
  EXPECT_TRUE(build_info);

  // Draining turns the readiness gauge off.
  (*server)->Shutdown(absl::Seconds(5));
  EXPECT_EQ(Scrape((*server)->metrics_port())[Rnn("rnn_model_ready")], 0);
}

}  // namespace
}  // namespace rnn
