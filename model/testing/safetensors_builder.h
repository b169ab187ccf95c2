// Test helper: builds safetensors files byte by byte, valid or deliberately
// broken, so loader tests can say exactly what is wrong with each.
//
// Example:
//   SafetensorsBuilder b;
//   b.AddF32("dense/bias", {10}, std::vector<float>(10, 0.f));
//   b.SetMetadata("sequence_length", "20");
//   std::string bytes = b.Build();
#ifndef RNN_MODEL_TESTING_SAFETENSORS_BUILDER_H_
#define RNN_MODEL_TESTING_SAFETENSORS_BUILDER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/rnn_weights.h"

namespace rnn::testing {

class SafetensorsBuilder {
 public:
  // Appends a tensor whose data follows the previous one's.
  SafetensorsBuilder& AddF32(const std::string& name,
                             std::vector<int64_t> shape,
                             const std::vector<float>& values);
  // Appends a tensor with raw bytes and any dtype name.
  SafetensorsBuilder& AddRaw(const std::string& name, const std::string& dtype,
                             std::vector<int64_t> shape, std::string bytes);
  SafetensorsBuilder& SetMetadata(const std::string& key,
                                  const std::string& value);
  // Adds the five weight tensors of `w` and its sequence length.
  SafetensorsBuilder& AddWeights(const RnnWeights& w);

  // The JSON header this builder would write.
  std::string HeaderJson() const;
  // The complete file.
  std::string Build() const;

 private:
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    size_t begin, end;
  };
  std::vector<Entry> entries_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::string data_;
};

// A complete file from a literal JSON header and data section.
std::string RawSafetensors(const std::string& header_json,
                           const std::string& data);

// Writes `bytes` to a fresh file under the test's temporary directory and
// returns its path.
std::string WriteTempFile(const std::string& name, const std::string& bytes);

// Random weights with Keras-like Glorot-uniform scaling, deterministic in
// `seed`.
RnnWeights RandomWeights(int t, int c, int h, int o, uint32_t seed);

// `n` random sequences of `floats_per_sequence` values in [-1, 1].
std::vector<float> RandomInput(size_t n, size_t floats_per_sequence,
                               uint32_t seed);

}  // namespace rnn::testing

#endif  // RNN_MODEL_TESTING_SAFETENSORS_BUILDER_H_
