// RnnModel: the Keras SimpleRNN + Dense(softmax) classifier, computed with
// oneDNN on the CPU.
//
// Per batch size N, the recurrence is computed by
//   fp32 (default): vanilla_rnn_forward (ReLU, left to right, h_0 = 0)
//                   x[T,N,C] -> h_T[N,H], one primitive;
//   bf16:           the input projection of every step as one matmul
//                   x[T*N,C] * W_x + b -> xproj[T,N,H] (time-major), then
//                   per step one matmul h_t = relu(xproj_t + h_{t-1} W_h)
//                   with the add and the ReLU fused as post-ops;
// then for both, on B >= N rows (B from 1, 2, 3, 4, 6, 8, 12, 16, ...: a
// few batch sizes share these two primitives, the extra rows discarded)
//   inner_product_forward                               h_T -> logits[B,O]
//   softmax_forward on axis 1, in place                 logits -> probs[B,O]
// with the weights reordered once into the layout each primitive prefers.
// Primitives for a batch size are created the first time that size runs (or
// by WarmUp) and reused, so a warmed-up Run creates no primitive and
// allocates no buffer: the input is read where the caller holds it and the
// N rows of probabilities are copied into the caller's output. The batch
// sizes' primitives share one scratchpad and one buffer for what a call
// computes on the way, sized for the largest batch made. (oneDNN's
// execute still builds a small argument map internally on each call; that
// is the only allocation left, a fixed few per call, none per row.)
//
// All oneDNN 2.x API use (op descriptors) lives in rnn_model.cc; `dnnl::error`
// never escapes, it becomes an absl::Status.
//
// Example:
//   absl::StatusOr<std::unique_ptr<rnn::RnnModel>> model =
//       rnn::RnnModel::Load("model/rnn.safetensors", rnn::RnnModel::Options());
//   const size_t n = 2;  // Sequences.
//   std::vector<float> input(n * (*model)->floats_per_sequence());  // [N,T,C]
//   std::vector<float> probabilities(n * (*model)->num_classes());  // [N,O]
//   absl::Status status = (*model)->Run(input, absl::MakeSpan(probabilities));
//
// Thread-safety: Run and WarmUp must not be called concurrently on one
// instance (each instance owns one oneDNN stream and its buffers). Create one
// instance per worker thread for parallel execution; the dimension accessors
// are safe to call from any thread.
#ifndef RNN_MODEL_RNN_MODEL_H_
#define RNN_MODEL_RNN_MODEL_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "model/rnn_weights.h"

namespace rnn {

class RnnModel {
 public:
  struct Options {
    // OpenMP threads oneDNN may use inside one Run call; >= 1. Default 1: a
    // second thread slows small batches down (fork/join costs more than the
    // work; docs/benchmarks.md), and threads spinning for one model would
    // starve the gRPC threads. Scale out with more instances.
    int num_threads = 1;
    // Largest batch computed in one oneDNN call; >= 1. A larger Run is
    // computed in chunks of this size. One set of primitives, with its own
    // buffers, exists per batch size up to this bound. Default 256:
    // throughput stops growing near batch 64-256 (docs/benchmarks.md).
    int max_batch_size = 256;
    // When > 0, overrides the sequence length given by the weights file; 0
    // keeps the file's. Must be >= 0.
    int sequence_length = 0;
    // Arithmetic of the matrix products. kFp32 (default) matches Keras'
    // float32 model within 1e-5. kBf16 rounds inputs, weights and hidden
    // states to bfloat16 (accumulating in fp32) and runs on the CPU's
    // AVX512-BF16/AMX units: about twice the throughput at batch >= 64
    // (docs/benchmarks.md). Probabilities differ from fp32 by ~1e-4 on
    // average and by up to ~0.05 on a borderline sequence, which can tip
    // its class (bounds asserted in rnn_model_test). Opt-in because answers
    // change.
    enum class Precision { kFp32, kBf16 };
    Precision precision = Precision::kFp32;

    // OK, or INVALID_ARGUMENT naming the first bad option by its flag (of
    // rnn-server and rnn-eval) with the value given: "--model_threads must be
    // >= 1; was 0" (why flag names: ServerOptions in server/rnn_server.h).
    // kBf16 is refused on a CPU (or under an ONEDNN_MAX_CPU_ISA limit)
    // without AVX512-BF16, where oneDNN would emulate it slower than fp32.
    absl::Status Validate() const;
  };

  // Reads the safetensors weights at `path` and builds the model.
  static absl::StatusOr<std::unique_ptr<RnnModel>> Load(const std::string& path,
                                                        const Options& options);

  // Builds the model from weights already in memory. Refuses invalid
  // options with INVALID_ARGUMENT (Options::Validate).
  static absl::StatusOr<std::unique_ptr<RnnModel>> Create(
      RnnWeights weights, const Options& options);

  ~RnnModel();
  RnnModel(const RnnModel&) = delete;
  RnnModel& operator=(const RnnModel&) = delete;

  int sequence_length() const { return weights_.sequence_length; }  // T
  int input_size() const { return weights_.input_size; }            // C
  int hidden_size() const { return weights_.hidden_size; }          // H
  int num_classes() const { return weights_.num_classes; }          // O
  // T * C: the floats one sequence occupies in Run's input.
  size_t floats_per_sequence() const {
    return static_cast<size_t>(sequence_length()) * input_size();
  }

  // The oneDNN library's version, "2.6.3" (for build information).
  static std::string OneDnnVersion();

  // Creates the primitives for every batch size from 1 to
  // min(max_batch_size, Options::max_batch_size), so that Run on those sizes
  // creates nothing.
  absl::Status WarmUp(int max_batch_size);

  // Classifies N = input.size() / floats_per_sequence() sequences.
  // `input` is [N, T, C] row-major (Keras' batch-major layout), N >= 1;
  // `probabilities` receives [N, O]. When `last_hidden` is not empty it
  // receives h_T, [N, H]. A sequence holding any NaN or Inf gets NaN
  // probabilities (and h_T), as in Keras; other sequences in the same call
  // are unaffected. Returns InvalidArgument when a size is wrong and
  // Internal when oneDNN fails.
  absl::Status Run(absl::Span<const float> input,
                   absl::Span<float> probabilities,
                   absl::Span<float> last_hidden = {});

 private:
  struct Impl;
  RnnModel(RnnWeights weights, const Options& options);

  RnnWeights weights_;
  Options options_;
  std::unique_ptr<Impl> impl_;
};

// The --precision flag's values, "fp32" and "bf16", for Abseil's flag
// parsing (ABSL_FLAG(rnn::RnnModel::Options::Precision, ...)).
bool AbslParseFlag(absl::string_view text,
                   RnnModel::Options::Precision* precision, std::string* error);
std::string AbslUnparseFlag(RnnModel::Options::Precision precision);

}  // namespace rnn

#endif  // RNN_MODEL_RNN_MODEL_H_
