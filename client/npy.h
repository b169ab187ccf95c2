// Reading NumPy .npy files (format versions 1.0-3.0) holding float arrays,
// for rnn-client's --input. float32 is read as is; float64 is converted.
// Only C-order (row-major), little-endian or native arrays are accepted.
//
// Example:
//   absl::StatusOr<NpyArray> batch = ReadNpy("batch.npy");
//   if (!batch.ok()) return batch.status();
//   // batch->shape {N, 20, 100}; batch->values: N * 20 * 100 floats.
#ifndef RNN_CLIENT_NPY_H_
#define RNN_CLIENT_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rnn {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;  // Row-major.
};

absl::StatusOr<NpyArray> ParseNpy(const std::string& bytes,
                                  const std::string& source);
absl::StatusOr<NpyArray> ReadNpy(const std::string& path);

}  // namespace rnn

#endif  // RNN_CLIENT_NPY_H_
