#include "server/testing/bad_requests.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace rnn::testing {

using inference::ModelInferRequest;

ModelInferRequest GoodRequest(const ModelSignature& signature, int rows) {
  ModelInferRequest r;
  r.set_model_name(signature.name);
  r.set_id("good");
  auto* input = r.add_inputs();
  input->set_name(signature.input_name);
  input->set_datatype("FP32");
  input->add_shape(rows);
  input->add_shape(signature.sequence_length);
  input->add_shape(signature.input_size);
  const size_t per_row = signature.input_floats_per_row();
  std::vector<float> values(rows * per_row);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = (i / per_row) * 0.001f + (i % per_row) * 1e-6f;
  }
  std::string* raw = r.add_raw_input_contents();
  raw->resize(values.size() * sizeof(float));
  std::memcpy(raw->data(), values.data(), raw->size());
  return r;
}

std::vector<BadRequest> BadRequests(const ModelSignature& s) {
  using Code = absl::StatusCode;
  const auto good = [&s] { return GoodRequest(s, 2); };
  std::vector<BadRequest> cases;
  const auto add = [&cases](std::string name, ModelInferRequest r, Code code,
                            std::string part) {
    cases.push_back({std::move(name), std::move(r), code, std::move(part)});
  };

  ModelInferRequest r = good();
  r.set_model_name("lstm");
  add("unknown model", r, Code::kNotFound, "unknown model 'lstm'");
  r = good();
  r.set_model_version("7");
  add("unknown version", r, Code::kNotFound, "unknown version '7'");
  r = good();
  r.clear_inputs();
  r.clear_raw_input_contents();
  add("no inputs", r, Code::kInvalidArgument, "request has no inputs");
  r = good();
  *r.add_inputs() = r.inputs(0);
  r.mutable_inputs(1)->set_name("extra");
  add("more inputs than the model has", r, Code::kInvalidArgument,
      "request has 2 inputs");
  r = good();
  r.mutable_inputs(0)->set_name("x");
  add("unknown input name", r, Code::kInvalidArgument, "unknown input 'x'");
  r = good();
  r.mutable_inputs(0)->set_datatype("FP64");
  add("non-FP32 datatype", r, Code::kInvalidArgument,
      "datatype 'FP64'; expected FP32");
  r = good();
  r.mutable_inputs(0)->mutable_shape()->RemoveLast();
  add("wrong rank", r, Code::kInvalidArgument,
      absl::StrCat("has shape [2, ", s.sequence_length, "]; expected [-1, ",
                   s.sequence_length, ", ", s.input_size, "]"));
  r = good();
  r.mutable_inputs(0)->set_shape(2, s.input_size + 1);
  add("wrong feature dim", r, Code::kInvalidArgument, "expected [-1, ");
  r = good();
  r.mutable_inputs(0)->set_shape(1, s.sequence_length - 1);
  add("wrong time dim", r, Code::kInvalidArgument,
      "(batch, time steps, features)");
  r = good();
  r.mutable_inputs(0)->set_shape(0, 0);
  add("zero batch", r, Code::kInvalidArgument,
      "the batch dimension must be >= 1");
  r = good();
  r.mutable_inputs(0)->set_shape(0, -3);
  add("negative batch", r, Code::kInvalidArgument,
      "the batch dimension must be >= 1");
  r = good();
  r.mutable_inputs(0)->set_shape(0, int64_t{1} << 62);
  add("shape product overflows", r, Code::kInvalidArgument,
      "too many sequences");
  r = good();
  r.mutable_raw_input_contents(0)->resize(r.raw_input_contents(0).size() - 4);
  add("raw payload too short", r, Code::kInvalidArgument,
      "raw_input_contents[0] has");
  r = good();
  r.mutable_raw_input_contents(0)->append(4, '\0');
  add("raw payload too long", r, Code::kInvalidArgument, "bytes; input");
  r = good();
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.f);
  add("both raw and typed contents", r, Code::kInvalidArgument,
      "both raw_input_contents and contents");
  r = good();
  r.clear_raw_input_contents();
  add("no data", r, Code::kInvalidArgument, "has no data");
  r = good();
  r.clear_raw_input_contents();
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.f);
  add("typed contents too short", r, Code::kInvalidArgument,
      "contents.fp32_contents of input");
  r = good();
  r.clear_raw_input_contents();
  r.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
  add("typed contents of another type", r, Code::kInvalidArgument,
      "use fp32_contents");
  r = good();
  *r.add_raw_input_contents() = r.raw_input_contents(0);
  add("more raw contents than inputs", r, Code::kInvalidArgument,
      "2 raw_input_contents for 1 input");
  r = good();
  r.add_outputs()->set_name("logits");
  add("unknown output", r, Code::kInvalidArgument, "unknown output 'logits'");
  r = good();
  (*r.mutable_parameters())["timeout"].set_string_param("soon");
  add("timeout not an int64", r, Code::kInvalidArgument, "parameter 'timeout'");
  // Client strings are echoed cut short: a whole 1 MB name would not fit
  // the client's limit on the error header.
  r = good();
  std::string long_name;
  for (int i = 0; i < (1 << 19); ++i) long_name += "\xC3\xA9";  // 'é', 1 MB
  r.set_model_name(long_name);
  add("1 MB model name", r, Code::kNotFound, "...' (1048576 bytes)");
  r = good();
  r.mutable_inputs(0)->set_name(std::string(100'000, 'x'));
  add("100 kB input name", r, Code::kInvalidArgument, "(100000 bytes)");
  r = good();
  r.mutable_inputs(0)->clear_shape();
  for (int i = 0; i < 10'000; ++i) r.mutable_inputs(0)->add_shape(1);
  add("10000 dimensions", r, Code::kInvalidArgument, "(10000 dimensions)");
  return cases;
}

}  // namespace rnn::testing
