// Labelled eval sets, and scoring a model's answers against them.
//
// An eval set is a safetensors file (see safetensors.h) with two tensors:
// `input` F32 [N, T, C], N sequences of T time steps of C channels, and
// `label` I32 [N], each sequence's true class. The bundled one is
// model/eval_set.safetensors (`FindBundledFile(kBundledEvalSetFile)`), written
// by model/train.py. rnn-eval, rnn-client and the tests load it here, so they
// all refuse the same malformed files with the same messages.
//
// Example (scoring an RnnModel, rnn_model.h):
//   #include "model/rnn_model.h"
//   absl::StatusOr<std::unique_ptr<RnnModel>> model =
//       RnnModel::Load("model/rnn.safetensors", {});
//   if (!model.ok()) return model.status();
//   absl::StatusOr<EvalSet> eval =
//       LoadEvalSet("model/eval_set.safetensors", (*model)->sequence_length(),
//                   (*model)->input_size());
//   if (!eval.ok()) return eval.status();
//   std::vector<float> probabilities(eval->size() * (*model)->num_classes());
//   absl::Status run =
//       (*model)->Run(eval->inputs, absl::MakeSpan(probabilities));
//   if (!run.ok()) return run;
//   const double accuracy =
//       Accuracy(probabilities, (*model)->num_classes(), eval->labels);
//   if (accuracy < 0.95) return absl::FailedPreconditionError("below 95%");
//
// Thread-safety: the functions keep no state and may be called concurrently;
// an EvalSet is a plain value.
#ifndef RNN_MODEL_EVAL_SET_H_
#define RNN_MODEL_EVAL_SET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace rnn {

struct EvalSet {
  // The sequences, row-major [size(), T, C].
  std::vector<float> inputs;
  // The true class of each sequence; labels[i] belongs to sequence i.
  std::vector<int32_t> labels;

  // Number of sequences (N).
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// Reads the eval set at `path` for a model taking sequences of
// `sequence_length` (T) steps of `input_size` (C) values. Fails with
// `NotFound` when the file does not exist, and with `InvalidArgument`, naming
// the file and the tensor, when the file is not valid safetensors, a tensor
// is missing or has another dtype, `label` is not one-dimensional, `input` is
// not [N, T, C] for the N labels, or the set holds no sequences.
absl::StatusOr<EvalSet> LoadEvalSet(const std::string& path,
                                    int64_t sequence_length,
                                    int64_t input_size);

// The predicted class of one row of probabilities: the index of its largest
// value (the first on a tie), or -1 when the row is empty or holds a NaN, as
// the server answers for a sequence holding NaN or Inf.
int64_t TopClass(absl::Span<const float> row);

// Number of rows whose `TopClass` equals their label; a row without a top
// class (NaN) counts as wrong. `probabilities` is row-major
// [labels.size(), num_classes].
// Precondition: num_classes >= 1 and
// probabilities.size() == labels.size() * num_classes.
int64_t CountCorrect(absl::Span<const float> probabilities, int64_t num_classes,
                     absl::Span<const int32_t> labels);

// CountCorrect as a fraction of the rows, in [0, 1]; 0 for no rows. Same
// precondition.
double Accuracy(absl::Span<const float> probabilities, int64_t num_classes,
                absl::Span<const int32_t> labels);

}  // namespace rnn

#endif  // RNN_MODEL_EVAL_SET_H_
