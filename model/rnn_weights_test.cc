#include "model/rnn_weights.h"

#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/testing/safetensors_builder.h"

namespace rnn {
namespace {

using ::rnn::testing::RandomWeights;
using ::rnn::testing::SafetensorsBuilder;
using ::testing::HasSubstr;

absl::StatusOr<RnnWeights> FromBytes(const std::string& bytes,
                                     int sequence_length = 0) {
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Parse(bytes, "w.safetensors");
  if (!file.ok()) return file.status();
  return RnnWeights::FromSafetensors(*file, sequence_length);
}

void ExpectRefused(const std::string& bytes, const std::string& what) {
  absl::StatusOr<RnnWeights> w = FromBytes(bytes);
  ASSERT_FALSE(w.ok()) << "accepted weights that should fail with: " << what;
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(w.status().message(), HasSubstr(what));
}

// The five tensors of `w` with one of them replaced (or dropped when
// `replacement_dtype` is empty).
std::string WeightsWith(const RnnWeights& w, const std::string& name,
                        const std::string& replacement_dtype,
                        std::vector<int64_t> replacement_shape) {
  const int64_t c = w.input_size, h = w.hidden_size, o = w.num_classes;
  const std::pair<std::string, std::vector<int64_t>> all[] = {
      {"simple_rnn/kernel", {c, h}}, {"simple_rnn/recurrent_kernel", {h, h}},
      {"simple_rnn/bias", {h}},      {"dense/kernel", {h, o}},
      {"dense/bias", {o}},
  };
  SafetensorsBuilder b;
  for (const auto& [tensor, shape] : all) {
    std::vector<int64_t> s = shape;
    std::string dtype = "F32";
    if (tensor == name) {
      if (replacement_dtype.empty()) continue;
      s = replacement_shape;
      dtype = replacement_dtype;
    }
    int64_t count = 1;
    for (int64_t d : s) count *= d;
    b.AddRaw(tensor, dtype, s, std::string(count * DtypeSize(dtype), '\0'));
  }
  return b.Build();
}

TEST(RnnWeightsTest, LoadsTheGoldenFilesWithTheirDimensions) {
  absl::StatusOr<RnnWeights> big = RnnWeights::Load(
      RNN_TEST_DATA_DIR "/golden/simple_rnn_20x100_50_10.safetensors");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->sequence_length, 20);
  EXPECT_EQ(big->input_size, 100);
  EXPECT_EQ(big->hidden_size, 50);
  EXPECT_EQ(big->num_classes, 10);

  absl::StatusOr<RnnWeights> small = RnnWeights::Load(
      RNN_TEST_DATA_DIR "/golden/simple_rnn_5x3_4_2.safetensors");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->sequence_length, 5);
  EXPECT_EQ(small->input_size, 3);
  EXPECT_EQ(small->hidden_size, 4);
  EXPECT_EQ(small->num_classes, 2);
  EXPECT_EQ(small->kernel.size(), 12u);
}

TEST(RnnWeightsTest, RoundTripsValuesExactly) {
  const RnnWeights w = RandomWeights(6, 5, 4, 3, /*seed=*/7);
  absl::StatusOr<RnnWeights> read =
      FromBytes(SafetensorsBuilder().AddWeights(w).Build());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->sequence_length, 6);
  EXPECT_EQ(read->kernel, w.kernel);
  EXPECT_EQ(read->recurrent_kernel, w.recurrent_kernel);
  EXPECT_EQ(read->bias, w.bias);
  EXPECT_EQ(read->dense_kernel, w.dense_kernel);
  EXPECT_EQ(read->dense_bias, w.dense_bias);
}

TEST(RnnWeightsTest, SequenceLengthDefaultsTo20AndCanBeOverridden) {
  RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
  const std::string no_metadata = WeightsWith(w, "", "", {});
  EXPECT_EQ(FromBytes(no_metadata)->sequence_length, 20);
  EXPECT_EQ(FromBytes(no_metadata, 33)->sequence_length, 33);
  w.sequence_length = 9;
  const std::string with_metadata = SafetensorsBuilder().AddWeights(w).Build();
  EXPECT_EQ(FromBytes(with_metadata)->sequence_length, 9);
  EXPECT_EQ(FromBytes(with_metadata, 4)->sequence_length, 4);
}

TEST(RnnWeightsTest, RefusesBadSequenceLengthMetadata) {
  const RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
  for (const char* bad : {"abc", "0", "-3", "2.5", "99999999999"}) {
    SafetensorsBuilder b;
    b.SetMetadata("sequence_length", bad);
    b.AddF32("simple_rnn/kernel", {5, 4}, w.kernel)
        .AddF32("simple_rnn/recurrent_kernel", {4, 4}, w.recurrent_kernel)
        .AddF32("simple_rnn/bias", {4}, w.bias)
        .AddF32("dense/kernel", {4, 3}, w.dense_kernel)
        .AddF32("dense/bias", {3}, w.dense_bias);
    ExpectRefused(b.Build(), "metadata sequence_length '" + std::string(bad));
  }
}

TEST(RnnWeightsTest, RefusesEachMissingTensor) {
  const RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
  for (const char* name : {"simple_rnn/kernel", "simple_rnn/recurrent_kernel",
                           "simple_rnn/bias", "dense/kernel", "dense/bias"}) {
    ExpectRefused(WeightsWith(w, name, "", {}),
                  "missing tensor '" + std::string(name) + "'");
  }
}

TEST(RnnWeightsTest, RefusesWrongDtype) {
  const RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
  ExpectRefused(WeightsWith(w, "simple_rnn/kernel", "F64", {5, 4}),
                "'simple_rnn/kernel' has dtype F64, expected F32");
  ExpectRefused(WeightsWith(w, "dense/bias", "F16", {3}),
                "'dense/bias' has dtype F16, expected F32");
}

TEST(RnnWeightsTest, RefusesShapesThatDisagree) {
  const RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
  ExpectRefused(
      WeightsWith(w, "simple_rnn/recurrent_kernel", "F32", {4, 5}),
      "'simple_rnn/recurrent_kernel' has shape [4, 5], expected [4, 4]");
  ExpectRefused(WeightsWith(w, "simple_rnn/bias", "F32", {5}),
                "'simple_rnn/bias' has shape [5], expected [4]");
  ExpectRefused(WeightsWith(w, "dense/kernel", "F32", {5, 3}),
                "'dense/kernel' has shape [5, 3], expected [4, 3]");
  ExpectRefused(WeightsWith(w, "dense/bias", "F32", {4}),
                "'dense/bias' has shape [4], expected [3]");
  ExpectRefused(WeightsWith(w, "simple_rnn/kernel", "F32", {20}),
                "expected rank 2");
  ExpectRefused(WeightsWith(w, "simple_rnn/kernel", "F32", {0, 4}),
                "each dimension must be in [1, 65536]");
}

TEST(RnnWeightsTest, RefusesNonFiniteWeights) {
  const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(),
                              std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
  for (float bad : bad_values) {
    RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
    w.recurrent_kernel[5] = bad;
    ExpectRefused(SafetensorsBuilder().AddWeights(w).Build(),
                  "'simple_rnn/recurrent_kernel' element 5 is");
    w = RandomWeights(20, 5, 4, 3, 1);
    w.dense_bias[2] = bad;
    ExpectRefused(SafetensorsBuilder().AddWeights(w).Build(),
                  "weights must be finite");
  }
}

TEST(RnnWeightsTest, IgnoresUnknownTensors) {
  const RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
  SafetensorsBuilder b;
  b.AddWeights(w).AddF32("optimizer/step", {1}, {3.f});
  EXPECT_TRUE(FromBytes(b.Build()).ok());
}

TEST(RnnWeightsTest, ValidateCatchesHandBuiltMistakes) {
  RnnWeights w = RandomWeights(20, 5, 4, 3, 1);
  EXPECT_TRUE(w.Validate().ok());
  w.bias.pop_back();
  EXPECT_THAT(w.Validate().message(),
              HasSubstr("'simple_rnn/bias' has 3 values, expected 4"));
  w = RandomWeights(20, 5, 4, 3, 1);
  w.sequence_length = 0;
  EXPECT_THAT(w.Validate().message(), HasSubstr("T=0"));
}

}  // namespace
}  // namespace rnn
