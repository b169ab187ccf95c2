// Test helpers for talking to an in-process server through the client.
#ifndef RNN_TESTS_TESTING_CLIENT_HELPERS_H_
#define RNN_TESTS_TESTING_CLIENT_HELPERS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "client/inference_client.h"

namespace rnn::testing {

// A client of 127.0.0.1:`grpc_port` with default options.
std::unique_ptr<InferenceClient> LoopbackClient(int grpc_port);

// Starts InferAsync for every input without waiting in between, then waits
// for all answers and returns them in the inputs' order. Every call has the
// client's deadline, so all answers come; if one has not after 60 s the
// process aborts, since its callback could still write into freed memory.
std::vector<absl::StatusOr<InferOutput>> InferAllAtOnce(
    InferenceClient& client, const std::vector<InferInput>& inputs);

}  // namespace rnn::testing

#endif  // RNN_TESTS_TESTING_CLIENT_HELPERS_H_
