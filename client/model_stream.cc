#include "client/model_stream.h"

#include <condition_variable>
#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "client/grpc_status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "grpcpp/support/stub_options.h"
#include "proto/grpc_predict_v2.grpc.pb.h"

namespace rnn {
namespace {

const std::string kModelStreamInfer =
    absl::StrCat("/", inference::GRPCInferenceService::service_full_name(),
                 "/ModelStreamInfer");

// The code a failed request's answer names in its "error_code" parameter, as
// a canonical name ("UNAVAILABLE"); UNKNOWN when there is none, when the name
// is not a code, or when it says OK for an answer that carries an error.
absl::StatusCode ErrorCode(const inference::ModelInferResponse& response) {
  const auto it = response.parameters().find("error_code");
  if (it == response.parameters().end()) return absl::StatusCode::kUnknown;
  const std::string& name = it->second.string_param();
  for (int code = 1; code <= 16; ++code) {
    if (absl::StatusCodeToString(static_cast<absl::StatusCode>(code)) == name) {
      return static_cast<absl::StatusCode>(code);
    }
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace

// The gRPC reactor. Writes are started from Write (a user thread) as well as
// from reactions, so a hold keeps the call open until writing has ended:
// gracefully (CloseWrites, once the queue is written: WritesDone, then the
// hold goes) or not (Cancel, a failed write or the server ending the stream:
// the hold goes as soon as no write is in flight).
//
// ModelStream owns the reactor and destroys it after Wait: the reactor's
// ClientContext may hold the last reference to the channel, which must not
// be released on one of gRPC's threads. OnDone therefore signals the end
// through an Ending that it holds itself, so that the owner may destroy the
// reactor while OnDone is still returning.
class ModelStream::Reactor final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer,
                                     inference::ModelStreamInferResponse> {
 public:
  Reactor(OnAnswer on_answer, ModelStream::OnDone on_done,
          size_t max_queued_writes)
      : on_answer_(std::move(on_answer)),
        on_done_(std::move(on_done)),
        max_queued_writes_(max_queued_writes) {}

  void Start(StreamStub& stub, const StreamOptions& options) {
    if (options.deadline.has_value()) {
      context_.set_deadline(
          absl::ToChronoTime(absl::Now() + *options.deadline));
    }
    stub.PrepareBidiStreamingCall(&context_, kModelStreamInfer,
                                  grpc::StubOptions(), this);
    AddHold();
    StartRead(&read_);
    StartCall();
  }

  absl::Status Write(grpc::ByteBuffer request) {
    const grpc::ByteBuffer* start = nullptr;
    {
      MutexLock lock(&mu_);
      if (closed_) {
        return absl::FailedPreconditionError(
            "the stream is closed for writing (CloseWrites, Cancel, or the "
            "stream has ended)");
      }
      const size_t waiting = queue_.size() - (writing_ ? 1 : 0);
      if (waiting >= max_queued_writes_) {
        return absl::ResourceExhaustedError(
            absl::StrCat(waiting,
                         " requests already wait to be written on the stream "
                         "(StreamOptions::max_queued_writes)"));
      }
      queue_.push_back(std::move(request));
      if (!writing_) {
        writing_ = true;
        start = &queue_.front();
      }
    }
    // std::deque keeps references to its elements valid as it grows, and
    // nothing removes the front while writing_.
    if (start != nullptr) StartWrite(start);
    return absl::OkStatus();
  }

  void CloseWrites() {
    EndOfWrites end;
    {
      MutexLock lock(&mu_);
      if (closed_) return;
      closed_ = true;
      half_close_ = true;
      end = EndWritesLocked();
    }
    Apply(end);
  }

  void Cancel() {
    EndOfWrites end;
    {
      MutexLock lock(&mu_);
      if (done_) return;
      StopWritingLocked();
      end = EndWritesLocked();
    }
    context_.TryCancel();
    Apply(end);
  }

  absl::Status Wait() {
    Ending& ending = *ending_;
    MutexLock lock(&ending.mu);
    while (!ending.done) ending.mu.Wait(ending.cv);
    return ending.status;
  }

  void OnWriteDone(bool ok) override {
    const grpc::ByteBuffer* next = nullptr;
    EndOfWrites end;
    {
      MutexLock lock(&mu_);
      queue_.pop_front();
      writing_ = false;
      if (!ok) StopWritingLocked();
      if (queue_.empty()) {
        end = EndWritesLocked();
      } else {
        writing_ = true;
        next = &queue_.front();
      }
    }
    if (next != nullptr) {
      StartWrite(next);
    } else {
      Apply(end);
    }
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      StreamAnswer answer;
      inference::ModelInferResponse& response = *read_.mutable_infer_response();
      answer.id = response.id();
      if (!read_.error_message().empty()) {
        answer.status =
            absl::Status(ErrorCode(response), read_.error_message());
      }
      answer.response = std::move(response);
      on_answer_(std::move(answer));
      StartRead(&read_);
      return;
    }
    // The server has ended the stream (or the call failed): what is still
    // queued can never be answered.
    EndOfWrites end;
    {
      MutexLock lock(&mu_);
      StopWritingLocked();
      end = EndWritesLocked();
    }
    Apply(end);
  }

  void OnDone(const grpc::Status& grpc_status) override {
    const absl::Status status = FromGrpcStatus(grpc_status);
    if (on_done_) on_done_(status);
    {
      MutexLock lock(&mu_);
      done_ = true;
    }
    // Once `ending` says done, the owner may destroy this reactor: from
    // here on, only `ending` is touched.
    const std::shared_ptr<Ending> ending = ending_;
    {
      MutexLock lock(&ending->mu);
      ending->status = status;
      ending->done = true;
    }
    ending->cv.notify_all();
  }

 private:
  // How the call ended, for Wait.
  struct Ending {
    Mutex mu;
    std::condition_variable cv;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::Status status ABSL_GUARDED_BY(mu);
  };

  // What to do, outside the lock, to end the writing side.
  struct EndOfWrites {
    bool writes_done = false;
    bool remove_hold = false;
  };

  // Accepts no more writes and drops the queued ones not yet on the wire.
  void StopWritingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    closed_ = true;
    half_close_ = false;
    queue_.erase(queue_.begin() + (writing_ ? 1 : 0), queue_.end());
  }

  // Once writing is closed and no write is in flight, the hold goes (once),
  // after WritesDone when the close is graceful.
  EndOfWrites EndWritesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!closed_ || writing_ || !hold_) return {};
    hold_ = false;
    return {half_close_, true};
  }

  void Apply(const EndOfWrites& end) {
    if (end.writes_done) StartWritesDone();
    if (end.remove_hold) RemoveHold();
  }

  grpc::ClientContext context_;
  OnAnswer on_answer_;
  ModelStream::OnDone on_done_;
  const size_t max_queued_writes_;
  // Touched only by the read reactions, which never overlap.
  inference::ModelStreamInferResponse read_;
  // Shared with OnDone, which may still be returning when the reactor is
  // destroyed.
  const std::shared_ptr<Ending> ending_ = std::make_shared<Ending>();

  Mutex mu_;
  // Requests to write; while writing_, the front is on the wire.
  std::deque<grpc::ByteBuffer> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // No more writes accepted.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Closed by CloseWrites: WritesDone follows the last write.
  bool half_close_ ABSL_GUARDED_BY(mu_) = false;
  // The hold taken at the start is still held.
  bool hold_ ABSL_GUARDED_BY(mu_) = true;
  // OnDone has run (Cancel has nothing left to do).
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

std::unique_ptr<ModelStream> ModelStream::Open(StreamStub& stub,
                                               OnAnswer on_answer,
                                               OnDone on_done,
                                               const StreamOptions& options) {
  auto reactor = std::make_unique<Reactor>(
      std::move(on_answer), std::move(on_done), options.max_queued_writes);
  reactor->Start(stub, options);
  return std::unique_ptr<ModelStream>(new ModelStream(std::move(reactor)));
}

ModelStream::ModelStream(std::unique_ptr<Reactor> reactor)
    : reactor_(std::move(reactor)) {}

ModelStream::~ModelStream() {
  reactor_->Cancel();
  // The final status went to on_done; here only the wait matters.
  reactor_->Wait().IgnoreError();
}

absl::Status ModelStream::Write(const inference::ModelInferRequest& request) {
  grpc::ByteBuffer buffer;
  bool own_buffer;
  grpc::Status serialized =
      grpc::SerializationTraits<inference::ModelInferRequest>::Serialize(
          request, &buffer, &own_buffer);
  if (!serialized.ok()) return FromGrpcStatus(serialized);
  return reactor_->Write(std::move(buffer));
}

absl::Status ModelStream::Write(grpc::ByteBuffer request) {
  return reactor_->Write(std::move(request));
}

void ModelStream::CloseWrites() { reactor_->CloseWrites(); }

void ModelStream::Cancel() { reactor_->Cancel(); }

absl::Status ModelStream::Wait() { return reactor_->Wait(); }

absl::Status ModelStream::Finish() {
  reactor_->CloseWrites();
  return reactor_->Wait();
}

}  // namespace rnn
