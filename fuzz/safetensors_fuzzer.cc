// libFuzzer target: a safetensors file as the fuzz input, through
// SafetensorsFile::Parse and everything RnnWeights does with a parsed file.
//
// Beyond crashes and sanitizer reports, it checks the contract
// model/safetensors.h promises for every file Parse accepts: each tensor's
// bytes lie inside the data section and match its dtype and shape, and the
// tensors tile the data section exactly. And for weights FromSafetensors
// accepts: dimensions in range, sizes that match them, finite values.
// A broken promise aborts, which libFuzzer reports as a crash.
//
// Run: make fuzz (docs/fuzzing.md).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/rnn_weights.h"
#include "model/safetensors.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "safetensors_fuzzer: broken promise: %s\n", what);
    std::abort();
  }
}

void CheckWeights(const absl::StatusOr<rnn::RnnWeights>& w) {
  if (!w.ok()) {
    Check(w.status().code() == absl::StatusCode::kInvalidArgument,
          "FromSafetensors fails only with InvalidArgument");
    return;
  }
  Check(w->Validate().ok(), "accepted weights pass Validate");
  const size_t c = w->input_size, h = w->hidden_size, o = w->num_classes;
  Check(
      w->sequence_length >= 1 && w->sequence_length <= rnn::RnnWeights::kMaxDim,
      "sequence length in range");
  Check(w->kernel.size() == c * h && w->recurrent_kernel.size() == h * h &&
            w->bias.size() == h && w->dense_kernel.size() == h * o &&
            w->dense_bias.size() == o,
        "weight sizes match the dimensions");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<rnn::SafetensorsFile> file = rnn::SafetensorsFile::Parse(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!file.ok()) {
    Check(file.status().code() == absl::StatusCode::kInvalidArgument,
          "Parse fails only with InvalidArgument");
    return 0;
  }

  // Parse accepted it, so the header length is sane and the data section
  // is what follows the header.
  uint64_t header_size = 0;
  std::memcpy(&header_size, data, sizeof(header_size));
  const uint8_t* const section = data + 8 + header_size;
  const size_t section_size = size - 8 - header_size;

  std::vector<std::pair<size_t, size_t>> ranges;
  for (const auto& [name, info] : file->tensors()) {
    Check(file->Find(name) == &info, "Find returns the listed entry");
    Check(info.begin <= info.end && info.end <= section_size,
          "range inside the data section");
    uint64_t bytes = rnn::DtypeSize(info.dtype);
    Check(bytes > 0, "known dtype");
    for (int64_t d : info.shape) {
      Check(d >= 0, "dimension >= 0");
      bytes *= static_cast<uint64_t>(d);  // Cannot overflow: Parse checked.
    }
    Check(bytes == info.end - info.begin, "size matches dtype and shape");
    ranges.emplace_back(info.begin, info.end);

    // Compares every byte, so ASan checks the whole range.
    const absl::Span<const uint8_t> raw = file->Data(info);
    Check(raw.size() == info.end - info.begin, "Data has the tensor's size");
    Check(raw.empty() ||
              std::memcmp(raw.data(), section + info.begin, raw.size()) == 0,
          "Data holds the tensor's bytes");

    if (info.dtype == "F32") {
      absl::StatusOr<std::vector<float>> v =
          file->ReadFloat32(name, info.shape);
      Check(v.ok() && v->size() * sizeof(float) == raw.size(),
            "ReadFloat32 of an F32 tensor with its own shape");
    } else if (info.dtype == "I32") {
      absl::StatusOr<std::vector<int32_t>> v =
          file->ReadInt32(name, info.shape);
      Check(v.ok() && v->size() * sizeof(int32_t) == raw.size(),
            "ReadInt32 of an I32 tensor with its own shape");
    } else {
      Check(!file->ReadFloat32(name, {}).ok(), "ReadFloat32 refuses non-F32");
    }
  }
  std::sort(ranges.begin(), ranges.end());
  size_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    Check(begin == covered,
          "tensors tile the data section: no gap, no overlap");
    covered = end;
  }
  Check(covered == section_size, "nothing trails the last tensor");

  // As the server loads a model: the file's own sequence length, then the
  // --sequence_length override.
  CheckWeights(rnn::RnnWeights::FromSafetensors(*file));
  CheckWeights(rnn::RnnWeights::FromSafetensors(*file, 7));
  return 0;
}
