// libFuzzer target: a ModelInferRequest parsed from the fuzz input, through
// exactly what the service does with one (server/inference_service.cc,
// ModelInfer; server/infer_stream.cc, Accept): DecodeRequest, and when it
// succeeds PrepareResponse and the batcher's writes of every output float.
// CheckModel, which the other RPCs run on their names, too.
//
// Each request is checked against two signatures: the served model's
// ([-1, 20, 100] -> [-1, 10]), and a tiny one ([-1, 2, 3] -> [-1, 4]) with
// which many rows fit in a small input, so the row arithmetic is explored
// too.
//
// Beyond crashes and sanitizer reports, it checks the codec's contract
// (server/inference_codec.h): errors are INVALID_ARGUMENT or NOT_FOUND with
// a bounded message (client strings are echoed cut short); an accepted
// request has rows >= 1 and exactly rows * T * C input floats, all readable,
// and its response has room for exactly rows * O output floats.
//
// Run: make fuzz (docs/fuzzing.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/grpc_predict_v2.pb.h"
#include "server/inference_codec.h"

namespace {

// Where read values go, so the reads are not optimised away.
volatile float g_sink;

// Longer than any message the codec writes with echoed input cut to
// rnn::kMaxEchoedBytes, far shorter than a client's 8 KiB header limit.
constexpr size_t kMaxMessageBytes = 1024;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "infer_request_fuzzer: broken promise: %s\n", what);
    std::abort();
  }
}

void CheckStatus(const absl::Status& s) {
  if (s.ok()) return;
  Check(s.code() == absl::StatusCode::kInvalidArgument ||
            s.code() == absl::StatusCode::kNotFound,
        "errors are INVALID_ARGUMENT or NOT_FOUND");
  if (s.message().size() > kMaxMessageBytes) {
    std::fprintf(stderr, "message of %zu bytes: %.200s...\n",
                 s.message().size(), std::string(s.message()).c_str());
    Check(false, "error messages are bounded");
  }
}

void Serve(const rnn::ModelSignature& signature,
           const inference::ModelInferRequest& request) {
  CheckStatus(rnn::CheckModel(signature, request.model_name(),
                              request.model_version()));

  rnn::DecodedRequest decoded;
  const absl::Status status = rnn::DecodeRequest(signature, request, decoded);
  CheckStatus(status);
  if (!status.ok()) return;

  Check(decoded.rows >= 1, "an accepted request has rows");
  Check(decoded.input.size() == decoded.rows * signature.input_floats_per_row(),
        "input holds rows * T * C floats");
  // The model reads every input float: so does this.
  float sum = 0;
  for (float x : decoded.input) sum += x;
  g_sink = sum;

  inference::ModelInferResponse response;
  const absl::Span<float> output =
      rnn::PrepareResponse(signature, request, decoded.rows, response);
  Check(output.size() == decoded.rows * signature.output_floats_per_row(),
        "output has room for rows * O floats");
  // The batcher writes every output float.
  for (size_t i = 0; i < output.size(); ++i) output[i] = static_cast<float>(i);
  Check(response.raw_output_contents_size() == 1 &&
            response.raw_output_contents(0).size() ==
                output.size() * sizeof(float),
        "raw_output_contents[0] holds the output");
  Check(response.id() == request.id(), "the id is echoed");
}

rnn::ModelSignature Tiny() {
  rnn::ModelSignature s;
  s.sequence_length = 2;
  s.input_size = 3;
  s.num_classes = 4;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs an error for each string field with invalid UTF-8 it
  // refuses: millions of lines in a run, and no finding.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  // gRPC answers bytes that do not parse before the service sees them.
  if (!request.ParseFromArray(data, static_cast<int>(size))) return -1;
  static const rnn::ModelSignature* const kServed = new rnn::ModelSignature();
  static const rnn::ModelSignature* const kTiny =
      new rnn::ModelSignature(Tiny());
  Serve(*kServed, request);
  Serve(*kTiny, request);
  return 0;
}
