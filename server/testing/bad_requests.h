// Malformed ModelInfer requests, each with the status it must get: one table
// shared by the codec's unit test and the end-to-end test, so both hold the
// server to the same list.
#ifndef RNN_SERVER_TESTING_BAD_REQUESTS_H_
#define RNN_SERVER_TESTING_BAD_REQUESTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/grpc_predict_v2.pb.h"
#include "server/inference_codec.h"

namespace rnn::testing {

// A well-formed request for `rows` sequences of `signature`, raw FP32 input
// whose values are row * 0.001 + column * 1e-6 (distinct per row).
inference::ModelInferRequest GoodRequest(const ModelSignature& signature,
                                         int rows);

struct BadRequest {
  std::string name;  // What is wrong, for test output.
  inference::ModelInferRequest request;
  absl::StatusCode code;
  std::string message_part;  // Must appear in the error message.
};

std::vector<BadRequest> BadRequests(const ModelSignature& signature);

}  // namespace rnn::testing

#endif  // RNN_SERVER_TESTING_BAD_REQUESTS_H_
