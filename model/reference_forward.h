// The reference forward pass: the Keras SimpleRNN + Dense(softmax) model
// written as plain loops with double accumulation, independent of oneDNN.
// The tests' oracle for RnnModel, and rnn-loadgen's source of expected
// answers (--verify with --weights). It is itself checked against the golden
// vectors computed outside this project (tests/data/golden/).
//
// About 0.1 ms per sequence of the default model: for checking answers, not
// for serving.
#ifndef RNN_MODEL_REFERENCE_FORWARD_H_
#define RNN_MODEL_REFERENCE_FORWARD_H_

#include <vector>

#include "absl/types/span.h"
#include "model/rnn_weights.h"

namespace rnn {

struct ReferenceOutput {
  std::vector<double> probabilities;  // [N, O]
  std::vector<double> last_hidden;    // [N, H]
};

// `input` is [N, T, C] row-major, with T and C as in `w`.
ReferenceOutput ReferenceForward(const RnnWeights& w,
                                 absl::Span<const float> input);

}  // namespace rnn

#endif  // RNN_MODEL_REFERENCE_FORWARD_H_
