// StreamTransport: calls as requests on ModelStreamInfer streams (Triton's
// bidirectional streaming inference), through the client library's
// ModelStream (client/model_stream.h): one stream per connection, opened by
// the first call that needs it. Requests are written as the pool serialized
// them; answers arrive on gRPC's threads, in any order, and are queued for
// the worker thread, which matches them to their calls by request id.
//
// Errors: an error answer fails its call only, with the code the server
// named (ModelStream: UNKNOWN when none). A stream that ends while calls are
// unanswered on it (the server draining, a lost connection) fails each of
// them with the stream's status, and the next call for that connection
// opens a new stream; a call whose stream turns out to be ending as it is
// written goes to a new stream at once.
//
// Deadlines: a stream has none; each call's deadline is kept here, per
// request. A call unanswered at its deadline fails DEADLINE_EXCEEDED then,
// and its answer, if it comes later, is ignored (the server still computes
// it: a stream cannot cancel one request).
//
// The runner bounds the calls in flight, so the streams' write queues are
// not bounded again here; queued requests are slices of the pool's bytes.
//
// Thread-safety: one worker thread; gRPC's threads only queue events.
#ifndef RNN_CLIENT_LOADGEN_STREAM_TRANSPORT_H_
#define RNN_CLIENT_LOADGEN_STREAM_TRANSPORT_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "client/inference_client.h"
#include "client/loadgen/request_pool.h"
#include "client/loadgen/transport.h"

namespace rnn::loadgen {

class StreamTransport final : public Transport {
 public:
  // `clients[target * connections + connection]`, each over its own
  // connection; the clients and the pool outlive the transport. `deadline`
  // zero: calls without deadline.
  StreamTransport(std::vector<InferenceClient*> clients, int connections,
                  const RequestPool& pool, absl::Duration deadline);
  // Requires every started call to have come back from Next. Half-closes
  // the streams with nothing unanswered (they end OK), cancels the others
  // (answers given up on at their deadline), and waits for them all.
  ~StreamTransport() override;

  void Start(CallSlot& call) override;
  CallSlot* Next(int64_t timeout_ns) override;
  void CancelAll() override;

 private:
  // What gRPC's threads hand over: one answer, or a stream's end.
  struct Event {
    uint64_t stream = 0;  // Stream::id
    bool end = false;
    absl::Status status;  // The answer's, or the stream's final status.
    std::string id;       // The answer's request id.
    inference::ModelInferResponse response;
  };
  struct Stream {
    std::unique_ptr<ModelStream> stream;
    uint64_t id = 0;  // Unique within the transport.
    // Requests written and not answered, including those given up on.
    int64_t unanswered = 0;
  };
  struct Pending {
    CallSlot* call = nullptr;
    uint64_t stream = 0;  // Stream::id
  };
  struct Deadline {
    CallSlot* call = nullptr;
    uint64_t serial = 0;  // serials_[call->index] when it was started.
    int64_t at_ns = 0;
  };

  void Open(size_t k);
  void Push(Event event);
  void Process(Event& event);
  void Fail(CallSlot& call, absl::StatusCode code, absl::string_view message);
  void ExpireDeadlines(int64_t now_ns);

  const std::vector<InferenceClient*> clients_;
  const int connections_;
  const RequestPool& pool_;
  const int64_t deadline_ns_;

  std::vector<Stream> streams_;  // Like clients_.
  // Streams replaced while ending, kept until their end event arrives.
  std::vector<Stream> retired_;
  uint64_t next_stream_id_ = 1;
  absl::flat_hash_map<std::string, Pending> pending_;  // By request id.
  std::vector<uint64_t> serials_;                      // By CallSlot::index.
  std::deque<Deadline> deadlines_;  // In start order, so in deadline order.
  std::vector<CallSlot*> done_;     // Finished, not yet taken.
  size_t done_head_ = 0;
  std::vector<Event> taken_;  // Events being processed.

  Mutex mu_;
  std::condition_variable events_cv_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;  // Next is waiting.
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_STREAM_TRANSPORT_H_
