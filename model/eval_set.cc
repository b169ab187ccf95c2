#include "model/eval_set.h"

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/safetensors.h"

namespace rnn {

absl::StatusOr<EvalSet> LoadEvalSet(const std::string& path,
                                    int64_t sequence_length,
                                    int64_t input_size) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  if (!file.ok()) return file.status();
  // ReadInt32 reports a missing tensor or a wrong dtype; the rank is checked
  // here because N is taken from the labels.
  const TensorInfo* label = file->Find("label");
  if (label != nullptr && label->shape.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tensor 'label' has shape ",
                     ShapeString(label->shape), ", expected [N]"));
  }
  absl::StatusOr<std::vector<int32_t>> labels = file->ReadInt32("label", {});
  if (!labels.ok()) return labels.status();
  if (labels->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the eval set holds no sequences"));
  }
  const int64_t n = static_cast<int64_t>(labels->size());
  absl::StatusOr<std::vector<float>> inputs =
      file->ReadFloat32("input", {n, sequence_length, input_size});
  if (!inputs.ok()) return inputs.status();
  return EvalSet{*std::move(inputs), *std::move(labels)};
}

int64_t TopClass(absl::Span<const float> row) {
  int64_t best = -1;
  for (size_t k = 0; k < row.size(); ++k) {
    if (std::isnan(row[k])) return -1;
    if (best < 0 || row[k] > row[best]) best = static_cast<int64_t>(k);
  }
  return best;
}

int64_t CountCorrect(absl::Span<const float> probabilities, int64_t num_classes,
                     absl::Span<const int32_t> labels) {
  const size_t width = static_cast<size_t>(num_classes);
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t top = TopClass(probabilities.subspan(i * width, width));
    correct += top >= 0 && top == labels[i];
  }
  return correct;
}

double Accuracy(absl::Span<const float> probabilities, int64_t num_classes,
                absl::Span<const int32_t> labels) {
  if (labels.empty()) return 0.0;
  return static_cast<double>(CountCorrect(probabilities, num_classes, labels)) /
         static_cast<double>(labels.size());
}

}  // namespace rnn
