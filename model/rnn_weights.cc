#include "model/rnn_weights.h"

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rnn {
namespace {

constexpr char kKernel[] = "simple_rnn/kernel";
constexpr char kRecurrentKernel[] = "simple_rnn/recurrent_kernel";
constexpr char kBias[] = "simple_rnn/bias";
constexpr char kDenseKernel[] = "dense/kernel";
constexpr char kDenseBias[] = "dense/bias";

// The shape of tensor `name`, which must exist, be F32 and have `rank` dims.
absl::StatusOr<std::vector<int64_t>> ShapeOf(const SafetensorsFile& file,
                                             const char* name, size_t rank) {
  const TensorInfo* info = file.Find(name);
  if (info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.source(), ": missing tensor '", name, "'"));
  }
  if (info->dtype != "F32") {
    return absl::InvalidArgumentError(
        absl::StrCat(file.source(), ": tensor '", name, "' has dtype ",
                     info->dtype, ", expected F32"));
  }
  if (info->shape.size() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.source(), ": tensor '", name, "' has shape ",
                     ShapeString(info->shape), ", expected rank ", rank));
  }
  for (int64_t d : info->shape) {
    if (d < 1 || d > RnnWeights::kMaxDim) {
      return absl::InvalidArgumentError(absl::StrCat(
          file.source(), ": tensor '", name, "' has shape ",
          ShapeString(info->shape), "; each dimension must be in [1, ",
          RnnWeights::kMaxDim, "]"));
    }
  }
  return info->shape;
}

absl::Status CheckFinite(const std::vector<float>& values, const char* name) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' element ", i, " is ", values[i],
                       "; weights must be finite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RnnWeights> RnnWeights::Load(const std::string& path,
                                            int sequence_length) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  if (!file.ok()) return file.status();
  return FromSafetensors(*file, sequence_length);
}

absl::StatusOr<RnnWeights> RnnWeights::FromSafetensors(
    const SafetensorsFile& file, int sequence_length) {
  // C, H and O are read off the kernels; every other tensor must agree.
  absl::StatusOr<std::vector<int64_t>> kernel = ShapeOf(file, kKernel, 2);
  if (!kernel.ok()) return kernel.status();
  absl::StatusOr<std::vector<int64_t>> dense = ShapeOf(file, kDenseKernel, 2);
  if (!dense.ok()) return dense.status();

  RnnWeights w;
  w.input_size = static_cast<int>((*kernel)[0]);
  w.hidden_size = static_cast<int>((*kernel)[1]);
  w.num_classes = static_cast<int>((*dense)[1]);
  const int64_t c = w.input_size, h = w.hidden_size, o = w.num_classes;

  struct Wanted {
    const char* name;
    std::vector<int64_t> shape;
    std::vector<float>* out;
  };
  const Wanted wanted[] = {
      {kKernel, {c, h}, &w.kernel},
      {kRecurrentKernel, {h, h}, &w.recurrent_kernel},
      {kBias, {h}, &w.bias},
      {kDenseKernel, {h, o}, &w.dense_kernel},
      {kDenseBias, {o}, &w.dense_bias},
  };
  for (const Wanted& t : wanted) {
    absl::StatusOr<std::vector<float>> values =
        file.ReadFloat32(t.name, t.shape);
    if (!values.ok()) return values.status();
    *t.out = *std::move(values);
  }

  if (sequence_length > 0) {
    w.sequence_length = sequence_length;
  } else if (auto it = file.metadata().find("sequence_length");
             it != file.metadata().end()) {
    if (!absl::SimpleAtoi(it->second, &w.sequence_length) ||
        w.sequence_length < 1 || w.sequence_length > kMaxDim) {
      return absl::InvalidArgumentError(absl::StrCat(
          file.source(), ": metadata sequence_length '", it->second,
          "' is not an integer in [1, ", kMaxDim, "]"));
    }
  } else {
    w.sequence_length = kDefaultSequenceLength;
  }

  if (absl::Status status = w.Validate(); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.source(), ": ", status.message()));
  }
  return w;
}

absl::Status RnnWeights::Validate() const {
  const auto in_range = [](int d) { return d >= 1 && d <= kMaxDim; };
  if (!in_range(sequence_length) || !in_range(input_size) ||
      !in_range(hidden_size) || !in_range(num_classes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dimensions T=", sequence_length, " C=", input_size, " H=", hidden_size,
        " O=", num_classes, " must each be in [1, ", kMaxDim, "]"));
  }
  const size_t c = input_size, h = hidden_size, o = num_classes;
  const std::pair<const std::vector<float>*, const char*> tensors[] = {
      {&kernel, kKernel},
      {&recurrent_kernel, kRecurrentKernel},
      {&bias, kBias},
      {&dense_kernel, kDenseKernel},
      {&dense_bias, kDenseBias},
  };
  const size_t sizes[] = {c * h, h * h, h, h * o, o};
  for (size_t i = 0; i < 5; ++i) {
    if (tensors[i].first->size() != sizes[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", tensors[i].second, "' has ", tensors[i].first->size(),
          " values, expected ", sizes[i]));
    }
    if (absl::Status s = CheckFinite(*tensors[i].first, tensors[i].second);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace rnn
