#include "client/model_stream.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "base/mutex.h"
#include "client/inference_client.h"
#include "client/testing/fake_stream_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using testing::FakeStreamServer;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

// The answer the fake gives a request, by its id: "bad..." an error naming
// INVALID_ARGUMENT, "nocode..." an error without error_code, anything else
// success.
inference::ModelStreamInferResponse AnswerById(
    const inference::ModelInferRequest& request) {
  if (absl::StartsWith(request.id(), "bad")) {
    return FakeStreamServer::Answer(
        request, absl::InvalidArgumentError("shape is wrong"));
  }
  if (absl::StartsWith(request.id(), "nocode")) {
    return FakeStreamServer::Answer(
        request, absl::InternalError("something failed"), false);
  }
  return FakeStreamServer::Answer(request);
}

// Reads every request until the client half-closes, then answers them newest
// first, and ends the stream OK.
grpc::Status ReverseAfterClose(grpc::ServerContext*,
                               FakeStreamServer::Stream* stream) {
  std::vector<inference::ModelInferRequest> held;
  inference::ModelInferRequest request;
  while (stream->Read(&request)) held.push_back(request);
  std::reverse(held.begin(), held.end());
  for (const auto& r : held) stream->Write(AnswerById(r));
  return grpc::Status::OK;
}

// Answers each request as it comes.
grpc::Status Echo(grpc::ServerContext*, FakeStreamServer::Stream* stream) {
  inference::ModelInferRequest request;
  while (stream->Read(&request)) stream->Write(AnswerById(request));
  return grpc::Status::OK;
}

class ModelStreamTest : public ::testing::Test {
 protected:
  void StartServer(FakeStreamServer::Handler handler) {
    server_ = FakeStreamServer::Start(std::move(handler));
    ASSERT_NE(server_, nullptr);
    ClientOptions options;
    options.targets = {server_->target()};
    absl::StatusOr<std::unique_ptr<InferenceClient>> client =
        InferenceClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    server_.reset();
  }

  // A handler that reads nothing until the test ends.
  FakeStreamServer::Handler NeverRead() {
    return [this](grpc::ServerContext*, FakeStreamServer::Stream*) {
      release_.WaitForNotification();
      return grpc::Status::OK;
    };
  }

  // Opens a stream whose answers and end are recorded.
  std::unique_ptr<ModelStream> Open(const StreamOptions& options = {}) {
    return client_->OpenStream(
        [this](StreamAnswer answer) {
          MutexLock lock(&mu_);
          answers_.push_back(std::move(answer));
        },
        [this](const absl::Status& status) {
          MutexLock lock(&mu_);
          done_statuses_.push_back(status);
        },
        options);
  }

  static inference::ModelInferRequest Request(const std::string& id,
                                              size_t payload_bytes = 16) {
    inference::ModelInferRequest request;
    request.set_model_name("rnn");
    request.set_id(id);
    request.add_raw_input_contents()->assign(payload_bytes, 'x');
    return request;
  }

  std::vector<StreamAnswer> answers() {
    MutexLock lock(&mu_);
    return answers_;
  }
  std::vector<absl::Status> done_statuses() {
    MutexLock lock(&mu_);
    return done_statuses_;
  }

  absl::Notification release_;
  std::unique_ptr<FakeStreamServer> server_;
  std::unique_ptr<InferenceClient> client_;
  Mutex mu_;
  std::vector<StreamAnswer> answers_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> done_statuses_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ModelStreamTest, EveryRequestGetsItsAnswerMatchedById) {
  StartServer(ReverseAfterClose);
  std::unique_ptr<ModelStream> stream = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    const std::string id = i % 10 == 3   ? absl::StrCat("bad", i)
                           : i % 10 == 7 ? absl::StrCat("nocode", i)
                                         : absl::StrCat(i);
    ids.push_back(id);
    ASSERT_TRUE(stream->Write(Request(id)).ok());
  }
  EXPECT_TRUE(stream->Finish().ok());

  const std::vector<StreamAnswer> got = answers();
  ASSERT_EQ(got.size(), 50u);
  EXPECT_EQ(got.front().id, "49");  // The fake answers newest first.
  std::vector<std::string> got_ids;
  for (const StreamAnswer& a : got) {
    got_ids.push_back(a.id);
    EXPECT_EQ(a.response.id(), a.id);
    EXPECT_EQ(a.response.model_name(), "rnn");
    if (absl::StartsWith(a.id, "bad")) {
      EXPECT_EQ(a.status.code(), absl::StatusCode::kInvalidArgument) << a.id;
      EXPECT_EQ(a.status.message(), "shape is wrong");
    } else if (absl::StartsWith(a.id, "nocode")) {
      EXPECT_EQ(a.status.code(), absl::StatusCode::kUnknown) << a.id;
      EXPECT_EQ(a.status.message(), "something failed");
    } else {
      EXPECT_TRUE(a.status.ok()) << a.id << ": " << a.status;
      EXPECT_EQ(a.response.outputs_size(), 1);
    }
  }
  EXPECT_THAT(got_ids, UnorderedElementsAreArray(ids));
  EXPECT_EQ(done_statuses(), std::vector<absl::Status>{absl::OkStatus()});
  EXPECT_EQ(stream->Write(Request("late")).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ModelStreamTest, ConcurrentWritersEachGetEveryAnswer) {
  StartServer(Echo);
  std::unique_ptr<ModelStream> stream = Open();
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&stream, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE(stream->Write(Request(absl::StrCat(t, ".", i))).ok());
      }
    });
  }
  for (std::thread& w : writers) w.join();
  EXPECT_TRUE(stream->Finish().ok());
  std::vector<std::string> want, got;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i)
      want.push_back(absl::StrCat(t, ".", i));
  }
  for (const StreamAnswer& a : answers()) {
    EXPECT_TRUE(a.status.ok());
    got.push_back(a.id);
  }
  EXPECT_THAT(got, UnorderedElementsAreArray(want));
}

TEST_F(ModelStreamTest, AServerEndingTheStreamEndsItWithItsStatus) {
  // Reads three requests, answers none, and ends the stream as a draining
  // server would.
  StartServer([](grpc::ServerContext*, FakeStreamServer::Stream* stream) {
    inference::ModelInferRequest request;
    for (int i = 0; i < 3 && stream->Read(&request); ++i) {
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  });
  std::unique_ptr<ModelStream> stream = Open();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(stream->Write(Request(absl::StrCat(i))).ok());
  }
  const absl::Status status = stream->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "draining");
  EXPECT_TRUE(answers().empty());
  EXPECT_EQ(done_statuses(), std::vector<absl::Status>{status});
  EXPECT_EQ(stream->Write(Request("after")).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ModelStreamTest, TheWriteQueueIsBoundedAndCancelEndsTheStream) {
  StartServer(NeverRead());
  StreamOptions options;
  options.max_queued_writes = 2;
  std::unique_ptr<ModelStream> stream = Open(options);
  // The server reads nothing, so once the socket buffers and the HTTP/2
  // flow-control window are full (a few 2 MB requests), one write stays on
  // the wire and two wait; the next is refused. Without the bound, all 16
  // would be queued.
  constexpr size_t kBig = 2 << 20;
  absl::Status refused;
  int accepted = 0;
  while (accepted < 16) {
    refused = stream->Write(Request(absl::StrCat(accepted), kBig));
    if (!refused.ok()) break;
    ++accepted;
  }
  EXPECT_GE(accepted, 3);
  EXPECT_LT(accepted, 16);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("max_queued_writes"));

  stream->Cancel();
  EXPECT_EQ(stream->Wait().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(stream->Write(Request("after")).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ModelStreamTest, DestroyingAnOpenStreamCancelsItAndRunsOnDoneFirst) {
  StartServer(NeverRead());
  std::unique_ptr<ModelStream> stream = Open();
  ASSERT_TRUE(stream->Write(Request("0")).ok());
  stream.reset();
  const std::vector<absl::Status> done = done_statuses();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].code(), absl::StatusCode::kCancelled);
}

// The stream's context holds a reference to the channel. Were the stream's
// last reaction to release it, after the client had let go of its own, the
// channel would be destroyed on gRPC's callback thread, which then frees its
// completion queue twice (gRPC 1.51; ASan reports it, glibc aborts on it).
// The race is narrow, hence the many short-lived clients.
TEST_F(ModelStreamTest, TheClientMayGoAsSoonAsItsStreamHasEnded) {
  StartServer(Echo);
  for (int i = 0; i < 300; ++i) {
    ClientOptions options;
    options.targets = {server_->target()};
    absl::StatusOr<std::unique_ptr<InferenceClient>> client =
        InferenceClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    std::atomic<int> answered{0};
    std::unique_ptr<ModelStream> stream =
        (*client)->OpenStream([&](StreamAnswer) { ++answered; });
    ASSERT_TRUE(stream->Write(Request(absl::StrCat(i))).ok());
    ASSERT_TRUE(stream->Finish().ok());
    EXPECT_EQ(answered.load(), 1);
    stream.reset();
    client->reset();
  }
}

TEST_F(ModelStreamTest, ACallbackMayWriteTheNextRequest) {
  StartServer(Echo);
  // A closed loop: each answer sends the next request, from the callback,
  // until 100 are answered; the last answer half-closes.
  constexpr int kRequests = 100;
  std::atomic<int> answered{0};
  ModelStream* raw = nullptr;
  std::unique_ptr<ModelStream> stream =
      client_->OpenStream([&](StreamAnswer answer) {
        EXPECT_TRUE(answer.status.ok());
        const int n = ++answered;
        if (n < kRequests) {
          EXPECT_TRUE(raw->Write(Request(absl::StrCat(n))).ok());
        } else {
          raw->CloseWrites();
        }
      });
  // Set before the first write, so before any answer.
  raw = stream.get();
  ASSERT_TRUE(stream->Write(Request("0")).ok());
  EXPECT_TRUE(stream->Wait().ok());
  EXPECT_EQ(answered.load(), kRequests);
}

}  // namespace
}  // namespace rnn
