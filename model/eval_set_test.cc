#include "model/eval_set.h"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/testing/safetensors_builder.h"

namespace rnn {
namespace {

using ::rnn::testing::SafetensorsBuilder;
using ::rnn::testing::WriteTempFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::string Int32Bytes(const std::vector<int32_t>& values) {
  std::string bytes(values.size() * sizeof(int32_t), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// Three sequences of 2 steps x 3 channels, values 0, 1, 2, ...
SafetensorsBuilder GoodEvalSet() {
  std::vector<float> inputs(3 * 2 * 3);
  for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = static_cast<float>(i);
  SafetensorsBuilder b;
  b.AddF32("input", {3, 2, 3}, inputs);
  b.AddRaw("label", "I32", {3}, Int32Bytes({4, 0, 9}));
  return b;
}

// Writes `builder`'s file and loads it for T=2, C=3, expecting a failure
// with `code` whose message names the file and contains `what`.
void ExpectLoadFails(
    const SafetensorsBuilder& builder, const std::string& what,
    absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  const std::string path =
      WriteTempFile("bad_eval_set.safetensors", builder.Build());
  absl::StatusOr<EvalSet> eval = LoadEvalSet(path, 2, 3);
  ASSERT_FALSE(eval.ok()) << "accepted a file that should fail with: " << what;
  EXPECT_EQ(eval.status().code(), code) << eval.status();
  EXPECT_THAT(eval.status().message(), HasSubstr(path));
  EXPECT_THAT(eval.status().message(), HasSubstr(what));
}

TEST(LoadEvalSetTest, ReadsInputsAndLabels) {
  const std::string path =
      WriteTempFile("good_eval_set.safetensors", GoodEvalSet().Build());
  absl::StatusOr<EvalSet> eval = LoadEvalSet(path, 2, 3);
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->size(), 3);
  EXPECT_THAT(eval->labels, ElementsAre(4, 0, 9));
  ASSERT_EQ(eval->inputs.size(), 18u);
  EXPECT_EQ(eval->inputs[0], 0.f);
  EXPECT_EQ(eval->inputs[17], 17.f);
}

TEST(LoadEvalSetTest, ReadsTheBundledEvalSet) {
  absl::StatusOr<EvalSet> eval =
      LoadEvalSet(RNN_SOURCE_MODEL_DIR "/eval_set.safetensors", 20, 100);
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_GE(eval->size(), 100);
  EXPECT_EQ(eval->inputs.size(), static_cast<size_t>(eval->size()) * 2000);
}

TEST(LoadEvalSetTest, MissingFileIsNotFound) {
  EXPECT_EQ(
      LoadEvalSet("/nonexistent/eval_set.safetensors", 2, 3).status().code(),
      absl::StatusCode::kNotFound);
}

TEST(LoadEvalSetTest, RefusesAMissingTensor) {
  ExpectLoadFails(
      SafetensorsBuilder().AddF32("input", {1, 2, 3}, std::vector<float>(6)),
      "missing tensor 'label'");
  ExpectLoadFails(
      SafetensorsBuilder().AddRaw("label", "I32", {1}, Int32Bytes({0})),
      "missing tensor 'input'");
}

TEST(LoadEvalSetTest, RefusesAWrongShape) {
  // Another sequence length than the model's.
  ExpectLoadFails(SafetensorsBuilder()
                      .AddF32("input", {3, 3, 2}, std::vector<float>(18))
                      .AddRaw("label", "I32", {3}, Int32Bytes({0, 1, 2})),
                  "tensor 'input' has shape [3, 3, 2], expected [3, 2, 3]");
  // Fewer labels than sequences.
  ExpectLoadFails(SafetensorsBuilder()
                      .AddF32("input", {3, 2, 3}, std::vector<float>(18))
                      .AddRaw("label", "I32", {2}, Int32Bytes({0, 1})),
                  "tensor 'input' has shape [3, 2, 3], expected [2, 2, 3]");
  ExpectLoadFails(SafetensorsBuilder()
                      .AddF32("input", {2, 2, 3}, std::vector<float>(12))
                      .AddRaw("label", "I32", {2, 1}, Int32Bytes({0, 1})),
                  "tensor 'label' has shape [2, 1], expected [N]");
}

TEST(LoadEvalSetTest, RefusesAWrongDtype) {
  ExpectLoadFails(SafetensorsBuilder()
                      .AddF32("input", {1, 2, 3}, std::vector<float>(6))
                      .AddF32("label", {1}, {0.f}),
                  "tensor 'label' has dtype F32, expected I32");
}

TEST(LoadEvalSetTest, RefusesAnEmptySet) {
  ExpectLoadFails(SafetensorsBuilder()
                      .AddF32("input", {0, 2, 3}, {})
                      .AddRaw("label", "I32", {0}, ""),
                  "holds no sequences");
}

TEST(TopClassTest, IsTheIndexOfTheLargestProbability) {
  EXPECT_EQ(TopClass(std::vector<float>{0.1f, 0.7f, 0.2f}), 1);
  EXPECT_EQ(TopClass(std::vector<float>{0.5f, 0.5f}), 0);  // First on a tie.
  EXPECT_EQ(TopClass(std::vector<float>{0.f, 0.f, 1.f}), 2);
}

TEST(TopClassTest, IsNoneForANaNOrAnEmptyRow) {
  EXPECT_EQ(TopClass(std::vector<float>{kNaN, kNaN, kNaN}), -1);
  // std::max_element would answer 2 here: every comparison with NaN is false.
  EXPECT_EQ(TopClass(std::vector<float>{0.1f, kNaN, 0.9f}), -1);
  EXPECT_EQ(TopClass(std::vector<float>{0.9f, kNaN, 0.1f}), -1);
  EXPECT_EQ(TopClass({}), -1);
}

TEST(AccuracyTest, CountsRowsWhoseTopClassIsTheLabel) {
  const std::vector<float> probabilities = {
      0.9f, 0.1f,  // Class 0.
      0.2f, 0.8f,  // Class 1.
      0.6f, 0.4f,  // Class 0.
      0.3f, 0.7f,  // Class 1.
  };
  const std::vector<int32_t> labels = {0, 1, 1, 1};
  EXPECT_EQ(CountCorrect(probabilities, 2, labels), 3);
  EXPECT_DOUBLE_EQ(Accuracy(probabilities, 2, labels), 0.75);
}

TEST(AccuracyTest, ANaNRowCountsAsWrong) {
  // The server answers an all-NaN row for a sequence holding NaN or Inf;
  // neither its label nor a label of -1 may make it right.
  const std::vector<float> probabilities = {
      0.9f, 0.1f,  // Class 0.
      kNaN, kNaN,  // None.
      kNaN, kNaN,  // None.
      0.2f, 0.8f,  // Class 1.
  };
  const std::vector<int32_t> labels = {0, 0, -1, 1};
  EXPECT_EQ(CountCorrect(probabilities, 2, labels), 2);
  EXPECT_DOUBLE_EQ(Accuracy(probabilities, 2, labels), 0.5);
}

TEST(AccuracyTest, IsZeroForNoRows) { EXPECT_EQ(Accuracy({}, 10, {}), 0.0); }

}  // namespace
}  // namespace rnn
