// The test oracle: the Keras SimpleRNN + Dense(softmax) forward pass written
// as plain loops with double accumulation, independent of oneDNN. It is
// itself checked against the golden vectors computed outside this project
// (tests/data/golden/).
#ifndef RNN_MODEL_TESTING_REFERENCE_FORWARD_H_
#define RNN_MODEL_TESTING_REFERENCE_FORWARD_H_

#include <vector>

#include "absl/types/span.h"
#include "model/rnn_weights.h"

namespace rnn::testing {

struct ReferenceOutput {
  std::vector<double> probabilities;  // [N, O]
  std::vector<double> last_hidden;    // [N, H]
};

// `input` is [N, T, C] row-major.
ReferenceOutput ReferenceForward(const RnnWeights& w,
                                 absl::Span<const float> input);

}  // namespace rnn::testing

#endif  // RNN_MODEL_TESTING_REFERENCE_FORWARD_H_
