// Reading safetensors files: the model's weights format.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON describing each tensor ({"dtype", "shape", "data_offsets"}) plus an
// optional "__metadata__" object of strings, then the raw little-endian tensor
// bytes. See https://github.com/huggingface/safetensors.
//
// `SafetensorsFile` validates the whole file when it is parsed, so a value that
// exists is safe to read: every tensor's byte range lies inside the data
// section, matches its dtype and shape, and the ranges tile the data section
// exactly (no overlap, no gap, nothing trailing). Anything else is refused
// with an `InvalidArgument` status that names the file and the problem.
//
// Example:
//   absl::StatusOr<SafetensorsFile> file =
//       SafetensorsFile::Read("model/rnn.safetensors");
//   if (!file.ok()) return file.status();
//   absl::StatusOr<std::vector<float>> bias =
//       file->ReadFloat32("dense/bias", {10});
//
// Thread-safety: const methods may be called concurrently.
#ifndef RNN_MODEL_SAFETENSORS_H_
#define RNN_MODEL_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace rnn {

// One tensor's entry in the header.
struct TensorInfo {
  std::string dtype;           // As written: "F32", "I32", "BF16", ...
  std::vector<int64_t> shape;  // Each dimension >= 0; empty for a scalar.
  size_t begin = 0;            // Byte range within the data section.
  size_t end = 0;
};

class SafetensorsFile {
 public:
  // The largest header accepted. Real headers are a few KiB; the bound keeps
  // a corrupt length field from making us allocate gigabytes.
  static constexpr uint64_t kMaxHeaderBytes = 16 << 20;

  // Reads and validates the file at `path`.
  static absl::StatusOr<SafetensorsFile> Read(const std::string& path);

  // Validates `bytes`, the whole content of a file. `source` names it in
  // error messages.
  static absl::StatusOr<SafetensorsFile> Parse(std::string bytes,
                                               absl::string_view source);

  // Entry for `name`, or nullptr when the file has no such tensor.
  const TensorInfo* Find(absl::string_view name) const;

  // All tensors by name.
  const std::map<std::string, TensorInfo, std::less<>>& tensors() const {
    return tensors_;
  }

  // The "__metadata__" object (empty when absent).
  const std::map<std::string, std::string, std::less<>>& metadata() const {
    return metadata_;
  }

  // Raw little-endian bytes of a tensor.
  absl::Span<const uint8_t> Data(const TensorInfo& info) const;

  // Copies tensor `name` as floats. Fails when it is missing, is not F32, or
  // its shape differs from `expected_shape` (skipped when empty).
  absl::StatusOr<std::vector<float>> ReadFloat32(
      absl::string_view name, absl::Span<const int64_t> expected_shape) const;

  // Copies tensor `name` as int32 values; fails as ReadFloat32 does.
  absl::StatusOr<std::vector<int32_t>> ReadInt32(
      absl::string_view name, absl::Span<const int64_t> expected_shape) const;

  // Name given to Read/Parse, for messages.
  const std::string& source() const { return source_; }

 private:
  SafetensorsFile() = default;

  template <typename T>
  absl::StatusOr<std::vector<T>> ReadAs(
      absl::string_view name, absl::string_view dtype,
      absl::Span<const int64_t> expected_shape) const;

  std::string source_;
  std::string bytes_;       // The whole file.
  size_t data_offset_ = 0;  // Start of the data section within bytes_.
  std::map<std::string, TensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

// Bytes per element of a safetensors dtype name, or 0 when unknown.
size_t DtypeSize(absl::string_view dtype);

// "[100, 50]" for messages.
std::string ShapeString(absl::Span<const int64_t> shape);

}  // namespace rnn

#endif  // RNN_MODEL_SAFETENSORS_H_
