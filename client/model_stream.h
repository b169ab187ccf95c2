// ModelStream: one ModelStreamInfer call (Triton's bidirectional streaming
// inference), opened with InferenceClient::OpenStream. Requests are written
// on one HTTP/2 stream and each gets exactly one answer, delivered to a
// callback with the request's id; answers come in any order, so callers
// match them by id.
//
// Example:
//   #include <atomic>
//   #include <string>
//   #include <vector>
//   #include "client/inference_client.h"
//   ClientOptions options;
//   options.targets = {"localhost:8001"};
//   absl::StatusOr<std::unique_ptr<InferenceClient>> client =
//       InferenceClient::Create(options);
//   if (!client.ok()) return client.status();
//   std::atomic<int> right{0};
//   std::unique_ptr<ModelStream> stream =
//       (*client)->OpenStream([&right](StreamAnswer answer) {
//         // On a gRPC thread; answer.id names the request.
//         if (answer.status.ok()) ++right;
//       });
//   std::vector<float> rows(20 * 100, 0.5f);  // one sequence
//   for (int i = 0; i < 8; ++i) {
//     InferInput input;  // model "rnn", input "sequence"
//     input.data = rows;
//     input.shape = {1, 20, 100};
//     input.id = std::to_string(i);
//     absl::Status queued =
//         stream->Write(InferenceClient::BuildRequest(input));
//     if (!queued.ok()) return queued;
//   }
//   // Half-closes, then waits for the eight answers and the server's end.
//   absl::Status finished = stream->Finish();
//   if (!finished.ok()) return finished;
//
// Writes: gRPC allows one write in flight per stream, so Write queues the
// request and returns at once; the queue is bounded
// (StreamOptions::max_queued_writes). The server holds a bounded number of
// unanswered requests per stream and stops reading beyond it; HTTP/2 flow
// control then stops the writes, and the queue fills.
//
// Answers: a request's error answers that request only, and the stream stays
// open. Its StreamAnswer has the status code the server named in the
// answer's "error_code" parameter (rnn-server sets it; UNKNOWN when absent)
// and the server's error_message.
//
// The end: the stream ends when the server ends it — after CloseWrites and
// every answer (OK), or early with an error (the server draining:
// UNAVAILABLE; a broken connection: UNAVAILABLE; Cancel: CANCELLED). Requests
// still unanswered then get no answer; on_done and Wait tell the stream's
// final status.
//
// Callbacks run on gRPC threads and must not block (no Wait, no destroying
// the stream); they may call Write, CloseWrites and Cancel. on_answer calls
// never overlap one another; on_done runs once, after the last on_answer.
//
// Thread-safety: every method may be called from any thread, concurrently,
// except the destructor.
#ifndef RNN_CLIENT_MODEL_STREAM_H_
#define RNN_CLIENT_MODEL_STREAM_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "proto/grpc_predict_v2.pb.h"

namespace rnn {

struct StreamOptions {
  // Most requests Write keeps waiting for the wire (beyond the one being
  // written); more are refused with ResourceExhausted. 1024: far above the
  // answers a server holds per stream (rnn-server: 128 by default), so a
  // writer only meets it when the server has stopped reading, and 1024
  // single-sequence requests take 8 MB.
  size_t max_queued_writes = 1024;
  // Deadline of the whole stream. Unset: none, the stream lives until it is
  // closed or cancelled (ClientOptions::deadline, a per-call deadline, does
  // not apply to streams).
  std::optional<absl::Duration> deadline;
};

// One request's answer on a stream.
struct StreamAnswer {
  std::string id;  // The request's id, as the server echoed it.
  // OK: `response` holds the request's outputs. Otherwise the request's
  // error: the code named by the answer's "error_code" parameter (UNKNOWN
  // when absent or unknown) and the server's error_message.
  absl::Status status;
  // The server's infer_response; on an error, only its id, model name and
  // version and parameters are set.
  inference::ModelInferResponse response;
};

// The stub streams are opened with: requests go out pre-serialized (so a
// caller holding serialized requests copies nothing), answers are parsed by
// gRPC.
using StreamStub =
    grpc::TemplatedGenericStub<grpc::ByteBuffer,
                               inference::ModelStreamInferResponse>;

class ModelStream {
 public:
  using OnAnswer = absl::AnyInvocable<void(StreamAnswer answer)>;
  using OnDone = absl::AnyInvocable<void(const absl::Status& status)>;

  ModelStream(const ModelStream&) = delete;
  ModelStream& operator=(const ModelStream&) = delete;
  // Cancels the stream unless it has ended, and waits until it has: no
  // callback runs after the destructor returns. Not from the stream's own
  // callbacks (it would wait for itself).
  ~ModelStream();

  // Queues `request` to be written. OK: the request will get exactly one
  // answer, unless the stream ends first. FailedPrecondition after
  // CloseWrites or Cancel, or once the stream is ending; ResourceExhausted
  // when max_queued_writes requests already wait.
  absl::Status Write(const inference::ModelInferRequest& request);
  // As above, with the request already serialized; its slices are sent as
  // they are.
  absl::Status Write(grpc::ByteBuffer request);

  // Half-closes the stream once the queued requests are written: the server
  // then answers what it has and ends the stream. Later Writes fail.
  void CloseWrites();
  // Cancels the stream: queued requests are not written, the server drops
  // what it has not answered, and the stream ends CANCELLED.
  void Cancel();
  // Waits until the stream has ended and returns its final status.
  absl::Status Wait();
  // CloseWrites, then Wait.
  absl::Status Finish();

 private:
  friend class InferenceClient;
  class Reactor;

  // Starts the call on `stub`, which must outlive the stream.
  static std::unique_ptr<ModelStream> Open(StreamStub& stub, OnAnswer on_answer,
                                           OnDone on_done,
                                           const StreamOptions& options);
  explicit ModelStream(std::unique_ptr<Reactor> reactor);

  // Destroyed by the destructor, on the owner's thread, never by gRPC's
  // last reaction: the reactor's ClientContext holds a reference to the
  // channel, and a channel released on one of gRPC's callback threads
  // destroys that thread's completion queue from under it (a double free
  // in gRPC 1.51).
  const std::unique_ptr<Reactor> reactor_;
};

}  // namespace rnn

#endif  // RNN_CLIENT_MODEL_STREAM_H_
