// ModelStreamInfer: Triton's bidirectional inference stream, on gRPC's
// callback API.
//
// Each ModelInferRequest read from a stream is validated and batched exactly
// like a unary ModelInfer call, and gets exactly one
// ModelStreamInferResponse: its infer_response, or an error_message with
// infer_response carrying the request's id, model name and version and the
// parameter "error_code" (the canonical code's name, e.g. "UNAVAILABLE",
// which Triton's protocol has no field for). An error answers that request
// only; the stream stays open. Responses are written as requests finish, so
// not in request order: clients match them by id.
//
// Bounds. A stream holds at most `max_inflight` requests read but not yet
// written back; at the bound it stops reading, and HTTP/2 flow control then
// stops the client. So a client that sends without reading its answers
// cannot make the server buffer without limit: at most max_inflight
// requests and their answers per stream.
//
// Endings. After the client half-closes, the stream ends with OK once every
// answer is written. A client's cancellation drops the stream's queued
// requests uncomputed (the batcher sees is_cancelled) and ends it. A drain
// (StreamRegistry::Drain, on shutdown) stops reading, answers every request
// already read — those read before the drain with their results — and ends
// the stream with UNAVAILABLE, so clients reconnect elsewhere.
//
// Metrics count each request like a unary call: rnn_requests_total,
// rnn_request_duration_seconds (from the request's arrival to its answer
// being queued for writing) and rnn_inflight_requests.
//
// Thread-safety: gRPC and the batcher's workers call in concurrently; each
// stream's state is under its own mutex, the registry's under its own.
#ifndef RNN_SERVER_INFER_STREAM_H_
#define RNN_SERVER_INFER_STREAM_H_

#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "proto/grpc_predict_v2.pb.h"
#include "server/batching/batcher.h"
#include "server/inference_codec.h"
#include "server/metrics/metrics.h"
#include "server/serving_state.h"

namespace rnn {

class InferStream;

// The open streams, so that a drain reaches every one of them.
class StreamRegistry {
 public:
  // What each stream uses; none owned, all must outlive every stream.
  struct Dependencies {
    const ModelSignature* signature = nullptr;
    Batcher* batcher = nullptr;
    const ServingState* state = nullptr;
    Metrics* metrics = nullptr;  // May be null: metrics off.
    // Requests a stream holds read but not yet answered and written.
    int max_inflight = 128;
  };

  explicit StreamRegistry(const Dependencies& dependencies)
      : dependencies_(dependencies) {}

  // The reactor for a new ModelStreamInfer call. After Drain, it ends the
  // call with UNAVAILABLE at once.
  grpc::ServerBidiReactor<inference::ModelInferRequest,
                          inference::ModelStreamInferResponse>*
  Open(grpc::CallbackServerContext* context);

  // Makes every open stream stop reading, answer what it read, and end with
  // UNAVAILABLE; streams opened later end at once. Returns without waiting
  // (gRPC's server Shutdown waits for the streams to end).
  void Drain();

  // Streams whose reactors are still alive.
  size_t open_streams() const;

 private:
  friend class InferStream;
  void Remove(InferStream* stream);

  const Dependencies dependencies_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<InferStream*> streams_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rnn

#endif  // RNN_SERVER_INFER_STREAM_H_
