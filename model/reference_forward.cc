#include "model/reference_forward.h"

#include <algorithm>
#include <cmath>

namespace rnn {

ReferenceOutput ReferenceForward(const RnnWeights& w,
                                 absl::Span<const float> input) {
  const size_t t_len = w.sequence_length, c = w.input_size, h = w.hidden_size,
               o = w.num_classes;
  const size_t n = input.size() / (t_len * c);
  ReferenceOutput out;
  out.probabilities.resize(n * o);
  out.last_hidden.resize(n * h);
  std::vector<double> state(h), next(h), logits(o);
  for (size_t b = 0; b < n; ++b) {
    std::fill(state.begin(), state.end(), 0.0);
    for (size_t t = 0; t < t_len; ++t) {
      const float* x = input.data() + (b * t_len + t) * c;
      for (size_t j = 0; j < h; ++j) {
        double sum = w.bias[j];
        for (size_t i = 0; i < c; ++i)
          sum += double{x[i]} * w.kernel[i * h + j];
        for (size_t i = 0; i < h; ++i) {
          sum += state[i] * w.recurrent_kernel[i * h + j];
        }
        next[j] = std::max(sum, 0.0);
      }
      state.swap(next);
    }
    std::copy(state.begin(), state.end(), out.last_hidden.begin() + b * h);
    double max_logit = -INFINITY;
    for (size_t k = 0; k < o; ++k) {
      double sum = w.dense_bias[k];
      for (size_t j = 0; j < h; ++j)
        sum += state[j] * w.dense_kernel[j * o + k];
      logits[k] = sum;
      max_logit = std::max(max_logit, sum);
    }
    double total = 0;
    for (double& l : logits) total += (l = std::exp(l - max_logit));
    for (size_t k = 0; k < o; ++k) {
      out.probabilities[b * o + k] = logits[k] / total;
    }
  }
  return out;
}

}  // namespace rnn
