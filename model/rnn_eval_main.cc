// rnn-eval: classifies a labelled eval set with the oneDNN model and prints
// the accuracy; a quick way to check a weights file (for example one written
// by model/train.py or model/keras_export.py) without starting the server.
//
//   rnn-eval                                  # the bundled model and eval set
//   rnn-eval --model=m.safetensors --eval_set=e.safetensors --min_accuracy=0.95
//
// The eval set is a safetensors file with `input` F32 [N, T, C] and `label`
// I32 [N] (model/eval_set.h). Exits 1 when loading fails or the accuracy is
// below
// --min_accuracy.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "model/bundled.h"
#include "model/eval_set.h"
#include "model/rnn_model.h"

ABSL_FLAG(std::string, model, "",
          "Path of the safetensors weights file (default: the bundled "
          "model/rnn.safetensors)");
ABSL_FLAG(std::string, eval_set, "",
          "Path of the labelled eval set (default: the bundled "
          "model/eval_set.safetensors)");
ABSL_FLAG(int, model_threads, 1,
          "OpenMP threads oneDNN uses per model call (1 is fastest for "
          "small batches on few cores)");
ABSL_FLAG(int, batch_size, 64, "Sequences per model call (sequences)");
ABSL_FLAG(rnn::RnnModel::Options::Precision, precision,
          rnn::RnnModel::Options::Precision::kFp32,
          "Arithmetic of the model: fp32, or bf16 (needs AVX512-BF16)");
ABSL_FLAG(double, min_accuracy, 0.0,
          "Exit with status 1 when the accuracy is below this fraction");

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rnn-eval: %s\n", status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Classifies a labelled eval set with the oneDNN RNN and prints the "
      "accuracy.\nUsage: rnn-eval [--model=PATH] [--eval_set=PATH]");
  absl::ParseCommandLine(argc, argv);
  std::string model_path = absl::GetFlag(FLAGS_model);
  if (model_path.empty())
    model_path = rnn::FindBundledFile(rnn::kBundledModelFile);
  std::string eval_path = absl::GetFlag(FLAGS_eval_set);
  if (eval_path.empty())
    eval_path = rnn::FindBundledFile(rnn::kBundledEvalSetFile);

  rnn::RnnModel::Options options;
  options.num_threads = absl::GetFlag(FLAGS_model_threads);
  options.precision = absl::GetFlag(FLAGS_precision);
  absl::StatusOr<std::unique_ptr<rnn::RnnModel>> model =
      rnn::RnnModel::Load(model_path, options);
  if (!model.ok()) return Fail(model.status());
  rnn::RnnModel& m = **model;
  const int64_t t = m.sequence_length(), c = m.input_size();
  absl::StatusOr<rnn::EvalSet> eval = rnn::LoadEvalSet(eval_path, t, c);
  if (!eval.ok()) return Fail(eval.status());
  const int64_t n = eval->size();

  const size_t batch = std::max(1, absl::GetFlag(FLAGS_batch_size));
  const size_t o = m.num_classes(), per_sequence = m.floats_per_sequence();
  std::vector<float> probs(n * o);
  const auto start = std::chrono::steady_clock::now();
  for (size_t first = 0; first < static_cast<size_t>(n); first += batch) {
    const size_t count = std::min(batch, n - first);
    absl::Status s =
        m.Run(absl::MakeConstSpan(eval->inputs)
                  .subspan(first * per_sequence, count * per_sequence),
              absl::MakeSpan(probs).subspan(first * o, count * o));
    if (!s.ok()) return Fail(s);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const int64_t correct = rnn::CountCorrect(probs, o, eval->labels);
  const double accuracy = rnn::Accuracy(probs, o, eval->labels);
  std::printf("model     %s (T=%lld C=%lld H=%d O=%zu)\n", model_path.c_str(),
              static_cast<long long>(t), static_cast<long long>(c),
              m.hidden_size(), o);
  std::printf("eval set  %s (%lld sequences)\n", eval_path.c_str(),
              static_cast<long long>(n));
  std::printf("precision %s\n", AbslUnparseFlag(options.precision).c_str());
  std::printf("accuracy  %.4f (%lld/%lld)\n", accuracy,
              static_cast<long long>(correct), static_cast<long long>(n));
  std::printf(
      "time      %.2f ms (%.0f sequences/s, batch %zu, first calls "
      "include primitive creation)\n",
      seconds * 1e3, n / seconds, batch);
  if (accuracy < absl::GetFlag(FLAGS_min_accuracy)) {
    std::fprintf(stderr, "rnn-eval: accuracy %.4f below --min_accuracy=%.4f\n",
                 accuracy, absl::GetFlag(FLAGS_min_accuracy));
    return 1;
  }
  return 0;
}
