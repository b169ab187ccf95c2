// RequestPool: the ModelInfer requests a load test sends, serialized once
// before it starts, and the answers each must get.
//
// The pool holds R input rows (sequences) and E requests of `batch` rows
// each; request i carries rows (i * batch + j) mod R, j = 0..batch-1, so the
// requests together cover every row. Each request is kept as serialized
// protobuf: a shared prefix (model, version, input tensor), the payload
// (raw_input_contents) and, per call, a small field with that call's id.
// Protobuf concatenation is a merge, so these slices joined form the request;
// sending one copies nothing and allocates at most the id's small slice.
//
// Answers are checked against either expected probabilities (computed once
// here with the reference forward pass from a weights file; every value
// within kProbabilityTolerance) or the rows' labels (the top class). A
// check also requires the echoed id, the output's datatype and shape.
//
// Example:
//   PoolSpec spec;  // model "rnn", [1, 20, 100] per request, 10 classes
//   std::vector<float> rows(64 * spec.sequence_length * spec.input_size);
//   absl::StatusOr<std::unique_ptr<RequestPool>> pool =
//       RequestPool::Create(spec, std::move(rows), /*labels=*/{});
//   if (!pool.ok()) return pool.status();
//   absl::StatusOr<RnnWeights> weights =
//       RnnWeights::Load("model/rnn.safetensors");
//   if (!weights.ok()) return weights.status();
//   absl::Status expected = (*pool)->ExpectFromWeights(*weights);
//   if (!expected.ok()) return expected;
//   grpc::ByteBuffer request = (*pool)->Request(0, "7.42");
//   inference::ModelInferResponse response;  // the server's answer to it
//   AnswerCheck check = (*pool)->Check(0, "7.42", response);
//   if (!check.right) return absl::InternalError(check.problem);
//
// Thread-safety: const methods may be called from any thread once the pool
// is built (Create and ExpectFromWeights/ExpectLabels done).
#ifndef RNN_CLIENT_LOADGEN_REQUEST_POOL_H_
#define RNN_CLIENT_LOADGEN_REQUEST_POOL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/byte_buffer.h"
#include "model/rnn_weights.h"
#include "proto/grpc_predict_v2.pb.h"

namespace rnn::loadgen {

// What the model looks like and how requests address it.
struct PoolSpec {
  std::string model = "rnn";
  std::string model_version;  // Empty: the server chooses.
  std::string input_name = "sequence";
  int64_t sequence_length = 20;  // T
  int64_t input_size = 100;      // C
  int64_t num_classes = 10;      // O, from the output's shape
  int batch = 1;                 // Rows per request.
  // Most memory the serialized requests may take; fewer distinct requests
  // are kept when they would take more. 64 MiB: 1024 single-sequence or 16
  // batch-64 requests.
  int64_t max_pool_bytes = int64_t{64} << 20;
};

// How an answer was judged.
struct AnswerCheck {
  bool right = true;
  int64_t rows_matching_label = 0;  // Label checks only.
  std::string problem;              // Why it is wrong; empty when right.
};

class RequestPool {
 public:
  // Largest absolute difference accepted from an expected probability.
  static constexpr double kProbabilityTolerance = 1e-4;

  // `rows` holds R sequences, [R, T, C] row-major; `labels` is empty or R.
  static absl::StatusOr<std::unique_ptr<RequestPool>> Create(
      const PoolSpec& spec, std::vector<float> rows,
      std::vector<int32_t> labels);

  // Computes the expected probabilities of every row with the reference
  // forward pass. InvalidArgument when the weights' input size or classes
  // differ from the model's, naming both.
  absl::Status ExpectFromWeights(const RnnWeights& weights);
  // Checks answers against the labels given to Create (their top class).
  absl::Status ExpectLabels();

  int size() const { return static_cast<int>(payloads_.size()); }
  int batch() const { return spec_.batch; }
  int64_t rows() const { return num_rows_; }
  bool verifying() const { return mode_ != Mode::kOff; }
  bool checking_labels() const { return mode_ == Mode::kLabels; }
  const PoolSpec& spec() const { return spec_; }

  // The serialized request `i` (0 <= i < size()) carrying id `id`: the
  // bytes prefix() + IdField(id) + payload(i), as three slices.
  grpc::ByteBuffer Request(int i, absl::string_view id) const;
  absl::string_view prefix() const { return prefix_; }
  absl::string_view payload(int i) const { return payloads_[i]; }
  // `id` encoded as ModelInferRequest field 3.
  static std::string IdField(absl::string_view id);
  // The same request as a message (for clients that want one).
  inference::ModelInferRequest RequestMessage(int i,
                                              absl::string_view id) const;

  // Judges `response` as the answer to request `i` sent with id `id`.
  // Without verification only the id, datatype and shape are checked.
  AnswerCheck Check(int i, absl::string_view id,
                    const inference::ModelInferResponse& response) const;

 private:
  enum class Mode { kOff, kWeights, kLabels };
  explicit RequestPool(const PoolSpec& spec) : spec_(spec) {}
  int64_t RowOf(int i, int j) const {
    return (static_cast<int64_t>(i) * spec_.batch + j) % num_rows_;
  }

  const PoolSpec spec_;
  int64_t num_rows_ = 0;
  std::vector<float> rows_;
  std::vector<int32_t> labels_;
  std::vector<double> expected_;  // [R, O] with kWeights.
  Mode mode_ = Mode::kOff;
  std::string prefix_;                 // Fields 1, 2, 5 serialized.
  std::vector<std::string> payloads_;  // Field 7 of each request.
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_REQUEST_POOL_H_
