#include "server/inference_codec.h"

#include <cstring>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rnn {
namespace {

using inference::ModelInferRequest;
using InputTensor = ModelInferRequest::InferInputTensor;

std::string ExpectedShape(const ModelSignature& s) {
  return absl::StrCat("[-1, ", s.sequence_length, ", ", s.input_size, "]");
}

// The shape as given, its first dimensions only when it has many (a client
// may send thousands).
std::string ShapeOf(const InputTensor& input) {
  constexpr int kShown = 8;
  if (input.shape_size() <= kShown) {
    return absl::StrCat("[", absl::StrJoin(input.shape(), ", "), "]");
  }
  return absl::StrCat("[",
                      absl::StrJoin(input.shape().begin(),
                                    input.shape().begin() + kShown, ", "),
                      ", ... (", input.shape_size(), " dimensions)]");
}

// Whether any typed field other than fp32_contents holds values.
bool HasNonFp32Contents(const inference::InferTensorContents& c) {
  return c.bool_contents_size() > 0 || c.int_contents_size() > 0 ||
         c.int64_contents_size() > 0 || c.uint_contents_size() > 0 ||
         c.uint64_contents_size() > 0 || c.fp64_contents_size() > 0 ||
         c.bytes_contents_size() > 0;
}

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

// The request's one input, once the counts and its name are right.
absl::StatusOr<const InputTensor*> TheInput(const ModelSignature& signature,
                                            const ModelInferRequest& request) {
  if (request.inputs_size() == 0) {
    return Invalid(absl::StrCat(
        "request has no inputs; model '", signature.name, "' expects input '",
        signature.input_name, "' FP32 ", ExpectedShape(signature)));
  }
  if (request.inputs_size() > 1) {
    return Invalid(absl::StrCat(
        "request has ", request.inputs_size(), " inputs; model '",
        signature.name, "' has exactly one, '", signature.input_name, "'"));
  }
  if (request.raw_input_contents_size() > request.inputs_size()) {
    return Invalid(absl::StrCat(
        "request has ", request.raw_input_contents_size(),
        " raw_input_contents for ", request.inputs_size(), " input"));
  }
  const InputTensor& input = request.inputs(0);
  if (input.name() != signature.input_name) {
    return Invalid(absl::StrCat("unknown input ", QuoteForError(input.name()),
                                "; model '", signature.name, "' expects '",
                                signature.input_name, "'"));
  }
  return &input;
}

// The number of sequences `input` declares, once its datatype and shape fit
// the model.
absl::StatusOr<size_t> RowCount(const ModelSignature& signature,
                                const InputTensor& input) {
  if (input.datatype() != "FP32") {
    return Invalid(absl::StrCat("input '", input.name(), "' has datatype ",
                                QuoteForError(input.datatype()),
                                "; expected FP32"));
  }
  if (input.shape_size() != 3 || input.shape(1) != signature.sequence_length ||
      input.shape(2) != signature.input_size) {
    return Invalid(absl::StrCat(
        "input '", input.name(), "' has shape ", ShapeOf(input), "; expected ",
        ExpectedShape(signature), " (batch, time steps, features)"));
  }
  if (input.shape(0) < 1) {
    return Invalid(absl::StrCat("input '", input.name(), "' has shape ",
                                ShapeOf(input),
                                "; the batch dimension must be >= 1"));
  }
  const uint64_t rows = static_cast<uint64_t>(input.shape(0));
  // Bounded so that rows * floats per row * 4 cannot overflow in LocateRows.
  if (rows >
      std::numeric_limits<int32_t>::max() / signature.input_floats_per_row()) {
    return Invalid(absl::StrCat("input '", input.name(), "' has shape ",
                                ShapeOf(input), "; too many sequences"));
  }
  return static_cast<size_t>(rows);
}

// Points `decoded.input` at the `floats` values of raw_input_contents[0],
// copied only when they are not float-aligned.
absl::Status LocateRawRows(const std::string& raw, const InputTensor& input,
                           size_t floats, DecodedRequest& decoded) {
  if (raw.size() != floats * sizeof(float)) {
    return Invalid(absl::StrCat("raw_input_contents[0] has ", raw.size(),
                                " bytes; input '", input.name(), "' FP32 ",
                                ShapeOf(input), " needs ",
                                floats * sizeof(float)));
  }
  if (reinterpret_cast<uintptr_t>(raw.data()) % alignof(float) == 0) {
    decoded.input =
        absl::MakeConstSpan(reinterpret_cast<const float*>(raw.data()), floats);
  } else {
    decoded.aligned_copy.resize(floats);
    std::memcpy(decoded.aligned_copy.data(), raw.data(), raw.size());
    decoded.input = decoded.aligned_copy;
  }
  return absl::OkStatus();
}

// Points `decoded.input` at the `floats` values of contents.fp32_contents.
absl::Status LocateTypedRows(const InputTensor& input, size_t floats,
                             DecodedRequest& decoded) {
  const inference::InferTensorContents& c = input.contents();
  if (HasNonFp32Contents(c)) {
    return Invalid(absl::StrCat("input '", input.name(),
                                "' is FP32 but its contents use another "
                                "type's field; use fp32_contents"));
  }
  if (static_cast<size_t>(c.fp32_contents_size()) != floats) {
    return Invalid(absl::StrCat("contents.fp32_contents of input '",
                                input.name(), "' has ", c.fp32_contents_size(),
                                " values; shape ", ShapeOf(input), " needs ",
                                floats));
  }
  decoded.input = absl::MakeConstSpan(c.fp32_contents().data(), floats);
  return absl::OkStatus();
}

// Points `decoded.input` at the input's `floats` values, wherever the
// request carries them.
absl::Status LocateRows(const ModelInferRequest& request,
                        const InputTensor& input, size_t floats,
                        DecodedRequest& decoded) {
  const bool has_raw = request.raw_input_contents_size() > 0;
  const bool has_typed =
      input.has_contents() && (input.contents().fp32_contents_size() > 0 ||
                               HasNonFp32Contents(input.contents()));
  if (has_raw && has_typed) {
    return Invalid(absl::StrCat(
        "input '", input.name(),
        "' has both raw_input_contents and contents; send one of them"));
  }
  if (has_raw) {
    return LocateRawRows(request.raw_input_contents(0), input, floats, decoded);
  }
  if (has_typed) return LocateTypedRows(input, floats, decoded);
  return Invalid(absl::StrCat("input '", input.name(),
                              "' has no data: set raw_input_contents[0] or "
                              "contents.fp32_contents"));
}

absl::Status DecodeParameters(const ModelInferRequest& request,
                              DecodedRequest& decoded) {
  const auto it = request.parameters().find("timeout");
  if (it == request.parameters().end()) return absl::OkStatus();
  if (it->second.parameter_choice_case() !=
          inference::InferParameter::kInt64Param ||
      it->second.int64_param() < 0) {
    return Invalid(
        "parameter 'timeout' must be an int64_param >= 0 (microseconds)");
  }
  // 0 means no timeout, as in Triton.
  if (it->second.int64_param() > 0) {
    decoded.queue_timeout = absl::Microseconds(it->second.int64_param());
  }
  return absl::OkStatus();
}

absl::Status CheckRequestedOutputs(const ModelSignature& signature,
                                   const ModelInferRequest& request) {
  for (int i = 0; i < request.outputs_size(); ++i) {
    const std::string& name = request.outputs(i).name();
    if (name != signature.output_name) {
      return Invalid(absl::StrCat("unknown output ", QuoteForError(name),
                                  " in outputs[", i, "]; model '",
                                  signature.name, "' has one output, '",
                                  signature.output_name, "'"));
    }
    if (i > 0) {
      return Invalid(
          absl::StrCat("output '", name, "' is requested more than once"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string QuoteForError(absl::string_view user_text) {
  if (user_text.size() <= kMaxEchoedBytes) {
    return absl::StrCat("'", user_text, "'");
  }
  // Cut before a UTF-8 continuation byte (10xxxxxx) never splits a
  // character.
  size_t cut = kMaxEchoedBytes;
  while (cut > 0 &&
         (static_cast<unsigned char>(user_text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return absl::StrCat("'", user_text.substr(0, cut), "...' (", user_text.size(),
                      " bytes)");
}

absl::Status CheckModel(const ModelSignature& signature,
                        const std::string& name, const std::string& version) {
  if (name != signature.name) {
    return absl::NotFoundError(
        absl::StrCat("unknown model ", QuoteForError(name),
                     "; this server serves '", signature.name, "'"));
  }
  if (!version.empty() && version != signature.version) {
    return absl::NotFoundError(
        absl::StrCat("unknown version ", QuoteForError(version), " of model '",
                     name, "'; available: '", signature.version, "'"));
  }
  return absl::OkStatus();
}

absl::Status DecodeRequest(const ModelSignature& signature,
                           const ModelInferRequest& request,
                           DecodedRequest& decoded) {
  if (absl::Status s =
          CheckModel(signature, request.model_name(), request.model_version());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<const InputTensor*> input = TheInput(signature, request);
  if (!input.ok()) return input.status();
  absl::StatusOr<size_t> rows = RowCount(signature, **input);
  if (!rows.ok()) return rows.status();
  if (absl::Status s = LocateRows(
          request, **input, *rows * signature.input_floats_per_row(), decoded);
      !s.ok()) {
    return s;
  }
  decoded.rows = *rows;
  if (absl::Status s = CheckRequestedOutputs(signature, request); !s.ok()) {
    return s;
  }
  return DecodeParameters(request, decoded);
}

absl::Span<float> PrepareResponse(const ModelSignature& signature,
                                  const ModelInferRequest& request, size_t rows,
                                  inference::ModelInferResponse& response) {
  response.set_model_name(signature.name);
  response.set_model_version(signature.version);
  response.set_id(request.id());
  inference::ModelInferResponse::InferOutputTensor* output =
      response.add_outputs();
  output->set_name(signature.output_name);
  output->set_datatype("FP32");
  output->add_shape(static_cast<int64_t>(rows));
  output->add_shape(signature.num_classes);
  std::string* raw = response.add_raw_output_contents();
  raw->resize(rows * signature.output_floats_per_row() * sizeof(float));
  // std::string storage comes from operator new: aligned for float.
  return absl::MakeSpan(reinterpret_cast<float*>(raw->data()),
                        rows * signature.output_floats_per_row());
}

void FillModelMetadata(const ModelSignature& signature,
                       inference::ModelMetadataResponse& response) {
  response.set_name(signature.name);
  response.add_versions(signature.version);
  response.set_platform(signature.platform);
  auto* input = response.add_inputs();
  input->set_name(signature.input_name);
  input->set_datatype("FP32");
  input->add_shape(-1);
  input->add_shape(signature.sequence_length);
  input->add_shape(signature.input_size);
  auto* output = response.add_outputs();
  output->set_name(signature.output_name);
  output->set_datatype("FP32");
  output->add_shape(-1);
  output->add_shape(signature.num_classes);
}

}  // namespace rnn
