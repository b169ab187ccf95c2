// Conversions between the Open Inference Protocol messages and the model's
// rows, and the validation that comes with them. The one place that knows
// how a ModelInferRequest maps onto [N, T, C] floats and back.
//
// A request carries one input, `sequence`, FP32 of shape [N, T, C] (N >= 1),
// either as raw_input_contents[0] (little-endian, row-major) or as
// contents.fp32_contents. The answer is one output, `probabilities`, FP32
// [N, O], in raw_output_contents[0], as Triton answers by default.
//
// Anything else is refused with INVALID_ARGUMENT (NOT_FOUND for an unknown
// model or version) and a message naming the field and what was expected.
#ifndef RNN_SERVER_INFERENCE_CODEC_H_
#define RNN_SERVER_INFERENCE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proto/grpc_predict_v2.pb.h"

namespace rnn {

// What the served model looks like from outside.
struct ModelSignature {
  std::string name = "rnn";
  std::string version = "1";
  std::string platform = "onednn_rnn";
  std::string input_name = "sequence";
  std::string output_name = "probabilities";
  int64_t sequence_length = 20;  // T
  int64_t input_size = 100;      // C
  int64_t num_classes = 10;      // O

  size_t input_floats_per_row() const {
    return static_cast<size_t>(sequence_length * input_size);
  }
  size_t output_floats_per_row() const {
    return static_cast<size_t>(num_classes);
  }
};

// A validated request, ready for the batcher.
struct DecodedRequest {
  // rows * T * C floats. Points into the request message (or into
  // `aligned_copy` when the raw bytes were not float-aligned); valid as long
  // as both live.
  absl::Span<const float> input;
  size_t rows = 0;
  // From the optional request parameter "timeout" (int64 microseconds, as in
  // Triton; 0 means none): the longest the request may wait in the queue.
  absl::Duration queue_timeout = absl::InfiniteDuration();
  std::vector<float> aligned_copy;
};

// Bytes of a client's string that error messages repeat. Error messages
// travel in the grpc-message header, which clients cap (8 KiB by default): a
// message echoing a whole 1 MB model name would reach the client as
// RESOURCE_EXHAUSTED instead of the error it is.
inline constexpr size_t kMaxEchoedBytes = 64;

// `user_text` in single quotes for an error message; cut to kMaxEchoedBytes
// (at a UTF-8 character boundary) with its full length noted when longer:
// 'aaaa...' (1048576 bytes).
std::string QuoteForError(absl::string_view user_text);

// Checks that `name`/`version` name the served model: NOT_FOUND otherwise.
absl::Status CheckModel(const ModelSignature& signature,
                        const std::string& name, const std::string& version);

// Validates `request` against `signature` and locates its rows.
absl::Status DecodeRequest(const ModelSignature& signature,
                           const inference::ModelInferRequest& request,
                           DecodedRequest& decoded);

// Fills `response`'s header (model, version, id, output tensor metadata) and
// sizes its raw output for `rows` rows; returns where the probabilities go.
absl::Span<float> PrepareResponse(const ModelSignature& signature,
                                  const inference::ModelInferRequest& request,
                                  size_t rows,
                                  inference::ModelInferResponse& response);

// The ModelMetadata answer for `signature`.
void FillModelMetadata(const ModelSignature& signature,
                       inference::ModelMetadataResponse& response);

}  // namespace rnn

#endif  // RNN_SERVER_INFERENCE_CODEC_H_
