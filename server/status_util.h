// The one place where absl::Status becomes grpc::Status. Both use the same
// canonical codes (google.rpc.Code), so the code maps one to one and the
// message is kept.
#ifndef RNN_SERVER_STATUS_UTIL_H_
#define RNN_SERVER_STATUS_UTIL_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace rnn {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace rnn

#endif  // RNN_SERVER_STATUS_UTIL_H_
