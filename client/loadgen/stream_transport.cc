#include "client/loadgen/stream_transport.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rnn::loadgen {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

StreamTransport::StreamTransport(std::vector<InferenceClient*> clients,
                                 int connections, const RequestPool& pool,
                                 absl::Duration deadline)
    : clients_(std::move(clients)),
      connections_(connections),
      pool_(pool),
      deadline_ns_(absl::ToInt64Nanoseconds(deadline)),
      streams_(clients_.size()) {}

StreamTransport::~StreamTransport() {
  for (Stream& s : streams_) {
    if (s.stream == nullptr) continue;
    if (s.unanswered == 0) {
      s.stream->CloseWrites();
    } else {
      s.stream->Cancel();
    }
  }
  for (Stream& s : streams_) {
    if (s.stream != nullptr) s.stream->Wait().IgnoreError();
  }
  // Streams call back into this object until they are destroyed.
  streams_.clear();
  retired_.clear();
}

void StreamTransport::Open(size_t k) {
  Stream& s = streams_[k];
  s.id = next_stream_id_++;
  s.unanswered = 0;
  const uint64_t id = s.id;
  StreamOptions options;
  options.max_queued_writes = std::numeric_limits<size_t>::max();
  s.stream = clients_[k]->OpenStream(
      [this, id](StreamAnswer answer) {
        Event e;
        e.stream = id;
        e.status = std::move(answer.status);
        e.id = std::move(answer.id);
        e.response = std::move(answer.response);
        Push(std::move(e));
      },
      [this, id](const absl::Status& status) {
        Event e;
        e.stream = id;
        e.end = true;
        e.status = status;
        Push(std::move(e));
      },
      options);
}

void StreamTransport::Push(Event event) {
  bool wake;
  {
    MutexLock lock(&mu_);
    events_.push_back(std::move(event));
    wake = waiting_;
  }
  if (wake) events_cv_.notify_one();
}

void StreamTransport::Start(CallSlot& call) {
  if (static_cast<size_t>(call.index) >= serials_.size()) {
    serials_.resize(call.index + 1);
  }
  const uint64_t serial = ++serials_[call.index];
  const size_t k = call.target * connections_ + call.connection;
  const absl::string_view id(call.id, call.id_size);
  if (streams_[k].stream == nullptr) Open(k);
  absl::Status written =
      streams_[k].stream->Write(pool_.Request(call.entry, id));
  if (absl::IsFailedPrecondition(written)) {
    // The stream is ending (its end event is on the way): it keeps the
    // calls it has, a new stream takes this one.
    retired_.push_back(std::move(streams_[k]));
    Open(k);
    written = streams_[k].stream->Write(pool_.Request(call.entry, id));
  }
  if (!written.ok()) {
    Fail(call, written.code(), written.message());
    return;
  }
  ++streams_[k].unanswered;
  pending_[id] = Pending{&call, streams_[k].id};
  if (deadline_ns_ > 0) {
    deadlines_.push_back({&call, serial, call.sent_ns + deadline_ns_});
  }
}

void StreamTransport::Fail(CallSlot& call, absl::StatusCode code,
                           absl::string_view message) {
  call.status_code = static_cast<int>(code);
  call.status_message = std::string(message);
  call.parsed = false;
  done_.push_back(&call);
}

void StreamTransport::Process(Event& event) {
  if (!event.end) {
    for (Stream& s : streams_) {
      if (s.id == event.stream) --s.unanswered;
    }
    const auto it = pending_.find(event.id);
    // Not pending: given up on at its deadline, or failed with its stream.
    if (it == pending_.end()) return;
    CallSlot& call = *it->second.call;
    pending_.erase(it);
    if (!event.status.ok()) {
      Fail(call, event.status.code(), event.status.message());
      return;
    }
    call.status_code = 0;
    call.status_message.clear();
    call.response = std::move(event.response);
    call.parsed = true;
    done_.push_back(&call);
    return;
  }
  // A stream has ended: its unanswered calls never will be.
  absl::Status status = event.status;
  if (status.ok()) {
    status = absl::InternalError(
        "the server ended the stream (OK) without answering this request");
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.stream == event.stream) {
      Fail(*it->second.call, status.code(), status.message());
      pending_.erase(it++);
    } else {
      ++it;
    }
  }
  for (Stream& s : streams_) {
    if (s.id == event.stream) s.stream.reset();
  }
  for (auto it = retired_.begin(); it != retired_.end(); ++it) {
    if (it->id == event.stream) {
      retired_.erase(it);
      break;
    }
  }
}

void StreamTransport::ExpireDeadlines(int64_t now_ns) {
  while (!deadlines_.empty() && deadlines_.front().at_ns <= now_ns) {
    const Deadline d = deadlines_.front();
    deadlines_.pop_front();
    // The call may have finished, and its slot carry another call since.
    if (serials_[d.call->index] != d.serial) continue;
    const auto it =
        pending_.find(absl::string_view(d.call->id, d.call->id_size));
    if (it == pending_.end() || it->second.call != d.call) continue;
    pending_.erase(it);
    Fail(*d.call, absl::StatusCode::kDeadlineExceeded,
         "deadline exceeded (kept per request on the stream)");
  }
}

CallSlot* StreamTransport::Next(int64_t timeout_ns) {
  const int64_t until = NowNs() + std::max<int64_t>(timeout_ns, 0);
  while (true) {
    if (done_head_ < done_.size()) {
      CallSlot* call = done_[done_head_++];
      if (done_head_ == done_.size()) {
        done_.clear();
        done_head_ = 0;
      }
      return call;
    }
    const int64_t now = NowNs();
    ExpireDeadlines(now);
    if (!done_.empty()) continue;
    {
      MutexLock lock(&mu_);
      if (events_.empty()) {
        if (now >= until) return nullptr;
        const int64_t wake_ns = deadlines_.empty()
                                    ? until
                                    : std::min(until, deadlines_.front().at_ns);
        waiting_ = true;
        mu_.WaitUntil(events_cv_, std::chrono::steady_clock::time_point(
                                      std::chrono::nanoseconds(wake_ns)));
        waiting_ = false;
      }
      taken_.swap(events_);
    }
    for (Event& e : taken_) Process(e);
    taken_.clear();
  }
}

void StreamTransport::CancelAll() {
  for (Stream& s : streams_) {
    if (s.stream != nullptr) s.stream->Cancel();
  }
  for (Stream& s : retired_) s.stream->Cancel();
}

}  // namespace rnn::loadgen
