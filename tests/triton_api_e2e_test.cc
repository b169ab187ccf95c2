// Triton's model configuration, statistics and repository RPCs end to end:
// the real rnn-server (RnnServer, in process, on an ephemeral loopback port)
// called through the generated stub, its answers checked against the
// options it was started with, the traffic sent and a real scrape of
// /metrics; and every RPC it does not implement refused with a message.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/inference_client.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "model/testing/safetensors_builder.h"
#include "server/rnn_server.h"
#include "server/testing/bad_requests.h"
#include "tests/testing/client_helpers.h"
#include "tests/testing/stream_helpers.h"

namespace rnn {
namespace {

using ::rnn::testing::InferStream;
using ::rnn::testing::RandomInput;
using ::rnn::testing::RnnSeries;
using ::rnn::testing::ScrapeMetrics;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const std::string kModel = RNN_SOURCE_DIR "/model/rnn.safetensors";
constexpr size_t kPerRow = 20 * 100;

ServerOptions LoopbackOptions() {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.grpc_port = 0;
  o.metrics_port = -1;
  o.model_path = kModel;
  return o;
}

std::unique_ptr<RnnServer> StartOrDie(const ServerOptions& options) {
  absl::StatusOr<std::unique_ptr<RnnServer>> server = RnnServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) std::abort();
  return *std::move(server);
}

grpc::ClientContext* WithDeadline(grpc::ClientContext& context) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return &context;
}

grpc::Status GetConfig(inference::GRPCInferenceService::Stub& stub,
                       const std::string& name, const std::string& version,
                       inference::ModelConfigResponse& response) {
  grpc::ClientContext context;
  inference::ModelConfigRequest request;
  request.set_name(name);
  request.set_version(version);
  return stub.ModelConfig(WithDeadline(context), request, &response);
}

grpc::Status GetStatistics(inference::GRPCInferenceService::Stub& stub,
                           const std::string& name, const std::string& version,
                           inference::ModelStatisticsResponse& response) {
  grpc::ClientContext context;
  inference::ModelStatisticsRequest request;
  request.set_name(name);
  request.set_version(version);
  return stub.ModelStatistics(WithDeadline(context), request, &response);
}

// ModelConfig reports what the server was started with.
TEST(ModelConfigTest, ReportsTheServersOptions) {
  ServerOptions options = LoopbackOptions();
  options.sequence_length = 7;  // Overrides the weights file's 20.
  options.instances = 2;
  options.batching.queue.max_batch_size = 16;
  options.batching.queue.max_queue_delay = absl::Microseconds(250);
  options.batching.queue.max_queue_size = 100;
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());

  inference::ModelConfigResponse response;
  grpc::Status status = GetConfig(*stub, "rnn", "", response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const inference::ModelConfig& config = response.config();
  EXPECT_EQ(config.name(), "rnn");
  EXPECT_EQ(config.platform(), "onednn_rnn");
  EXPECT_EQ(config.max_batch_size(), 16);
  ASSERT_EQ(config.input_size(), 1);
  EXPECT_EQ(config.input(0).name(), "sequence");
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(config.input(0).dims(), ElementsAre(7, 100));
  EXPECT_FALSE(config.input(0).is_shape_tensor());
  EXPECT_FALSE(config.input(0).optional());
  ASSERT_EQ(config.output_size(), 1);
  EXPECT_EQ(config.output(0).name(), "probabilities");
  EXPECT_EQ(config.output(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(config.output(0).dims(), ElementsAre(10));
  EXPECT_FALSE(config.output(0).is_shape_tensor());
  ASSERT_EQ(config.scheduling_choice_case(),
            inference::ModelConfig::kDynamicBatching);
  EXPECT_FALSE(config.has_sequence_batching());
  EXPECT_EQ(config.dynamic_batching().max_queue_delay_microseconds(), 250u);
  EXPECT_EQ(config.dynamic_batching().default_queue_policy().max_queue_size(),
            100u);
  ASSERT_EQ(config.instance_group_size(), 1);
  EXPECT_EQ(config.instance_group(0).count(), 2);
  EXPECT_EQ(config.instance_group(0).kind(),
            inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_FALSE(config.model_transaction_policy().decoupled());
  EXPECT_FALSE(config.response_cache().enable());

  // The same answer for the explicit version; the names agree with
  // ModelMetadata, which perf_analyzer checks.
  inference::ModelConfigResponse v1;
  ASSERT_TRUE(GetConfig(*stub, "rnn", "1", v1).ok());
  EXPECT_EQ(v1.SerializeAsString(), response.SerializeAsString());
  auto client = testing::LoopbackClient(server->grpc_port());
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client->ModelMetadata("rnn");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->platform(), config.platform());
  EXPECT_EQ(metadata->inputs(0).name(), config.input(0).name());
  EXPECT_EQ(metadata->outputs(0).name(), config.output(0).name());
  EXPECT_THAT(metadata->inputs(0).shape(), ElementsAre(-1, 7, 100));
}

TEST(ModelConfigTest, DefaultsAndModelName) {
  ServerOptions options = LoopbackOptions();
  options.model_name = "classifier";
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  inference::ModelConfigResponse response;
  ASSERT_TRUE(GetConfig(*stub, "classifier", "1", response).ok());
  const inference::ModelConfig& config = response.config();
  const ServerOptions defaults;
  EXPECT_EQ(config.name(), "classifier");
  EXPECT_EQ(config.max_batch_size(), defaults.batching.queue.max_batch_size);
  EXPECT_THAT(config.input(0).dims(), ElementsAre(20, 100));
  EXPECT_EQ(config.dynamic_batching().max_queue_delay_microseconds(),
            static_cast<uint64_t>(absl::ToInt64Microseconds(
                defaults.batching.queue.max_queue_delay)));
  EXPECT_EQ(config.dynamic_batching().default_queue_policy().max_queue_size(),
            static_cast<uint64_t>(defaults.batching.queue.max_queue_size));
  EXPECT_EQ(config.instance_group(0).count(), 1);
}

TEST(ModelConfigTest, UnknownModelOrVersionIsNotFound) {
  auto server = StartOrDie(LoopbackOptions());
  auto stub = testing::LoopbackStub(server->grpc_port());
  for (const auto& [name, version] :
       std::vector<std::pair<std::string, std::string>>{
           {"lstm", ""}, {"lstm", "1"}, {"rnn", "2"}}) {
    inference::ModelConfigResponse response;
    const grpc::Status status = GetConfig(*stub, name, version, response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
        << "'" << name << "' '" << version << "'";
    EXPECT_FALSE(status.error_message().empty());
  }
}

// Parses a bucket's le label ("4", "+Inf") out of a scraped series name.
double UpperBound(const std::string& series) {
  const size_t at = series.find("le=\"");
  const std::string le =
      series.substr(at + 4, series.find('"', at + 4) - at - 4);
  if (le == "+Inf") return INFINITY;
  double bound = 0;
  EXPECT_TRUE(absl::SimpleAtod(le, &bound)) << series;
  return bound;
}

// The statistics after known traffic — unary calls of several sizes (one
// split over batches), concurrent single sequences, every bad request, and a
// stream of good and bad ones — agree with that traffic and, figure by
// figure, with the same moment's /metrics.
TEST(ModelStatisticsTest, AgreeWithTheTrafficAndWithMetrics) {
  ServerOptions options = LoopbackOptions();
  options.metrics_port = 0;
  options.batching.queue.max_batch_size = 8;
  options.batching.queue.max_queue_delay = absl::Microseconds(1000);
  const absl::Time start = absl::Now();
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  auto client = testing::LoopbackClient(server->grpc_port());

  // Before any inference: zeros, and no last inference.
  inference::ModelStatisticsResponse before;
  ASSERT_TRUE(GetStatistics(*stub, "rnn", "1", before).ok());
  ASSERT_EQ(before.model_stats_size(), 1);
  EXPECT_EQ(before.model_stats(0).inference_count(), 0u);
  EXPECT_EQ(before.model_stats(0).execution_count(), 0u);
  EXPECT_EQ(before.model_stats(0).last_inference(), 0u);
  EXPECT_EQ(before.model_stats(0).batch_stats_size(), 0);

  int64_t ok = 0, ok_rows = 0, failed = 0;
  for (int rows : {1, 3, 8, 20}) {
    const std::vector<float> data = RandomInput(rows, kPerRow, rows);
    InferInput in;
    in.data = data;
    in.shape = {rows, 20, 100};
    ASSERT_TRUE(client->Infer(in).ok());
    ++ok;
    ok_rows += rows;
  }
  std::vector<std::vector<float>> singles;
  for (int i = 0; i < 24; ++i) singles.push_back(RandomInput(1, kPerRow, i));
  std::vector<InferInput> calls(singles.size());
  for (size_t i = 0; i < singles.size(); ++i) {
    calls[i].data = singles[i];
    calls[i].shape = {1, 20, 100};
  }
  for (const auto& out : testing::InferAllAtOnce(*client, calls)) {
    ASSERT_TRUE(out.ok()) << out.status();
    ++ok;
    ++ok_rows;
  }
  const auto bad = testing::BadRequests(server->signature());
  for (const auto& b : bad) {
    ASSERT_FALSE(client->InferRaw(b.request).ok()) << b.name;
    ++failed;
  }
  {
    InferStream stream(*stub);
    for (int i = 0; i < 10; ++i) {
      const std::vector<float> data = RandomInput(1 + i % 4, kPerRow, 300 + i);
      InferInput in;
      in.data = data;
      in.shape = {1 + i % 4, 20, 100};
      in.id = absl::StrCat("s", i);
      ASSERT_TRUE(stream.Write(InferenceClient::BuildRequest(in)));
      ok_rows += 1 + i % 4;
      ++ok;
      if (i % 3 == 0) {
        ASSERT_TRUE(stream.Write(bad[i % bad.size()].request));
        ++failed;
      }
    }
    ASSERT_TRUE(stream.WritesDone());
    ASSERT_TRUE(stream.Finish().ok());
    ASSERT_EQ(stream.response_count(), static_cast<size_t>(10 + 4));
  }

  inference::ModelStatisticsResponse all;
  ASSERT_TRUE(GetStatistics(*stub, "", "", all).ok());
  std::map<std::string, double> m = ScrapeMetrics(server->metrics_port());
  const absl::Time end = absl::Now();
  ASSERT_EQ(all.model_stats_size(), 1);
  const inference::ModelStatistics& s = all.model_stats(0);
  EXPECT_EQ(s.name(), "rnn");
  EXPECT_EQ(s.version(), "1");
  // Other selections of the same model give the same figures.
  for (const auto& [name, version] :
       std::vector<std::pair<std::string, std::string>>{{"rnn", ""},
                                                        {"rnn", "1"}}) {
    inference::ModelStatisticsResponse one;
    ASSERT_TRUE(GetStatistics(*stub, name, version, one).ok());
    ASSERT_EQ(one.model_stats_size(), 1);
    EXPECT_EQ(one.model_stats(0).SerializeAsString(), s.SerializeAsString())
        << "'" << name << "' '" << version << "'";
  }

  // Against the traffic sent.
  EXPECT_EQ(s.inference_count(), static_cast<uint64_t>(ok_rows));
  const inference::InferStatistics& is = s.inference_stats();
  EXPECT_EQ(is.success().count(), static_cast<uint64_t>(ok));
  EXPECT_EQ(is.fail().count(), static_cast<uint64_t>(failed));
  EXPECT_GE(s.last_inference(),
            static_cast<uint64_t>(absl::ToUnixMillis(start)));
  EXPECT_LE(s.last_inference(), static_cast<uint64_t>(absl::ToUnixMillis(end)));
  EXPECT_GT(is.success().ns(), 0u);
  EXPECT_GT(is.fail().ns(), 0u);

  // Against /metrics, figure by figure.
  EXPECT_EQ(s.inference_count(), m[RnnSeries("rnn_sequences_total")]);
  EXPECT_EQ(s.execution_count(), m[RnnSeries("rnn_batch_size_count")]);
  EXPECT_EQ(s.execution_count(),
            static_cast<uint64_t>(server->batcher().stats().batches));
  ASSERT_EQ(m.count(RnnSeries("rnn_last_inference_timestamp_seconds")), 1u);
  EXPECT_NEAR(static_cast<double>(s.last_inference()),
              m[RnnSeries("rnn_last_inference_timestamp_seconds")] * 1000, 1.0);
  double other_codes = 0;
  int codes = 0;
  for (const auto& [series, value] : m) {
    if (!absl::StartsWith(series, "rnn_requests_total{")) continue;
    ++codes;
    if (!absl::StrContains(series, "code=\"OK\"")) other_codes += value;
  }
  EXPECT_EQ(codes, 17);
  EXPECT_EQ(is.success().count(),
            m[RnnSeries("rnn_requests_total", ",code=\"OK\"")]);
  EXPECT_EQ(is.fail().count(), other_codes);
  const double requests = m[RnnSeries("rnn_request_duration_seconds_count")];
  EXPECT_EQ(requests, ok + failed);
  // Nanoseconds from seconds: at most 1 µs of rounding per observation.
  EXPECT_NEAR(static_cast<double>(is.success().ns() + is.fail().ns()),
              m[RnnSeries("rnn_request_duration_seconds_sum")] * 1e9,
              1000 * requests);
  const double slices = m[RnnSeries("rnn_queue_duration_seconds_count")];
  EXPECT_EQ(is.queue().count(), slices);
  EXPECT_NEAR(static_cast<double>(is.queue().ns()),
              m[RnnSeries("rnn_queue_duration_seconds_sum")] * 1e9,
              1000 * slices);
  // Only the 20-row request was split (into 8 + 8 + 4 rows).
  EXPECT_EQ(slices, ok + 2);
  EXPECT_EQ(is.compute_input().count(), is.queue().count());
  EXPECT_EQ(is.compute_infer().count(), is.queue().count());
  EXPECT_EQ(is.compute_output().count(), is.queue().count());

  // batch_stats: one entry per executed batch size.
  std::map<uint64_t, uint64_t> batches_of_size;
  uint64_t batches = 0, compute_ns = 0;
  for (const inference::InferBatchStatistics& b : s.batch_stats()) {
    EXPECT_GE(b.batch_size(), 1u);
    EXPECT_LE(b.batch_size(), 8u);
    EXPECT_TRUE(
        batches_of_size.emplace(b.batch_size(), b.compute_infer().count())
            .second)
        << "two entries for batch size " << b.batch_size();
    EXPECT_GT(b.compute_infer().count(), 0u) << b.batch_size();
    batches += b.compute_infer().count();
    compute_ns += b.compute_input().ns() + b.compute_infer().ns() +
                  b.compute_output().ns();
  }
  EXPECT_GT(batches_of_size.size(), 1u);
  EXPECT_EQ(batches, s.execution_count());
  EXPECT_NEAR(static_cast<double>(compute_ns),
              m[RnnSeries("rnn_compute_duration_seconds_sum")] * 1e9,
              1000 * static_cast<double>(batches));
  int buckets = 0;
  for (const auto& [series, value] : m) {
    if (!absl::StartsWith(series, "rnn_batch_size_bucket{")) continue;
    ++buckets;
    const double le = UpperBound(series);
    uint64_t at_most = 0;
    for (const auto& [size, count] : batches_of_size) {
      if (size <= le) at_most += count;
    }
    EXPECT_EQ(at_most, value) << series;
  }
  EXPECT_GE(buckets, 5);  // 1, 2, 4, 8, +Inf.
}

TEST(ModelStatisticsTest, UnknownModelOrVersionIsNotFound) {
  ServerOptions options = LoopbackOptions();
  options.metrics_port = 0;
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  for (const auto& [name, version] :
       std::vector<std::pair<std::string, std::string>>{
           {"lstm", ""}, {"lstm", "1"}, {"rnn", "2"}}) {
    inference::ModelStatisticsResponse response;
    const grpc::Status status = GetStatistics(*stub, name, version, response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
        << "'" << name << "' '" << version << "'";
    EXPECT_FALSE(status.error_message().empty());
  }
}

TEST(RepositoryIndexTest, ListsTheServedModelReady) {
  auto server = StartOrDie(LoopbackOptions());
  auto stub = testing::LoopbackStub(server->grpc_port());
  for (bool ready : {false, true}) {
    grpc::ClientContext context;
    inference::RepositoryIndexRequest request;
    request.set_ready(ready);
    inference::RepositoryIndexResponse response;
    const grpc::Status status =
        stub->RepositoryIndex(WithDeadline(context), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.models_size(), 1) << "ready=" << ready;
    EXPECT_EQ(response.models(0).name(), "rnn");
    EXPECT_EQ(response.models(0).version(), "1");
    EXPECT_EQ(response.models(0).state(), "READY");
  }
}

TEST(ServerMetadataTest, ListsExactlyTheImplementedExtensions) {
  auto server = StartOrDie(LoopbackOptions());
  auto client = testing::LoopbackClient(server->grpc_port());
  absl::StatusOr<inference::ServerMetadataResponse> metadata =
      client->ServerMetadata();
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_THAT(metadata->extensions(),
              UnorderedElementsAre("model_configuration", "statistics"));
}

// Calls `method` with a default request and returns its status.
template <typename Request, typename Response>
grpc::Status CallDefault(
    inference::GRPCInferenceService::Stub& stub,
    grpc::Status (inference::GRPCInferenceService::Stub::*method)(
        grpc::ClientContext*, const Request&, Response*)) {
  grpc::ClientContext context;
  Response response;
  return (stub.*method)(WithDeadline(context), Request(), &response);
}

TEST(UnimplementedTest, EveryOtherRpcIsRefusedWithAMessageNamingIt) {
  using Stub = inference::GRPCInferenceService::Stub;
  auto server = StartOrDie(LoopbackOptions());
  auto stub = testing::LoopbackStub(server->grpc_port());
  const std::vector<std::pair<std::string, std::function<grpc::Status()>>>
      rpcs = {
          {"RepositoryModelLoad",
           [&] { return CallDefault(*stub, &Stub::RepositoryModelLoad); }},
          {"RepositoryModelUnload",
           [&] { return CallDefault(*stub, &Stub::RepositoryModelUnload); }},
          {"SystemSharedMemoryStatus",
           [&] { return CallDefault(*stub, &Stub::SystemSharedMemoryStatus); }},
          {"SystemSharedMemoryRegister",
           [&] {
             return CallDefault(*stub, &Stub::SystemSharedMemoryRegister);
           }},
          {"SystemSharedMemoryUnregister",
           [&] {
             return CallDefault(*stub, &Stub::SystemSharedMemoryUnregister);
           }},
          {"CudaSharedMemoryStatus",
           [&] { return CallDefault(*stub, &Stub::CudaSharedMemoryStatus); }},
          {"CudaSharedMemoryRegister",
           [&] { return CallDefault(*stub, &Stub::CudaSharedMemoryRegister); }},
          {"CudaSharedMemoryUnregister",
           [&] {
             return CallDefault(*stub, &Stub::CudaSharedMemoryUnregister);
           }},
          {"TraceSetting",
           [&] { return CallDefault(*stub, &Stub::TraceSetting); }},
          {"LogSettings",
           [&] { return CallDefault(*stub, &Stub::LogSettings); }},
      };
  for (const auto& [name, call] : rpcs) {
    const grpc::Status status = call();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << name;
    EXPECT_THAT(status.error_message(), HasSubstr(name));
  }
}

}  // namespace
}  // namespace rnn
