// ModelStreamInfer end to end: the real rnn-server (RnnServer, in process,
// on an ephemeral loopback port) called through the generated stub over
// gRPC, its answers checked against the reference forward pass, the shared
// bad-request table, the batcher's counters and a real scrape of /metrics.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/inference_client.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "model/reference_forward.h"
#include "model/rnn_weights.h"
#include "model/testing/safetensors_builder.h"
#include "proto/health.grpc.pb.h"
#include "server/rnn_server.h"
#include "server/testing/bad_requests.h"
#include "tests/testing/client_helpers.h"
#include "tests/testing/stream_helpers.h"

namespace rnn {
namespace {

using ::rnn::testing::InferStream;
using ::rnn::testing::Probabilities;
using ::rnn::testing::RandomInput;
using ::rnn::testing::RnnSeries;
using ::rnn::testing::ScrapeMetrics;
using ::testing::HasSubstr;

const std::string kModel = RNN_SOURCE_DIR "/model/rnn.safetensors";
constexpr size_t kPerRow = 20 * 100;
constexpr int kClasses = 10;

ServerOptions LoopbackOptions() {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.grpc_port = 0;
  // Off unless a test reads it: each metrics endpoint takes prometheus-cpp's
  // 2 s poll interval to shut down.
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

// A request for the [N, 20, 100] rows `data`, raw or typed.
inference::ModelInferRequest Request(const std::string& id,
                                     const std::vector<float>& data,
                                     bool typed = false) {
  InferInput in;
  in.data = data;
  in.shape = {static_cast<int64_t>(data.size() / kPerRow), 20, 100};
  in.id = id;
  in.typed_contents = typed;
  return InferenceClient::BuildRequest(in);
}

// The rows a request carries, raw or typed (GoodRequest's are raw).
std::vector<float> RowsOf(const inference::ModelInferRequest& request) {
  if (request.raw_input_contents_size() > 0) {
    const std::string& raw = request.raw_input_contents(0);
    std::vector<float> rows(raw.size() / sizeof(float));
    std::memcpy(rows.data(), raw.data(), rows.size() * sizeof(float));
    return rows;
  }
  const auto& typed = request.inputs(0).contents().fp32_contents();
  return std::vector<float>(typed.begin(), typed.end());
}

std::string ErrorCode(const inference::ModelStreamInferResponse& response) {
  const auto& parameters = response.infer_response().parameters();
  const auto it = parameters.find("error_code");
  return it == parameters.end() ? "<no error_code>" : it->second.string_param();
}

// Checks one successful stream response against the reference forward pass
// of the rows `data` that its request carried; returns the number of wrong
// values (and adds a failure for the first).
int CheckAnswer(const RnnWeights& weights, const std::vector<float>& data,
                const inference::ModelStreamInferResponse& response) {
  const inference::ModelInferResponse& r = response.infer_response();
  if (!response.error_message().empty()) {
    ADD_FAILURE() << r.id() << ": error " << response.error_message();
    return 1;
  }
  const size_t n = data.size() / kPerRow;
  EXPECT_EQ(r.model_name(), "rnn") << r.id();
  EXPECT_EQ(r.model_version(), "1") << r.id();
  if (r.outputs_size() != 1 || r.outputs(0).name() != "probabilities" ||
      r.outputs(0).datatype() != "FP32" ||
      std::vector<int64_t>(r.outputs(0).shape().begin(),
                           r.outputs(0).shape().end()) !=
          std::vector<int64_t>{static_cast<int64_t>(n), kClasses}) {
    ADD_FAILURE() << r.id() << ": bad output metadata " << r.DebugString();
    return 1;
  }
  const std::vector<float> got = Probabilities(r);
  const std::vector<double> want =
      ReferenceForward(weights, data).probabilities;
  if (got.size() != want.size()) {
    ADD_FAILURE() << r.id() << ": " << got.size() << " values, expected "
                  << want.size();
    return 1;
  }
  int wrong = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(std::abs(got[i] - want[i]) <= 1e-5)) {
      if (wrong++ == 0) {
        ADD_FAILURE() << r.id() << " value " << i << ": " << got[i]
                      << ", reference " << want[i];
      }
    }
  }
  return wrong;
}

// Responses by id; a duplicate id fails the test.
std::map<std::string, inference::ModelStreamInferResponse> ById(
    const std::vector<inference::ModelStreamInferResponse>& responses) {
  std::map<std::string, inference::ModelStreamInferResponse> by_id;
  for (const auto& response : responses) {
    const std::string& id = response.infer_response().id();
    EXPECT_TRUE(by_id.emplace(id, response).second) << "two answers for " << id;
  }
  return by_id;
}

// Polls `condition` (cheap, in-process) until it holds or 30 s pass.
template <typename Condition>
bool AwaitTrue(Condition condition) {
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Microseconds(200));
  }
  return true;
}

class StreamTest : public ::testing::Test {
 protected:
  StreamTest() : weights_(*RnnWeights::Load(kModel)) {}
  RnnWeights weights_;
};

// Good requests (raw and typed, 1 to 5 rows) interleaved with every bad
// request of the shared table, on one stream: one answer per request, by id;
// the good ones right, the bad ones with the unary call's code and message;
// the stream stays open through the errors and ends OK after WritesDone.
// Every request counts in /metrics like a unary call.
TEST_F(StreamTest, MixedGoodAndBadRequestsGetOneAnswerEach) {
  ServerOptions options = LoopbackOptions();
  options.metrics_port = 0;
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  auto client = testing::LoopbackClient(server->grpc_port());
  const std::vector<testing::BadRequest> bad =
      testing::BadRequests(server->signature());

  std::map<std::string, inference::ModelInferRequest> good;
  std::map<std::string, const testing::BadRequest*> bad_by_id;
  std::vector<inference::ModelInferRequest> sent;
  int good_rows = 0;
  for (size_t i = 0; i < bad.size() + 1; ++i) {
    for (int j = 0; j < 2; ++j) {
      const int rows = 1 + (i + j) % 5;
      const std::string id = absl::StrCat("good-", i, "-", j);
      good[id] = Request(id, RandomInput(rows, kPerRow, 10 * i + j), j == 1);
      sent.push_back(good[id]);
      good_rows += rows;
    }
    if (i < bad.size()) {
      const std::string id = absl::StrCat("bad-", i);
      inference::ModelInferRequest request = bad[i].request;
      request.set_id(id);
      bad_by_id[id] = &bad[i];
      sent.push_back(std::move(request));
    }
  }

  InferStream stream(*stub);
  for (const auto& request : sent) ASSERT_TRUE(stream.Write(request));
  ASSERT_TRUE(stream.WritesDone());
  const grpc::Status status = stream.Finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << " "
                           << status.error_message();

  const std::vector<inference::ModelStreamInferResponse> responses =
      stream.responses();
  EXPECT_EQ(responses.size(), sent.size());
  const auto by_id = ById(responses);
  for (const auto& [id, request] : good) {
    const auto it = by_id.find(id);
    if (it == by_id.end()) {
      ADD_FAILURE() << "no answer for " << id;
      continue;
    }
    EXPECT_EQ(CheckAnswer(weights_, RowsOf(request), it->second), 0) << id;
  }
  int invalid = 0, not_found = 0;
  for (const auto& [id, b] : bad_by_id) {
    const auto it = by_id.find(id);
    if (it == by_id.end()) {
      ADD_FAILURE() << "no answer for " << id << " (" << b->name << ")";
      continue;
    }
    const inference::ModelStreamInferResponse& response = it->second;
    // The unary call's answer to the same request is the stream's.
    const absl::Status unary = client->InferRaw(b->request).status();
    EXPECT_EQ(unary.code(), b->code) << b->name << ": " << unary;
    EXPECT_EQ(response.error_message(), unary.message()) << b->name;
    EXPECT_THAT(response.error_message(), HasSubstr(b->message_part))
        << b->name;
    EXPECT_EQ(ErrorCode(response), absl::StatusCodeToString(b->code))
        << b->name;
    EXPECT_EQ(response.infer_response().model_name(), b->request.model_name())
        << b->name;
    EXPECT_EQ(response.infer_response().model_version(),
              b->request.model_version())
        << b->name;
    EXPECT_EQ(response.infer_response().raw_output_contents_size(), 0)
        << b->name;
    invalid += b->code == absl::StatusCode::kInvalidArgument;
    not_found += b->code == absl::StatusCode::kNotFound;
  }
  ASSERT_EQ(invalid + not_found, static_cast<int>(bad.size()));
  EXPECT_EQ(server->batcher().stats().rows, good_rows);

  // Each bad request was sent twice (stream and unary), each good one once.
  std::map<std::string, double> m = ScrapeMetrics(server->metrics_port());
  const auto code = [](const std::string& name) {
    return RnnSeries("rnn_requests_total",
                     absl::StrCat(",code=\"", name, "\""));
  };
  EXPECT_EQ(m[code("OK")], good.size());
  EXPECT_EQ(m[code("INVALID_ARGUMENT")], 2 * invalid);
  EXPECT_EQ(m[code("NOT_FOUND")], 2 * not_found);
  EXPECT_EQ(m[RnnSeries("rnn_request_duration_seconds_count")],
            good.size() + 2 * bad.size());
  EXPECT_EQ(m[RnnSeries("rnn_sequences_total")], good_rows);
  EXPECT_TRUE(AwaitTrue([&] {
    return ScrapeMetrics(server->metrics_port())["rnn_inflight_requests"] == 0;
  })) << "rnn_inflight_requests stays above 0 after every answer";
}

// Many streams and unary callers at once: every answer right, and the
// batcher forms batches of several requests.
TEST_F(StreamTest, ConcurrentStreamsAndUnaryCallsAreBatchedAndAllRight) {
  ServerOptions options = LoopbackOptions();
  options.batching.queue.max_queue_delay = absl::Microseconds(1000);
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  auto client = testing::LoopbackClient(server->grpc_port());
  constexpr int kStreams = 12, kPerStream = 40, kCallers = 6, kPerCaller = 12;
  std::atomic<int> wrong{0}, rows{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back([&, s] {
      std::map<std::string, std::vector<float>> inputs;
      InferStream stream(*stub);
      for (int i = 0; i < kPerStream; ++i) {
        const int n = 1 + (s + i) % 3;
        const std::string id = absl::StrCat("s", s, "-", i);
        inputs[id] = RandomInput(n, kPerRow, 1000 * s + i);
        rows += n;
        if (!stream.Write(Request(id, inputs[id], i % 2 == 1))) {
          ADD_FAILURE() << "write failed on stream " << s;
          ++wrong;
          return;
        }
      }
      stream.WritesDone();
      const grpc::Status status = stream.Finish();
      if (!status.ok()) {
        ADD_FAILURE() << "stream " << s << ": " << status.error_message();
        ++wrong;
      }
      const auto by_id = ById(stream.responses());
      if (by_id.size() != inputs.size()) {
        ADD_FAILURE() << "stream " << s << ": " << by_id.size()
                      << " answers for " << inputs.size() << " requests";
        ++wrong;
      }
      for (const auto& [id, data] : inputs) {
        const auto it = by_id.find(id);
        if (it == by_id.end()) {
          ++wrong;
          continue;
        }
        wrong += CheckAnswer(weights_, data, it->second);
      }
    });
  }
  for (int c = 0; c < kCallers; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < kPerCaller; ++i) {
        const std::vector<float> data =
            RandomInput(1, kPerRow, 50000 + 100 * c + i);
        rows += 1;
        InferInput in;
        in.data = data;
        in.shape = {1, 20, 100};
        const absl::StatusOr<InferOutput> out = client->Infer(in);
        if (!out.ok()) {
          ADD_FAILURE() << out.status();
          ++wrong;
          continue;
        }
        const std::vector<double> ref =
            ReferenceForward(weights_, data).probabilities;
        for (int k = 0; k < kClasses; ++k) {
          if (!(std::abs(out->values[k] - ref[k]) <= 1e-5)) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  const Batcher::Stats stats = server->batcher().stats();
  EXPECT_EQ(stats.rows, rows.load());
  EXPECT_EQ(stats.dropped, 0);
  constexpr int kRequests = kStreams * kPerStream + kCallers * kPerCaller;
  // Fewer batches than requests: requests shared batches.
  EXPECT_LT(stats.batches, kRequests / 2) << stats.batches << " batches";
  RecordProperty("batches", std::to_string(stats.batches));
}

// Streamed and unary requests share a batch: with max_batch_size equal to
// their total rows and a 30 s max_queue_delay, the only way to be answered
// quickly is one full batch holding requests of both kinds.
TEST_F(StreamTest, StreamedAndUnaryRequestsShareOneBatch) {
  ServerOptions options = LoopbackOptions();
  constexpr int kStreams = 2, kPerStream = 3, kUnary = 4;
  constexpr int kRows = kStreams * kPerStream + kUnary;
  options.batching.queue.max_batch_size = kRows;
  options.batching.queue.max_queue_delay = absl::Seconds(30);
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  auto client = testing::LoopbackClient(server->grpc_port());
  const absl::Time start = absl::Now();

  std::vector<std::unique_ptr<InferStream>> streams;
  std::map<std::string, std::vector<float>> inputs;
  for (int s = 0; s < kStreams; ++s) {
    streams.push_back(std::make_unique<InferStream>(*stub));
    for (int i = 0; i < kPerStream; ++i) {
      const std::string id = absl::StrCat("s", s, "-", i);
      inputs[id] = RandomInput(1, kPerRow, 10 * s + i);
      ASSERT_TRUE(streams.back()->Write(Request(id, inputs[id])));
    }
  }
  std::vector<std::vector<float>> unary_data;
  std::vector<InferInput> unary(kUnary);
  for (int i = 0; i < kUnary; ++i) {
    unary_data.push_back(RandomInput(1, kPerRow, 100 + i));
  }
  for (int i = 0; i < kUnary; ++i) {
    unary[i].data = unary_data[i];
    unary[i].shape = {1, 20, 100};
  }
  const std::vector<absl::StatusOr<InferOutput>> outputs =
      testing::InferAllAtOnce(*client, unary);
  for (int i = 0; i < kUnary; ++i) {
    ASSERT_TRUE(outputs[i].ok()) << outputs[i].status();
    const std::vector<double> ref =
        ReferenceForward(weights_, unary_data[i]).probabilities;
    for (int k = 0; k < kClasses; ++k) {
      EXPECT_NEAR(outputs[i]->values[k], ref[k], 1e-5);
    }
  }
  for (auto& stream : streams) {
    ASSERT_TRUE(stream->WaitForResponses(kPerStream, absl::Seconds(60)));
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
    for (const auto& [id, response] : ById(stream->responses())) {
      ASSERT_TRUE(inputs.count(id)) << id;
      EXPECT_EQ(CheckAnswer(weights_, inputs[id], response), 0);
    }
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(25))
      << "answered only when the queue delay expired: not one batch";
  const Batcher::Stats stats = server->batcher().stats();
  EXPECT_EQ(stats.batches, 1);
  EXPECT_EQ(stats.rows, kRows);
}

// Half-closing does not end the stream early: it ends OK once the requests
// still queued when the client half-closed are answered.
TEST_F(StreamTest, HalfClosedStreamEndsOkAfterItsQueuedRequestsAreAnswered) {
  ServerOptions options = LoopbackOptions();
  // Each lone batch waits 300 ms to fill: the requests are still queued
  // when the client half-closes.
  options.batching.queue.max_queue_delay = absl::Milliseconds(300);
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  std::map<std::string, std::vector<float>> inputs;
  InferStream stream(*stub);
  for (int i = 0; i < 3; ++i) {
    const std::string id = absl::StrCat("r", i);
    inputs[id] = RandomInput(2, kPerRow, 70 + i);
    ASSERT_TRUE(stream.Write(Request(id, inputs[id])));
  }
  ASSERT_TRUE(AwaitTrue([&] { return server->batcher().queued_rows() == 6; }))
      << server->batcher().queued_rows() << " rows queued";
  ASSERT_TRUE(stream.WritesDone());
  const grpc::Status status = stream.Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  const auto by_id = ById(stream.responses());
  EXPECT_EQ(by_id.size(), inputs.size());
  for (const auto& [id, response] : by_id) {
    ASSERT_TRUE(inputs.count(id)) << id;
    EXPECT_EQ(CheckAnswer(weights_, inputs[id], response), 0);
  }
}

// The request parameter "timeout" applies on a stream as in a unary call: a
// request still queued when it passes is answered DEADLINE_EXCEEDED without
// being computed, and only that request.
TEST_F(StreamTest, QueueTimeoutParameterExpiresOnlyThatRequest) {
  ServerOptions options = LoopbackOptions();
  // A lone batch waits 300 ms to fill, far past the 1 ms timeout.
  options.batching.queue.max_queue_delay = absl::Milliseconds(300);
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  const std::vector<float> expiring = RandomInput(1, kPerRow, 1);
  InferInput in;
  in.data = expiring;
  in.shape = {1, 20, 100};
  in.id = "expiring";
  in.queue_timeout = absl::Milliseconds(1);
  const inference::ModelInferRequest timed = InferenceClient::BuildRequest(in);
  const std::vector<float> kept = RandomInput(1, kPerRow, 2);
  InferStream stream(*stub);
  ASSERT_TRUE(stream.Write(timed));
  ASSERT_TRUE(stream.Write(Request("kept", kept)));
  ASSERT_TRUE(stream.WritesDone());
  EXPECT_TRUE(stream.Finish().ok());
  auto by_id = ById(stream.responses());
  ASSERT_EQ(by_id.size(), 2u);
  EXPECT_EQ(CheckAnswer(weights_, kept, by_id["kept"]), 0);
  const inference::ModelStreamInferResponse& expired = by_id["expiring"];
  EXPECT_EQ(ErrorCode(expired), "DEADLINE_EXCEEDED");
  EXPECT_THAT(expired.error_message(), HasSubstr("not computed"));
  EXPECT_EQ(expired.infer_response().id(), "expiring");
  EXPECT_EQ(server->batcher().stats().dropped, 1);
  EXPECT_EQ(server->batcher().stats().rows, 1);
}

// A stream's requests count against the queue bound like unary calls: the
// ones over it are answered UNAVAILABLE on the stream, which stays open.
TEST_F(StreamTest, FullQueueAnswersUnavailableOnTheStream) {
  ServerOptions options = LoopbackOptions();
  // The first two requests fill the queue and wait 500 ms for their batch:
  // the ones read meanwhile find it full.
  options.batching.queue.max_queue_size = 2;
  options.batching.queue.max_queue_delay = absl::Milliseconds(500);
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  constexpr int kRequests = 300;
  std::map<std::string, std::vector<float>> inputs;
  InferStream stream(*stub);
  for (int i = 0; i < kRequests; ++i) {
    const std::string id = absl::StrCat("r", i);
    inputs[id] = RandomInput(1, kPerRow, i);
    ASSERT_TRUE(stream.Write(Request(id, inputs[id])));
  }
  ASSERT_TRUE(stream.WritesDone());
  EXPECT_TRUE(stream.Finish().ok());
  const auto by_id = ById(stream.responses());
  EXPECT_EQ(by_id.size(), inputs.size());
  int ok = 0, refused = 0;
  for (const auto& [id, response] : by_id) {
    ASSERT_TRUE(inputs.count(id)) << id;
    if (response.error_message().empty()) {
      EXPECT_EQ(CheckAnswer(weights_, inputs[id], response), 0);
      ++ok;
    } else {
      EXPECT_EQ(ErrorCode(response), "UNAVAILABLE") << id;
      EXPECT_THAT(response.error_message(), HasSubstr("queue full")) << id;
      EXPECT_EQ(response.infer_response().model_name(), "rnn");
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GE(ok, 2);
  EXPECT_EQ(server->batcher().stats().rows, ok);
}

// Cancelling a stream drops its queued requests at once, without computing
// them, and counts them CANCELLED; another stream's queued request is
// untouched and computed later.
TEST_F(StreamTest, CancellationDropsQueuedRequestsUncomputed) {
  ServerOptions options = LoopbackOptions();
  options.metrics_port = 0;
  constexpr int kCancelled = 5, kBatch = 8;
  // A batch is due at kBatch rows or after 30 s: until the survivor fills
  // it, every request is surely queued, and a drop seen before then was
  // caused by the cancellation, not by the batch reaching the head.
  options.batching.queue.max_batch_size = kBatch;
  options.batching.queue.max_queue_delay = absl::Seconds(30);
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());
  InferStream doomed(*stub);
  for (int i = 0; i < kCancelled; ++i) {
    ASSERT_TRUE(doomed.Write(
        Request(absl::StrCat("c", i), RandomInput(1, kPerRow, i))));
  }
  InferStream survivor(*stub);
  std::map<std::string, std::vector<float>> kept;
  kept["kept-0"] = RandomInput(1, kPerRow, 99);
  ASSERT_TRUE(survivor.Write(Request("kept-0", kept["kept-0"])));
  ASSERT_TRUE(AwaitTrue([&] {
    return server->batcher().queued_rows() == kCancelled + 1;
  })) << server->batcher().queued_rows()
      << " rows queued";
  std::map<std::string, double> m = ScrapeMetrics(server->metrics_port());
  EXPECT_EQ(m["rnn_inflight_requests"], kCancelled + 1);

  doomed.Cancel();
  EXPECT_EQ(doomed.Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(doomed.response_count(), 0u);
  ASSERT_TRUE(AwaitTrue([&] {
    return server->batcher().stats().dropped == kCancelled;
  })) << server->batcher().stats().dropped
      << " dropped";
  EXPECT_EQ(server->batcher().queued_rows(), 1u);
  EXPECT_EQ(server->batcher().stats().rows, 0);
  ASSERT_TRUE(AwaitTrue([&] {
    m = ScrapeMetrics(server->metrics_port());
    return m[RnnSeries("rnn_requests_total", ",code=\"CANCELLED\"")] ==
               kCancelled &&
           m["rnn_inflight_requests"] == 1;
  })) << "CANCELLED: "
      << m[RnnSeries("rnn_requests_total", ",code=\"CANCELLED\"")]
      << ", in flight: " << m["rnn_inflight_requests"];
  EXPECT_EQ(m[RnnSeries("rnn_sequences_total")], 0);

  // The other stream's request is still queued: filling its batch runs it.
  for (int i = 1; i < kBatch; ++i) {
    const std::string id = absl::StrCat("kept-", i);
    kept[id] = RandomInput(1, kPerRow, 100 + i);
    ASSERT_TRUE(survivor.Write(Request(id, kept[id])));
  }
  ASSERT_TRUE(survivor.WritesDone());
  EXPECT_TRUE(survivor.Finish().ok());
  const auto by_id = ById(survivor.responses());
  EXPECT_EQ(by_id.size(), kept.size());
  for (const auto& [id, response] : by_id) {
    ASSERT_TRUE(kept.count(id)) << id;
    EXPECT_EQ(CheckAnswer(weights_, kept[id], response), 0);
  }
  const Batcher::Stats stats = server->batcher().stats();
  EXPECT_EQ(stats.batches, 1);
  EXPECT_EQ(stats.rows, kBatch);
  EXPECT_EQ(stats.dropped, kCancelled);
}

// Shutdown mid-stream: health turns NOT_SERVING at once, every request
// already accepted on every stream is answered with its result, requests
// read afterwards are answered UNAVAILABLE, and the streams end UNAVAILABLE
// without waiting for the grace period.
TEST_F(StreamTest, ShutdownAnswersAcceptedRequestsThenEndsStreamsUnavailable) {
  ServerOptions options = LoopbackOptions();
  // Holds the accepted requests in the queue while shutdown starts.
  options.batching.queue.max_queue_delay = absl::Seconds(2);
  auto server = StartOrDie(options);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->grpc_port()),
                          grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext watch_context;
  watch_context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto watch = health->Watch(&watch_context, {});
  grpc::health::v1::HealthCheckResponse health_status;
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(),
            grpc::health::v1::HealthCheckResponse::SERVING);

  constexpr int kStreams = 3, kPerStream = 4;
  std::vector<std::unique_ptr<InferStream>> streams;
  std::map<std::string, std::vector<float>> accepted;
  for (int s = 0; s < kStreams; ++s) {
    streams.push_back(std::make_unique<InferStream>(*stub));
    for (int i = 0; i < kPerStream; ++i) {
      const std::string id = absl::StrCat("s", s, "-", i);
      accepted[id] = RandomInput(1, kPerRow, 10 * s + i);
      ASSERT_TRUE(streams.back()->Write(Request(id, accepted[id])));
    }
  }
  ASSERT_TRUE(AwaitTrue([&] {
    return server->batcher().queued_rows() == kStreams * kPerStream;
  })) << server->batcher().queued_rows()
      << " rows queued";

  constexpr absl::Duration kGrace = absl::Seconds(40);
  const absl::Time shutdown_at = absl::Now();
  std::thread shutdown([&] { server->Shutdown(kGrace); });
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(server->state().phase(), ServingState::Phase::kDraining);
  watch_context.TryCancel();

  // Requests written now are read, if at all, after the drain began.
  std::set<std::string> late;
  for (int s = 0; s < kStreams; ++s) {
    const std::string id = absl::StrCat("late-", s);
    if (streams[s]->Write(Request(id, RandomInput(1, kPerRow, 500 + s)))) {
      late.insert(id);
    }
  }
  int late_answered = 0;
  for (int s = 0; s < kStreams; ++s) {
    const grpc::Status status = streams[s]->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << "stream " << s << ": " << status.error_message();
    for (const auto& [id, response] : ById(streams[s]->responses())) {
      if (accepted.count(id)) {
        EXPECT_EQ(CheckAnswer(weights_, accepted[id], response), 0) << id;
        accepted.erase(id);
      } else if (late.count(id)) {
        ++late_answered;
        EXPECT_EQ(ErrorCode(response), "UNAVAILABLE") << id;
        EXPECT_FALSE(response.error_message().empty()) << id;
      } else {
        ADD_FAILURE() << "answer for a request never sent: " << id;
      }
    }
  }
  shutdown.join();
  EXPECT_LT(absl::Now() - shutdown_at, kGrace / 2)
      << "streams were left open until gRPC's grace period ran out";
  EXPECT_TRUE(accepted.empty())
      << accepted.size() << " accepted requests never answered";
  EXPECT_EQ(server->batcher().stats().rows, kStreams * kPerStream);
  EXPECT_EQ(server->batcher().stats().dropped, 0);
  RecordProperty("late_requests_answered", std::to_string(late_answered));
}

// A stream never holds more than max_inflight_per_stream unanswered
// requests, even when its client writes many and reads none: the batcher
// never sees more of them at once, so no batch is larger than the bound.
TEST_F(StreamTest, MaxInflightPerStreamBoundsWhatTheServerHolds) {
  ServerOptions options = LoopbackOptions();
  options.metrics_port = 0;
  constexpr int kBound = 4, kRequests = 120;
  options.max_inflight_per_stream = kBound;
  // Batches wait 10 ms to fill up to 64 rows: a server that read past the
  // bound would form batches of far more than kBound rows.
  options.batching.queue.max_queue_delay = absl::Milliseconds(10);
  auto server = StartOrDie(options);
  auto stub = testing::LoopbackStub(server->grpc_port());

  std::map<std::string, std::vector<float>> inputs;
  for (int i = 0; i < kRequests; ++i) {
    inputs[absl::StrCat("r", i)] = RandomInput(1, kPerRow, i);
  }
  InferStream stream(*stub, /*start_reading=*/false);
  std::atomic<bool> written{false};
  std::thread writer([&] {
    for (const auto& [id, data] : inputs) {
      if (!stream.Write(Request(id, data))) break;
    }
    stream.WritesDone();
    written = true;
  });
  // While the client writes and reads nothing, the server's holdings stay
  // within the bound.
  size_t most_queued = 0;
  double most_inflight = 0;
  int scrapes = 0;
  while (!written) {
    most_queued = std::max(most_queued, server->batcher().queued_rows());
    if (scrapes++ % 20 == 0) {
      most_inflight = std::max(
          most_inflight,
          ScrapeMetrics(server->metrics_port())["rnn_inflight_requests"]);
    }
    absl::SleepFor(absl::Microseconds(500));
  }
  writer.join();
  EXPECT_LE(most_queued, static_cast<size_t>(kBound));
  EXPECT_LE(most_inflight, kBound);

  EXPECT_TRUE(stream.Finish().ok());
  const auto by_id = ById(stream.responses());
  EXPECT_EQ(by_id.size(), inputs.size());
  for (const auto& [id, response] : by_id) {
    ASSERT_TRUE(inputs.count(id)) << id;
    EXPECT_EQ(CheckAnswer(weights_, inputs[id], response), 0);
  }
  std::map<std::string, double> m = ScrapeMetrics(server->metrics_port());
  const double batches = m[RnnSeries("rnn_batch_size_count")];
  EXPECT_EQ(m[RnnSeries("rnn_batch_size_bucket", ",le=\"4\"")], batches)
      << "a batch held more than " << kBound << " of the stream's requests";
  EXPECT_GE(batches, kRequests / kBound);
  EXPECT_EQ(m[RnnSeries("rnn_sequences_total")], kRequests);
}

}  // namespace
}  // namespace rnn
