// Transport: how a LoadRunner worker puts calls on the wire and learns they
// finished. Each worker thread owns one transport; a transport is used by
// that thread only.
//
// Two implementations:
//   GrpcTransport (grpc_transport.h): gRPC's C++ library, a completion
//     queue and generic stubs. The reference behaviour of a gRPC client.
//   H2Transport (h2_transport.h): the gRPC wire protocol spoken directly
//     over HTTP/2 with nghttp2, as h2load does: much less client CPU per
//     call than gRPC's library (measured in docs/benchmarks.md), so the
//     generator leaves the CPU to the server it measures.
// Both send the same bytes (the RequestPool's) and give the same answers.
#ifndef RNN_CLIENT_LOADGEN_TRANSPORT_H_
#define RNN_CLIENT_LOADGEN_TRANSPORT_H_

#include <cstdint>
#include <string>

#include "proto/grpc_predict_v2.pb.h"

namespace rnn::loadgen {

// One request in flight, owned by the worker; the transport fills in the
// outcome before it hands the call back from Next.
struct CallSlot {
  int index = 0;  // The slot's position in its worker, fixed.
  // Set by the worker before Start.
  int entry = 0;       // RequestPool entry.
  int target = 0;      // Index into the runner's targets.
  int connection = 0;  // Which of the target's connections.
  int64_t intended_ns = 0;
  int64_t sent_ns = 0;
  char id[24];
  size_t id_size = 0;
  // Set by the transport when the call finishes.
  int status_code = 0;  // grpc::StatusCode value.
  std::string status_message;
  bool parsed = false;  // `response` holds the answer.
  inference::ModelInferResponse response;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Starts `call` (the request is the pool's entry `call.entry` with id
  // `call.id`). The call is handed back by Next exactly once.
  virtual void Start(CallSlot& call) = 0;
  // Waits at most `timeout_ns` for a call to finish and returns it, or
  // nullptr when none did.
  virtual CallSlot* Next(int64_t timeout_ns) = 0;
  // Cancels every unfinished call; each still comes back from Next.
  virtual void CancelAll() = 0;
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_TRANSPORT_H_
