// The RNN's weights as Keras defines them, loaded from a safetensors file.
//
// The model is Keras' `SimpleRNN(H, activation='relu', input_shape=(T, C))`
// followed by `Dense(O, activation='softmax')`:
//   h_0 = 0
//   h_t = relu(x_t · kernel + h_{t-1} · recurrent_kernel + bias),  t = 1..T
//   probabilities = softmax(h_T · dense_kernel + dense_bias)
//
// The file holds five F32 tensors under Keras' names, in Keras' layouts:
//   simple_rnn/kernel            [C, H]
//   simple_rnn/recurrent_kernel  [H, H]
//   simple_rnn/bias              [H]
//   dense/kernel                 [H, O]
//   dense/bias                   [O]
// C, H and O come from the tensors. T, the sequence length, comes from the
// metadata entry "sequence_length" (written by model/train.py and
// model/keras_export.py); a file without it gets kDefaultSequenceLength, as in
// the Keras tutorial's input_shape=(20, 100). Other tensors in the file (the
// golden test vectors, say) are ignored.
//
// Example:
//   absl::StatusOr<RnnWeights> weights =
//       RnnWeights::Load("model/rnn.safetensors");
//   if (!weights.ok()) return weights.status();
#ifndef RNN_MODEL_RNN_WEIGHTS_H_
#define RNN_MODEL_RNN_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/safetensors.h"

namespace rnn {

struct RnnWeights {
  // Sequence length for a file whose metadata does not say.
  static constexpr int kDefaultSequenceLength = 20;
  // Bounds on each dimension; far above any model this server is meant for,
  // they keep a corrupt file from asking for absurd buffers.
  static constexpr int64_t kMaxDim = 1 << 16;

  int sequence_length = 0;  // T
  int input_size = 0;       // C, features per time step
  int hidden_size = 0;      // H
  int num_classes = 0;      // O

  std::vector<float> kernel;            // [C, H] row-major
  std::vector<float> recurrent_kernel;  // [H, H]
  std::vector<float> bias;              // [H]
  std::vector<float> dense_kernel;      // [H, O]
  std::vector<float> dense_bias;        // [O]

  // Reads and validates the weights in `path`. `sequence_length`, when > 0,
  // overrides the file's metadata.
  static absl::StatusOr<RnnWeights> Load(const std::string& path,
                                         int sequence_length = 0);

  // As Load, from an already parsed file.
  static absl::StatusOr<RnnWeights> FromSafetensors(const SafetensorsFile& file,
                                                    int sequence_length = 0);

  // Checks dimensions against the vectors' sizes and that every weight is
  // finite. Load calls it; call it after building weights by hand.
  absl::Status Validate() const;
};

}  // namespace rnn

#endif  // RNN_MODEL_RNN_WEIGHTS_H_
