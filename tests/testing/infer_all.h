// Test helper: sends many inference calls at once and collects the answers.
#ifndef RNN_TESTS_TESTING_INFER_ALL_H_
#define RNN_TESTS_TESTING_INFER_ALL_H_

#include <vector>

#include "absl/status/statusor.h"
#include "client/inference_client.h"

namespace rnn::testing {

// Starts InferAsync for every input without waiting in between, then waits
// for all answers and returns them in the inputs' order. Every call has the
// client's deadline, so all answers come; if one has not after 60 s the
// process aborts, since its callback could still write into freed memory.
std::vector<absl::StatusOr<InferOutput>> InferAllAtOnce(
    InferenceClient& client, const std::vector<InferInput>& inputs);

}  // namespace rnn::testing

#endif  // RNN_TESTS_TESTING_INFER_ALL_H_
