#include "server/infer_stream.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/status_util.h"

namespace rnn {

// Slots whose request held more than this are freed after use rather than
// kept for the next request: a cleared protobuf keeps its strings' capacity,
// and one huge request should not pin max_inflight copies of its size.
constexpr size_t kMaxReusedRequestBytes = 256 << 10;

// One ModelStreamInfer call. Lives until gRPC calls OnDone, which comes only
// after Finish, and Finish only once every request read is answered and its
// answer written (or dropped, when the client is gone) — so the batcher never
// holds a task of a deleted stream.
//
// Every transition goes through NextSteps, which decides under the lock what
// to start (one read, one write, or the Finish) and Run, which starts it
// after the lock is released: gRPC may run reactions on the calling thread.
class InferStream final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse> {
 public:
  InferStream(StreamRegistry* registry, grpc::CallbackServerContext* context)
      : registry_(registry),
        deps_(registry->dependencies_),
        deadline_(absl::FromChrono(context->deadline())) {}

  ~InferStream() override = default;

  // Starts the first read, or ends the call at once when draining.
  void Start() {
    Next next;
    {
      absl::MutexLock lock(&mu_);
      next = NextSteps();
    }
    Run(next);
  }

  // Called with the registry's lock held.
  void Drain() {
    Next next;
    {
      absl::MutexLock lock(&mu_);
      draining_.store(true, std::memory_order_relaxed);
      next = NextSteps();
    }
    Run(next);
  }

  void OnReadDone(bool ok) override {
    Slot* slot;
    {
      absl::MutexLock lock(&mu_);
      slot = std::exchange(reading_, nullptr);
      if (ok) {
        ++held_;
        accepting_ = true;
      } else {
        reads_done_ = true;
        Release(slot);
      }
    }
    if (ok) Accept(slot);
    Next next;
    {
      absl::MutexLock lock(&mu_);
      accepting_ = false;
      next = NextSteps();
    }
    Run(next);
  }

  void OnWriteDone(bool ok) override {
    Next next;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) write_failed_ = true;
      Release(std::exchange(writing_, nullptr));
      --held_;
      next = NextSteps();
    }
    Run(next);
  }

  void OnCancel() override {
    cancelled_.store(true, std::memory_order_relaxed);
    deps_.batcher->NotifyCancelled();
    Next next;
    {
      absl::MutexLock lock(&mu_);
      next = NextSteps();
    }
    Run(next);
  }

  void OnDone() override {
    registry_->Remove(this);
    delete this;
  }

 private:
  struct Slot {
    inference::ModelInferRequest request;
    inference::ModelStreamInferResponse response;
    DecodedRequest decoded;  // Holds the rows' aligned copy, if one was made.
    absl::Time start;
  };

  // What to start once the lock is released.
  struct Next {
    Slot* read = nullptr;
    Slot* write = nullptr;
    bool finish = false;
    grpc::Status status;
  };

  Next NextSteps() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Next next;
    const bool cancelled = cancelled_.load(std::memory_order_relaxed);
    const bool draining = draining_.load(std::memory_order_relaxed);
    // Answers go out one write at a time; with nobody to read them, they
    // are dropped.
    while (writing_ == nullptr && !to_write_.empty()) {
      Slot* slot = to_write_.front();
      to_write_.pop_front();
      if (cancelled || write_failed_ || finished_) {
        Release(slot);
        --held_;
        continue;
      }
      writing_ = next.write = slot;
    }
    if (reading_ == nullptr && !reads_done_ && !draining && !cancelled &&
        !finished_ && held_ < deps_.max_inflight) {
      reading_ = next.read = TakeSlot();
      read_starting_ = true;
    }
    if (!finished_ && held_ == 0 && writing_ == nullptr && !read_starting_ &&
        !accepting_ && (reads_done_ || draining || cancelled)) {
      finished_ = next.finish = true;
      if (cancelled) {
        next.status = grpc::Status(grpc::StatusCode::CANCELLED,
                                   "stream cancelled by the client");
      } else if (!reads_done_) {
        next.status = grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            "server is shutting down; every request read on this stream was "
            "answered");
      }
    }
    return next;
  }

  void Run(Next next) {
    for (;;) {
      if (next.write != nullptr) StartWrite(&next.write->response);
      if (next.read == nullptr) break;
      StartRead(&next.read->request);
      // Only now may the stream finish: a Finish before StartRead could let
      // gRPC delete the stream under it.
      absl::MutexLock lock(&mu_);
      read_starting_ = false;
      next = NextSteps();
    }
    if (next.finish) Finish(next.status);
  }

  Slot* TakeSlot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (free_.empty()) return new Slot;
    Slot* slot = free_.back().release();
    free_.pop_back();
    return slot;
  }

  void Release(Slot* slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::unique_ptr<Slot> owned(slot);
    const bool large =
        !slot->request.raw_input_contents().empty() &&
        slot->request.raw_input_contents(0).capacity() > kMaxReusedRequestBytes;
    if (!large) free_.push_back(std::move(owned));
  }

  // Validates and queues a request just read; every path ends in Answer.
  void Accept(Slot* slot) {
    slot->start = absl::Now();
    if (deps_.metrics != nullptr) deps_.metrics->RequestStarted();
    slot->response.Clear();
    slot->decoded = DecodedRequest();
    const ModelSignature& signature = *deps_.signature;
    if (draining_.load(std::memory_order_relaxed) || !deps_.state->serving()) {
      Answer(slot, absl::UnavailableError(
                       absl::StrCat("model '", signature.name,
                                    "' is not ready (server shutting down)")));
      return;
    }
    if (absl::Status s = DecodeRequest(signature, slot->request, slot->decoded);
        !s.ok()) {
      Answer(slot, s);
      return;
    }
    BatchTask task;
    task.input = slot->decoded.input;
    task.output = PrepareResponse(signature, slot->request, slot->decoded.rows,
                                  *slot->response.mutable_infer_response());
    task.deadline =
        std::min(deadline_, slot->start + slot->decoded.queue_timeout);
    task.is_cancelled = [this] {
      return cancelled_.load(std::memory_order_relaxed);
    };
    task.done = [this, slot](absl::Status s) { Answer(slot, s); };
    if (absl::Status s = deps_.batcher->Submit(std::move(task)); !s.ok()) {
      Answer(slot, s);
    }
  }

  // Any thread: the request's result is in; queue its answer for writing.
  void Answer(Slot* slot, const absl::Status& status) {
    if (!status.ok()) {
      const inference::ModelInferRequest& request = slot->request;
      inference::ModelStreamInferResponse& response = slot->response;
      response.Clear();
      response.set_error_message(std::string(status.message()));
      inference::ModelInferResponse* header = response.mutable_infer_response();
      header->set_model_name(request.model_name());
      header->set_model_version(request.model_version());
      header->set_id(request.id());
      (*header->mutable_parameters())["error_code"].set_string_param(
          absl::StatusCodeToString(status.code()));
    }
    if (deps_.metrics != nullptr) {
      deps_.metrics->RequestFinished(status.code(), absl::Now() - slot->start);
    }
    Next next;
    {
      absl::MutexLock lock(&mu_);
      to_write_.push_back(slot);
      next = NextSteps();
    }
    // Nothing of this stream may be touched from here on: once the answer is
    // written, the stream may finish and be deleted on another thread.
    Run(next);
  }

  StreamRegistry* const registry_;
  const StreamRegistry::Dependencies& deps_;
  const absl::Time deadline_;
  std::atomic<bool> cancelled_{false};
  // Set under mu_ (so NextSteps sees it consistently); read without it by
  // Accept.
  std::atomic<bool> draining_{false};

  absl::Mutex mu_;
  std::vector<std::unique_ptr<Slot>> free_ ABSL_GUARDED_BY(mu_);
  std::deque<Slot*> to_write_ ABSL_GUARDED_BY(mu_);
  Slot* reading_ ABSL_GUARDED_BY(mu_) = nullptr;
  Slot* writing_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Requests read and not yet written back (or dropped).
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  // A read was handed out by NextSteps and StartRead not yet called.
  bool read_starting_ ABSL_GUARDED_BY(mu_) = false;
  // OnReadDone is accepting a request and will lock again: the request may
  // be answered and written meanwhile, but the stream must not finish.
  bool accepting_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
StreamRegistry::Open(grpc::CallbackServerContext* context) {
  auto* stream = new InferStream(this, context);
  bool draining;
  {
    absl::MutexLock lock(&mu_);
    streams_.insert(stream);
    draining = draining_;
    // Drain under this lock so that a concurrent Drain cannot miss the
    // stream or reach it twice.
    if (draining) stream->Drain();
  }
  if (!draining) stream->Start();
  return stream;
}

void StreamRegistry::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  for (InferStream* stream : streams_) stream->Drain();
}

size_t StreamRegistry::open_streams() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

void StreamRegistry::Remove(InferStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

}  // namespace rnn
