// FromGrpcStatus: the client library's one conversion from grpc::Status to
// absl::Status. The two share the canonical codes, number for number.
#ifndef RNN_CLIENT_GRPC_STATUS_H_
#define RNN_CLIENT_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace rnn {

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace rnn

#endif  // RNN_CLIENT_GRPC_STATUS_H_
