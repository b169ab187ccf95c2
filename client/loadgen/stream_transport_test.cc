#include "client/loadgen/stream_transport.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/testing/fake_stream_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn::loadgen {
namespace {

using testing::FakeStreamServer;

constexpr int64_t kSecondNs = 1'000'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Answers each request as it comes, except that an id ending in 7 gets an
// INVALID_ARGUMENT error answer, and that answers go out in pairs, the
// second request's first.
grpc::Status PairsReversed(grpc::ServerContext*,
                           FakeStreamServer::Stream* stream) {
  inference::ModelInferRequest first, second;
  auto answer = [](const inference::ModelInferRequest& r) {
    return r.id().back() == '7'
               ? FakeStreamServer::Answer(r, absl::InvalidArgumentError("bad"))
               : FakeStreamServer::Answer(r);
  };
  while (stream->Read(&first)) {
    if (!stream->Read(&second)) {
      stream->Write(answer(first));
      break;
    }
    stream->Write(answer(second));
    stream->Write(answer(first));
  }
  return grpc::Status::OK;
}

class StreamTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RequestPool>> pool =
        RequestPool::Create(PoolSpec(), std::vector<float>(20 * 100, 0.5f), {});
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    transport_.reset();
    server_.reset();
  }

  // Starts the fake with `handler` and a transport with one connection to
  // it.
  void Start(FakeStreamServer::Handler handler,
             absl::Duration deadline = absl::ZeroDuration()) {
    server_ = FakeStreamServer::Start(std::move(handler));
    ASSERT_NE(server_, nullptr);
    ClientOptions options;
    options.targets = {server_->target()};
    absl::StatusOr<std::unique_ptr<InferenceClient>> client =
        InferenceClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    transport_ = std::make_unique<StreamTransport>(
        std::vector<InferenceClient*>{client_.get()}, 1, *pool_, deadline);
    for (int i = 0; i < 16; ++i) {
      slots_.push_back(std::make_unique<CallSlot>());
      slots_.back()->index = i;
    }
  }

  // Starts a call on slot `i` with id "0.<serial>".
  CallSlot& Send(int i) {
    CallSlot& call = *slots_[i];
    const std::string id = absl::StrCat("0.", next_id_++);
    std::copy(id.begin(), id.end(), call.id);
    call.id_size = id.size();
    call.sent_ns = NowNs();
    transport_->Start(call);
    return call;
  }

  // The next `n` finished calls, failing the test after 10 s.
  std::vector<CallSlot*> Take(int n) {
    std::vector<CallSlot*> out;
    const int64_t give_up = NowNs() + 10 * kSecondNs;
    while (static_cast<int>(out.size()) < n && NowNs() < give_up) {
      if (CallSlot* call = transport_->Next(kSecondNs / 10)) {
        out.push_back(call);
      }
    }
    EXPECT_EQ(static_cast<int>(out.size()), n);
    return out;
  }

  // A handler that answers nothing until the test releases it, then answers
  // everything it has read and echoes the rest.
  FakeStreamServer::Handler HoldUntilReleased(int hold) {
    return
        [this, hold](grpc::ServerContext*, FakeStreamServer::Stream* stream) {
          std::vector<inference::ModelInferRequest> held(hold);
          for (auto& r : held) {
            if (!stream->Read(&r)) return grpc::Status::OK;
          }
          release_.WaitForNotification();
          for (const auto& r : held) stream->Write(FakeStreamServer::Answer(r));
          inference::ModelInferRequest request;
          while (stream->Read(&request)) {
            stream->Write(FakeStreamServer::Answer(request));
          }
          return grpc::Status::OK;
        };
  }

  std::string Id(const CallSlot& call) {
    return std::string(call.id, call.id_size);
  }

  absl::Notification release_;
  std::unique_ptr<RequestPool> pool_;
  std::unique_ptr<FakeStreamServer> server_;
  std::unique_ptr<InferenceClient> client_;
  std::unique_ptr<StreamTransport> transport_;
  std::vector<std::unique_ptr<CallSlot>> slots_;
  int next_id_ = 0;
};

TEST_F(StreamTransportTest, AnswersOutOfOrderFindTheirCalls) {
  Start(PairsReversed);
  for (int i = 0; i < 16; ++i) Send(i);
  const std::vector<CallSlot*> done = Take(16);
  std::vector<int> indexes;
  for (CallSlot* call : done) {
    indexes.push_back(call->index);
    const std::string id = Id(*call);
    if (id.back() == '7') {
      EXPECT_EQ(call->status_code, grpc::StatusCode::INVALID_ARGUMENT) << id;
      EXPECT_EQ(call->status_message, "bad");
      EXPECT_FALSE(call->parsed);
    } else {
      EXPECT_EQ(call->status_code, 0) << id << ": " << call->status_message;
      ASSERT_TRUE(call->parsed) << id;
      EXPECT_EQ(call->response.id(), id);
    }
  }
  // Answers came second-of-each-pair first.
  EXPECT_EQ(done[0]->index, 1);
  EXPECT_EQ(done[1]->index, 0);
  std::sort(indexes.begin(), indexes.end());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(indexes[i], i);
  EXPECT_EQ(server_->streams(), 1);
}

TEST_F(StreamTransportTest, AnEndedStreamFailsItsCallsAndIsReopened) {
  // The first stream reads two requests and ends UNAVAILABLE, as a
  // draining server does; later streams echo.
  Start([this](grpc::ServerContext*, FakeStreamServer::Stream* stream) {
    inference::ModelInferRequest request;
    if (server_->streams() == 1) {
      for (int i = 0; i < 2 && stream->Read(&request); ++i) {
      }
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    }
    while (stream->Read(&request)) {
      stream->Write(FakeStreamServer::Answer(request));
    }
    return grpc::Status::OK;
  });
  Send(0);
  Send(1);
  for (CallSlot* call : Take(2)) {
    EXPECT_EQ(call->status_code, grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(call->status_message, "draining");
  }
  CallSlot& later = Send(2);
  const std::vector<CallSlot*> done = Take(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], &later);
  EXPECT_EQ(later.status_code, 0) << later.status_message;
  EXPECT_EQ(later.response.id(), Id(later));
  EXPECT_EQ(server_->streams(), 2);
}

TEST_F(StreamTransportTest, DeadlinesArePerRequestAndLateAnswersIgnored) {
  constexpr absl::Duration kDeadline = absl::Milliseconds(100);
  Start(HoldUntilReleased(2), kDeadline);
  const int64_t sent = NowNs();
  Send(0);
  Send(1);
  for (CallSlot* call : Take(2)) {
    EXPECT_EQ(call->status_code, grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  const int64_t waited = NowNs() - sent;
  EXPECT_GE(waited, absl::ToInt64Nanoseconds(kDeadline));
  // Soon after, not at some later default (the bound leaves room for a
  // loaded machine and sanitizers).
  EXPECT_LT(waited, absl::ToInt64Nanoseconds(kDeadline + absl::Seconds(2)));

  // Slot 0 again, with a new id: the two late answers come first and must
  // not be taken for it.
  CallSlot& again = Send(0);
  release_.Notify();
  const std::vector<CallSlot*> done = Take(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(again.status_code, 0) << again.status_message;
  EXPECT_EQ(again.response.id(), Id(again));
  EXPECT_EQ(transport_->Next(kSecondNs / 5), nullptr);
}

TEST_F(StreamTransportTest, CancelAllHandsBackEveryCallCancelled) {
  Start(HoldUntilReleased(3));
  for (int i = 0; i < 3; ++i) Send(i);
  EXPECT_EQ(transport_->Next(kSecondNs / 20), nullptr);
  transport_->CancelAll();
  for (CallSlot* call : Take(3)) {
    EXPECT_EQ(call->status_code, grpc::StatusCode::CANCELLED);
  }
}

}  // namespace
}  // namespace rnn::loadgen
