// End-to-end: the real rnn-server (RnnServer, in process, on an ephemeral
// loopback port) called through the real client library over gRPC.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/inference_client.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "model/eval_set.h"
#include "model/reference_forward.h"
#include "model/rnn_weights.h"
#include "model/safetensors.h"
#include "model/testing/safetensors_builder.h"
#include "proto/health.grpc.pb.h"
#include "server/rnn_server.h"
#include "server/testing/bad_requests.h"
#include "tests/testing/client_helpers.h"

namespace rnn {
namespace {

using ::rnn::testing::RandomInput;
using ::testing::HasSubstr;

const std::string kModel = RNN_SOURCE_DIR "/model/rnn.safetensors";
const std::string kEvalSet = RNN_SOURCE_DIR "/model/eval_set.safetensors";
constexpr size_t kPerRow = 20 * 100;

ServerOptions LoopbackOptions() {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.grpc_port = 0;
  // Off here: tests/metrics_e2e_test.cc covers metrics, and each metrics
  // endpoint takes prometheus-cpp's 2 s poll interval to shut down.
  o.metrics_port = -1;
  o.model_path = kModel;
  return o;
}

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(const ServerOptions& options = LoopbackOptions()) {
    absl::StatusOr<std::unique_ptr<RnnServer>> server =
        RnnServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = testing::LoopbackClient(server_->grpc_port());
    weights_ = *RnnWeights::Load(kModel);
  }

  void SetUp() override { StartServer(); }

  InferInput Input(const std::vector<float>& data) const {
    InferInput in;
    in.data = data;
    in.shape = {static_cast<int64_t>(data.size() / kPerRow), 20, 100};
    return in;
  }

  // Expects `out` to hold the reference probabilities of `data`.
  void ExpectReference(const std::vector<float>& data,
                       const absl::StatusOr<InferOutput>& out) const {
    ASSERT_TRUE(out.ok()) << out.status();
    const size_t n = data.size() / kPerRow;
    ASSERT_EQ(out->shape, (std::vector<int64_t>{static_cast<int64_t>(n), 10}));
    const std::vector<double> ref =
        ReferenceForward(weights_, data).probabilities;
    ASSERT_EQ(out->values.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_NEAR(out->values[i], ref[i], 1e-5) << "value " << i;
    }
  }

  std::unique_ptr<RnnServer> server_;
  std::unique_ptr<InferenceClient> client_;
  RnnWeights weights_;
};

TEST_F(ServerTest, HealthLivenessReadinessAndMetadata) {
  EXPECT_EQ(*client_->Health(""), "SERVING");
  EXPECT_EQ(*client_->Health("inference.GRPCInferenceService"), "SERVING");
  EXPECT_TRUE(*client_->ServerLive());
  EXPECT_TRUE(*client_->ServerReady());
  EXPECT_TRUE(*client_->ModelReady("rnn"));
  EXPECT_TRUE(*client_->ModelReady("rnn", "1"));
  EXPECT_EQ(client_->ModelReady("gru").status().code(),
            absl::StatusCode::kNotFound);

  absl::StatusOr<inference::ServerMetadataResponse> server =
      client_->ServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->name(), "rnn-server");
  EXPECT_FALSE(server->version().empty());

  absl::StatusOr<inference::ModelMetadataResponse> model =
      client_->ModelMetadata("rnn");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name(), "rnn");
  EXPECT_THAT(model->versions(), ::testing::ElementsAre("1"));
  ASSERT_EQ(model->inputs_size(), 1);
  EXPECT_EQ(model->inputs(0).name(), "sequence");
  EXPECT_EQ(model->inputs(0).datatype(), "FP32");
  EXPECT_THAT(model->inputs(0).shape(), ::testing::ElementsAre(-1, 20, 100));
  ASSERT_EQ(model->outputs_size(), 1);
  EXPECT_EQ(model->outputs(0).name(), "probabilities");
  EXPECT_THAT(model->outputs(0).shape(), ::testing::ElementsAre(-1, 10));
  EXPECT_EQ(client_->ModelMetadata("rnn", "2").status().code(),
            absl::StatusCode::kNotFound);
}

class BatchSizeTest : public ServerTest,
                      public ::testing::WithParamInterface<int> {};

TEST_P(BatchSizeTest, AgreesWithTheReference) {
  const std::vector<float> data = RandomInput(GetParam(), kPerRow, GetParam());
  InferInput in = Input(data);
  in.id = "req-42";
  absl::StatusOr<InferOutput> out = client_->Infer(in);
  ExpectReference(data, out);
  EXPECT_EQ(out->id, "req-42");
  EXPECT_EQ(out->model, "rnn");
  EXPECT_EQ(out->output_name, "probabilities");
  // The same rows sent as typed contents get the same answer.
  in.typed_contents = true;
  ExpectReference(data, client_->Infer(in));
}

INSTANTIATE_TEST_SUITE_P(Sizes, BatchSizeTest, ::testing::Values(1, 7, 64));

TEST_F(ServerTest, RequestLargerThanMaxBatchIsSplitAndAnsweredWhole) {
  // 300 sequences: 2.4 MB, over gRPC's own 4 MiB default only with the
  // server's larger limit in mind, and over max_batch_size (64).
  const std::vector<float> data = RandomInput(300, kPerRow, 300);
  ExpectReference(data, client_->Infer(Input(data)));
  EXPECT_GE(server_->batcher().stats().batches, 5);
}

TEST_F(ServerTest, RequestedOutputIsHonoured) {
  const std::vector<float> data = RandomInput(2, kPerRow, 5);
  inference::ModelInferRequest request =
      InferenceClient::BuildRequest(Input(data));
  request.add_outputs()->set_name("probabilities");
  absl::StatusOr<inference::ModelInferResponse> response =
      client_->InferRaw(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ExpectReference(data, InferenceClient::ParseResponse(*response));
}

TEST_F(ServerTest, EvalSetClassifiesAtTheTrainedAccuracy) {
  absl::StatusOr<EvalSet> eval = LoadEvalSet(kEvalSet, 20, 100);
  ASSERT_TRUE(eval.ok()) << eval.status();
  absl::StatusOr<InferOutput> out = client_->Infer(Input(eval->inputs));
  ASSERT_TRUE(out.ok()) << out.status();
  double reported = 0;
  ASSERT_TRUE(absl::SimpleAtod(
      SafetensorsFile::Read(kModel)->metadata().at("eval_accuracy"),
      &reported));
  const double accuracy = Accuracy(out->values, 10, eval->labels);
  EXPECT_NEAR(accuracy, reported, 1.0 / eval->size() + 1e-4);
  EXPECT_GE(accuracy, 0.95);
}

TEST_F(ServerTest, BadRequestsAreRefusedAndHarmNothing) {
  const std::vector<float> good = RandomInput(3, kPerRow, 77);
  for (const auto& bad : testing::BadRequests(server_->signature())) {
    absl::StatusOr<inference::ModelInferResponse> response =
        client_->InferRaw(bad.request);
    EXPECT_EQ(response.status().code(), bad.code)
        << bad.name << ": " << response.status();
    EXPECT_THAT(response.status().message(), HasSubstr(bad.message_part))
        << bad.name;
    ExpectReference(good, client_->Infer(Input(good)));
  }
}

TEST_F(ServerTest, NanInputsPropagateToTheirSequenceOnly) {
  std::vector<float> data = RandomInput(2, kPerRow, 8);
  data[kPerRow + 5] = std::numeric_limits<float>::quiet_NaN();
  absl::StatusOr<InferOutput> out = client_->Infer(Input(data));
  ASSERT_TRUE(out.ok()) << out.status();
  InferOutput first = *out;
  first.shape = {1, 10};
  first.values.resize(10);
  ExpectReference(std::vector<float>(data.begin(), data.begin() + kPerRow),
                  first);
  for (int k = 10; k < 20; ++k) EXPECT_TRUE(std::isnan(out->values[k]));
}

TEST_F(ServerTest, ConcurrentCallersEachGetTheirOwnAnswer) {
  constexpr int kCallers = 32;
  std::vector<std::vector<float>> inputs;
  for (int i = 0; i < kCallers; ++i) {
    inputs.push_back(RandomInput(1 + i % 3, kPerRow, 1000 + i));
  }
  std::vector<InferInput> calls;
  for (const auto& input : inputs) calls.push_back(Input(input));
  const std::vector<absl::StatusOr<InferOutput>> outputs =
      testing::InferAllAtOnce(*client_, calls);
  for (int i = 0; i < kCallers; ++i) {
    ExpectReference(inputs[i], outputs[i]);
  }
}

TEST_F(ServerTest, QueueTimeoutParameterExpiresQueuedRequests) {
  // A lone request waits max_queue_delay for its batch to fill, so it is
  // surely still queued when its 1 ms timeout passes, however the threads
  // are scheduled: it is dropped, never computed.
  ServerOptions options = LoopbackOptions();
  options.batching.queue.max_queue_delay = absl::Milliseconds(300);
  StartServer(options);
  const std::vector<float> data = RandomInput(1, kPerRow, 9);
  InferInput in = Input(data);
  in.queue_timeout = absl::Milliseconds(1);
  const absl::StatusOr<InferOutput> out = client_->Infer(in);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(out.status().message(), HasSubstr("not computed"));
  EXPECT_EQ(server_->batcher().stats().dropped, 1);
  EXPECT_EQ(server_->batcher().stats().rows, 0);
  // Without the timeout the same request is computed.
  in.queue_timeout.reset();
  ExpectReference(data, client_->Infer(in));
}

// A queued request whose client cancels it (true) or whose gRPC deadline
// passes (false) is dropped at once and never computed.
class ServerCancellationTest : public ::testing::TestWithParam<bool> {};

TEST_P(ServerCancellationTest, QueuedRequestIsDroppedNotComputed) {
  const bool cancel = GetParam();
  // A lone request waits up to max_queue_delay for its batch to fill: long
  // enough here for it to be cancelled, or to expire, while surely queued.
  ServerOptions options = LoopbackOptions();
  options.batching.queue.max_queue_delay = absl::Seconds(10);
  auto server = RnnServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->grpc_port()),
                          grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  const std::vector<float> data = RandomInput(1, kPerRow, 2);
  InferInput in;
  in.data = data;
  in.shape = {1, 20, 100};
  const inference::ModelInferRequest request =
      InferenceClient::BuildRequest(in);
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  const absl::Time sent = absl::Now();
  if (!cancel)
    context.set_deadline(absl::ToChronoTime(sent + absl::Seconds(1)));
  absl::Notification done;
  grpc::Status status;
  stub->async()->ModelInfer(&context, &request, &response, [&](grpc::Status s) {
    status = s;
    done.Notify();
  });
  const absl::Time give_up = sent + absl::Seconds(8);
  while ((*server)->batcher().queued_rows() == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Microseconds(100));
  }
  ASSERT_EQ((*server)->batcher().queued_rows(), 1u);
  if (cancel) context.TryCancel();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(8)));
  EXPECT_EQ(status.error_code(), cancel ? grpc::StatusCode::CANCELLED
                                        : grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server drops it promptly, long before its batch would be due.
  while ((*server)->batcher().stats().dropped == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Microseconds(100));
  }
  EXPECT_EQ((*server)->batcher().stats().dropped, 1);
  EXPECT_EQ((*server)->batcher().queued_rows(), 0u);
  EXPECT_LT(absl::Now() - sent, absl::Seconds(8));
  (*server)->Shutdown(absl::Seconds(5));
  EXPECT_EQ((*server)->batcher().stats().rows, 0);
}

INSTANTIATE_TEST_SUITE_P(CancelOrDeadline, ServerCancellationTest,
                         ::testing::Bool());

TEST(ServerLimitsTest, OversizedMessageIsRefusedByGrpc) {
  ServerOptions options = LoopbackOptions();
  options.max_receive_message_bytes = 1 << 20;
  auto server = RnnServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = testing::LoopbackClient((*server)->grpc_port());
  const std::vector<float> big = RandomInput(200, kPerRow, 1);  // 1.6 MB
  InferInput in;
  in.data = big;
  in.shape = {200, 20, 100};
  EXPECT_EQ(client->Infer(in).status().code(),
            absl::StatusCode::kResourceExhausted);
  const std::vector<float> small = RandomInput(100, kPerRow, 1);  // 0.8 MB
  in.data = small;
  in.shape = {100, 20, 100};
  EXPECT_TRUE(client->Infer(in).ok());
}

TEST(ServerLimitsTest, FullQueueRefusesWithUnavailableAndLosesNothing) {
  ServerOptions options = LoopbackOptions();
  options.batching.queue.max_batch_size = 1;
  options.batching.queue.max_queue_size = 1;
  auto server = RnnServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = testing::LoopbackClient((*server)->grpc_port());
  const RnnWeights weights = *RnnWeights::Load(kModel);
  // A burst far faster than one instance computing one row at a time; a
  // refusal is certain in practice, and the test retries a few bursts so a
  // very slow client cannot make it flaky.
  int refused = 0, ok = 0;
  for (int burst = 0; burst < 5 && refused == 0; ++burst) {
    constexpr int kBurst = 200;
    const std::vector<float> data = RandomInput(kBurst, kPerRow, burst);
    std::vector<InferInput> calls(kBurst);
    for (int i = 0; i < kBurst; ++i) {
      calls[i].data = absl::MakeConstSpan(data).subspan(i * kPerRow, kPerRow);
      calls[i].shape = {1, 20, 100};
    }
    const std::vector<absl::StatusOr<InferOutput>> outputs =
        testing::InferAllAtOnce(*client, calls);
    for (int i = 0; i < kBurst; ++i) {
      if (outputs[i].ok()) {
        ++ok;
        const std::vector<double> ref =
            ReferenceForward(weights, absl::MakeConstSpan(data).subspan(
                                          i * kPerRow, kPerRow))
                .probabilities;
        for (int k = 0; k < 10; ++k) {
          ASSERT_NEAR(outputs[i]->values[k], ref[k], 1e-5);
        }
      } else {
        EXPECT_EQ(outputs[i].status().code(), absl::StatusCode::kUnavailable)
            << outputs[i].status();
        EXPECT_THAT(outputs[i].status().message(), HasSubstr("queue full"));
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(ok, 0);
  // Every accepted request was computed: nothing accepted was dropped.
  EXPECT_EQ((*server)->batcher().stats().rows, ok);
}

TEST(ServerBatchingTest, ConcurrentSingleSequencesFormBatches) {
  ServerOptions options = LoopbackOptions();
  options.batching.queue.max_queue_delay = absl::Microseconds(2000);
  auto server = RnnServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const RnnWeights weights = *RnnWeights::Load(kModel);
  auto client = testing::LoopbackClient((*server)->grpc_port());
  // 32 clients, each keeping one single-sequence request in flight.
  constexpr int kClients = 32, kRounds = 8;
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0}, failed{0};
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int r = 0; r < kRounds; ++r) {
        const std::vector<float> data = RandomInput(1, kPerRow, c * 100 + r);
        InferInput in;
        in.data = data;
        in.shape = {1, 20, 100};
        absl::StatusOr<InferOutput> out = client->Infer(in);
        if (!out.ok()) {
          ++failed;
          continue;
        }
        const std::vector<double> ref =
            ReferenceForward(weights, data).probabilities;
        for (int k = 0; k < 10; ++k) {
          if (std::abs(out->values[k] - ref[k]) > 1e-5) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  const Batcher::Stats stats = (*server)->batcher().stats();
  EXPECT_EQ(stats.rows, kClients * kRounds);
  const double average = static_cast<double>(stats.rows) / stats.batches;
  EXPECT_GE(average, 4.0) << stats.batches << " batches";
  RecordProperty("average_batch_rows", std::to_string(average));
}

TEST(ClientRoundRobinTest, SpreadsCallsOverEveryTarget) {
  auto a = RnnServer::Start(LoopbackOptions());
  auto b = RnnServer::Start(LoopbackOptions());
  ASSERT_TRUE(a.ok() && b.ok());
  ClientOptions client_options;
  client_options.targets = {absl::StrCat("127.0.0.1:", (*a)->grpc_port()),
                            absl::StrCat("127.0.0.1:", (*b)->grpc_port())};
  auto client = *InferenceClient::Create(client_options);
  const std::vector<float> data = RandomInput(1, kPerRow, 3);
  InferInput in;
  in.data = data;
  in.shape = {1, 20, 100};
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(client->Infer(in).ok());
  EXPECT_GT((*a)->batcher().stats().rows, 0);
  EXPECT_GT((*b)->batcher().stats().rows, 0);
  EXPECT_EQ((*a)->batcher().stats().rows + (*b)->batcher().stats().rows, 40);

  client_options.targets = {"localhost:1", "127.0.0.1:2"};
  EXPECT_EQ(InferenceClient::Create(client_options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerTest, ShutdownTurnsHealthNotServingAndFinishesWork) {
  // Work in flight when shutdown starts: three requests held in the queue by
  // a long batching delay.
  ServerOptions options = LoopbackOptions();
  options.batching.queue.max_queue_delay = absl::Seconds(2);
  StartServer(options);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                          grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext watch_context;
  // Bounds the wait for an update that never comes to a failure, not a hang.
  watch_context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  grpc::health::v1::HealthCheckRequest watch_request;
  auto watch = health->Watch(&watch_context, watch_request);
  grpc::health::v1::HealthCheckResponse status;
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  std::vector<std::vector<float>> data;
  for (int i = 0; i < 3; ++i) data.push_back(RandomInput(1, kPerRow, 40 + i));
  std::vector<InferInput> calls;
  for (const auto& d : data) calls.push_back(Input(d));
  std::vector<absl::StatusOr<InferOutput>> outputs;
  std::thread callers(
      [&] { outputs = testing::InferAllAtOnce(*client_, calls); });
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (server_->batcher().queued_rows() < 3 && absl::Now() < give_up) {
    std::this_thread::yield();
  }
  ASSERT_EQ(server_->batcher().queued_rows(), 3u);

  std::thread shutdown([&] { server_->Shutdown(absl::Seconds(20)); });
  // The health service says NOT_SERVING while the work is drained...
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(server_->state().phase(), ServingState::Phase::kDraining);
  watch_context.TryCancel();
  shutdown.join();
  callers.join();
  // ...and every request in flight was answered, computed, not dropped.
  for (size_t i = 0; i < data.size(); ++i) ExpectReference(data[i], outputs[i]);
  EXPECT_EQ(server_->batcher().stats().rows, 3);
  EXPECT_EQ(server_->batcher().stats().dropped, 0);
  server_->Wait();  // Returns at once after Shutdown.
}

TEST(ServerStartTest, ReportsBadModelAndBusyPort) {
  ServerOptions options = LoopbackOptions();
  options.model_path = "/nonexistent.safetensors";
  EXPECT_EQ(RnnServer::Start(options).status().code(),
            absl::StatusCode::kNotFound);
  auto first = RnnServer::Start(LoopbackOptions());
  ASSERT_TRUE(first.ok());
  options = LoopbackOptions();
  options.grpc_port = (*first)->grpc_port();
  const absl::Status busy = RnnServer::Start(options).status();
  EXPECT_EQ(busy.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(busy.message(), HasSubstr("cannot listen"));
}

}  // namespace
}  // namespace rnn
