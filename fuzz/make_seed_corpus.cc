// Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/), built with
// the tests' own builders: valid files and requests, and the edge cases the
// unit tests hold the code to. `make fuzz-corpus` runs it; the output is
// committed, so a fuzz run needs no generation step.
//
// Usage: make_seed_corpus <fuzz/corpus> <bundled model.safetensors>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "model/rnn_weights.h"
#include "model/testing/safetensors_builder.h"
#include "proto/grpc_predict_v2.pb.h"
#include "server/inference_codec.h"
#include "server/testing/bad_requests.h"

namespace {

using rnn::testing::RandomWeights;
using rnn::testing::RawSafetensors;
using rnn::testing::SafetensorsBuilder;

// Seeds above this size are left out: the committed corpus stays small, and
// libFuzzer's -max_len follows the largest seed.
constexpr size_t kMaxSeedBytes = 40 << 10;

bool Write(const std::string& path, const std::string& bytes) {
  if (bytes.size() > kMaxSeedBytes) {
    std::printf("left out %s: %zu bytes, over the seed limit\n", path.c_str(),
                bytes.size());
    return true;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.good()) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

// "raw payload too short" -> "raw_payload_too_short".
std::string FileName(std::string name) {
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

bool SafetensorsSeeds(const std::string& dir, const std::string& bundled) {
  const std::string d = dir + "/safetensors_fuzzer/";
  bool ok = true;

  std::ifstream in(bundled, std::ios::binary);
  const std::string model((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  if (model.empty()) {
    std::fprintf(stderr, "cannot read %s\n", bundled.c_str());
    return false;
  }
  ok &= Write(d + "bundled_rnn.safetensors", model);

  const rnn::RnnWeights w = RandomWeights(3, 4, 5, 2, 1);
  ok &= Write(d + "weights_t3_c4_h5_o2.safetensors",
              SafetensorsBuilder().AddWeights(w).Build());

  SafetensorsBuilder no_metadata;
  no_metadata.AddF32("simple_rnn/kernel", {4, 5}, w.kernel)
      .AddF32("simple_rnn/recurrent_kernel", {5, 5}, w.recurrent_kernel)
      .AddF32("simple_rnn/bias", {5}, w.bias)
      .AddF32("dense/kernel", {5, 2}, w.dense_kernel)
      .AddF32("dense/bias", {2}, w.dense_bias);
  ok &= Write(d + "weights_without_metadata.safetensors", no_metadata.Build());

  SafetensorsBuilder extra;
  extra.AddWeights(w)
      .AddRaw("golden/labels", "I32", {3}, std::string(12, '\1'))
      .AddRaw("golden/half", "BF16", {2, 2}, std::string(8, '\x3f'))
      .AddRaw("empty", "F32", {0, 7}, "")
      .AddRaw("scalar", "F64", {}, std::string(8, '\0'));
  ok &= Write(d + "weights_with_other_tensors.safetensors", extra.Build());

  rnn::RnnWeights nan = w;
  nan.bias[1] = std::numeric_limits<float>::quiet_NaN();
  ok &= Write(d + "weights_with_nan.safetensors",
              SafetensorsBuilder().AddWeights(nan).Build());

  SafetensorsBuilder bad_length;
  bad_length.AddWeights(w).SetMetadata("sequence_length", "-20");
  ok &= Write(d + "bad_sequence_length.safetensors", bad_length.Build());

  rnn::RnnWeights mismatched = RandomWeights(3, 4, 5, 2, 2);
  mismatched.recurrent_kernel.resize(20);
  SafetensorsBuilder wrong_shape;
  wrong_shape.AddF32("simple_rnn/kernel", {4, 5}, w.kernel)
      .AddF32("simple_rnn/recurrent_kernel", {4, 5},
              mismatched.recurrent_kernel)
      .AddF32("simple_rnn/bias", {5}, w.bias)
      .AddF32("dense/kernel", {5, 2}, w.dense_kernel)
      .AddF32("dense/bias", {2}, w.dense_bias);
  ok &= Write(d + "mismatched_shapes.safetensors", wrong_shape.Build());

  ok &= Write(d + "empty_header.safetensors", RawSafetensors("{}", ""));
  ok &= Write(d + "overlapping_tensors.safetensors",
              RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],)"
                             R"("data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],)"
                             R"("data_offsets":[4,8]}})",
                             std::string(8, '\0')));
  ok &= Write(d + "shape_overflow.safetensors",
              RawSafetensors(R"({"a":{"dtype":"F64","shape":)"
                             R"([4294967296,4294967296,16],)"
                             R"("data_offsets":[0,8]}})",
                             std::string(8, '\0')));
  ok &= Write(d + "header_length_past_end.safetensors",
              std::string("\xff\x00\x00\x00\x00\x00\x00\x00{}", 10));
  return ok;
}

bool RequestSeeds(const std::string& dir) {
  const std::string d = dir + "/infer_request_fuzzer/";
  bool ok = true;
  const rnn::ModelSignature served;
  rnn::ModelSignature tiny;  // As in infer_request_fuzzer.cc.
  tiny.sequence_length = 2;
  tiny.input_size = 3;
  tiny.num_classes = 4;

  ok &= Write(d + "served_1_row_raw",
              rnn::testing::GoodRequest(served, 1).SerializeAsString());

  inference::ModelInferRequest typed = rnn::testing::GoodRequest(tiny, 3);
  const std::string& raw = typed.raw_input_contents(0);
  auto* contents = typed.mutable_inputs(0)->mutable_contents();
  for (size_t i = 0; i < raw.size(); i += sizeof(float)) {
    float v;
    std::memcpy(&v, raw.data() + i, sizeof(v));
    contents->add_fp32_contents(v);
  }
  typed.clear_raw_input_contents();
  ok &= Write(d + "tiny_3_rows_typed", typed.SerializeAsString());

  inference::ModelInferRequest full = rnn::testing::GoodRequest(tiny, 5);
  full.set_model_version("1");
  full.add_outputs()->set_name("probabilities");
  (*full.mutable_parameters())["timeout"].set_int64_param(1000);
  ok &=
      Write(d + "tiny_5_rows_version_output_timeout", full.SerializeAsString());

  // The table's long names are over the size limit: a shorter one, cut at a
  // UTF-8 character boundary in the error message.
  inference::ModelInferRequest long_name = rnn::testing::GoodRequest(tiny, 1);
  std::string name;
  for (int i = 0; i < 100; ++i) name += "\xC3\xA9";  // 'é'
  long_name.set_model_name(name);
  ok &= Write(d + "tiny_200_byte_model_name", long_name.SerializeAsString());

  for (const rnn::testing::BadRequest& bad : rnn::testing::BadRequests(tiny)) {
    ok &= Write(d + "tiny_" + FileName(bad.name),
                bad.request.SerializeAsString());
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <corpus dir> <bundled model>\n", argv[0]);
    return 2;
  }
  const bool safetensors_ok = SafetensorsSeeds(argv[1], argv[2]);
  const bool requests_ok = RequestSeeds(argv[1]);
  return safetensors_ok && requests_ok ? 0 : 1;
}
