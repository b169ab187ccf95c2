// GrpcTransport: calls through gRPC's C++ library — generic stubs (the
// request is already serialized) and one completion queue, polled by the
// worker thread itself, so no gRPC thread hands answers over.
//
// Thread-safety: one worker thread; the stubs may be shared between
// transports.
#ifndef RNN_CLIENT_LOADGEN_GRPC_TRANSPORT_H_
#define RNN_CLIENT_LOADGEN_GRPC_TRANSPORT_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "client/loadgen/request_pool.h"
#include "client/loadgen/transport.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/generic/generic_stub.h"

namespace rnn::loadgen {

class GrpcTransport final : public Transport {
 public:
  // `stubs[target * connections + connection]`; stubs and pool outlive the
  // transport. `deadline` zero: calls without deadline.
  GrpcTransport(std::vector<grpc::GenericStub*> stubs, int connections,
                const RequestPool& pool, absl::Duration deadline);
  // Requires every started call to have come back from Next.
  ~GrpcTransport() override;

  void Start(CallSlot& call) override;
  CallSlot* Next(int64_t timeout_ns) override;
  void CancelAll() override;

 private:
  struct Call {
    CallSlot* slot = nullptr;
    bool busy = false;
    std::optional<grpc::ClientContext> context;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
    grpc::ByteBuffer response;
    grpc::Status status;
  };

  const std::vector<grpc::GenericStub*> stubs_;
  const int connections_;
  const RequestPool& pool_;
  const absl::Duration deadline_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Call>> calls_;  // By CallSlot::index.
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_GRPC_TRANSPORT_H_
