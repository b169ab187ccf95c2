#include "model/safetensors.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/testing/safetensors_builder.h"

namespace rnn {
namespace {

using ::rnn::testing::RawSafetensors;
using ::rnn::testing::SafetensorsBuilder;
using ::testing::HasSubstr;

// Parses `bytes` and expects InvalidArgument with a message containing `what`.
void ExpectRefused(const std::string& bytes, const std::string& what) {
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Parse(bytes, "bad.safetensors");
  ASSERT_FALSE(file.ok()) << "accepted a file that should fail with: " << what;
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr("bad.safetensors"));
  EXPECT_THAT(file.status().message(), HasSubstr(what));
}

std::string EightBytes(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

std::string GoldenBytes() {
  std::ifstream in(RNN_TEST_DATA_DIR "/golden/simple_rnn_5x3_4_2.safetensors",
                   std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(SafetensorsTest, ParsesAValidFile) {
  const std::string bytes = SafetensorsBuilder()
                                .SetMetadata("sequence_length", "7")
                                .AddF32("a", {2, 3}, {1, 2, 3, 4, 5, 6})
                                .AddF32("b", {1}, {-1.5f})
                                .Build();
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Parse(bytes, "ok");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("sequence_length"), "7");
  EXPECT_EQ(file->tensors().size(), 2u);
  absl::StatusOr<std::vector<float>> a = file->ReadFloat32("a", {2, 3});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(*a, ::testing::ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(*file->ReadFloat32("b", {}), ::testing::ElementsAre(-1.5f));
  EXPECT_EQ(file->Find("missing"), nullptr);
}

TEST(SafetensorsTest, ReadsTheGoldenFileWithPaddedHeader) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(
      RNN_TEST_DATA_DIR "/golden/simple_rnn_20x100_50_10.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("sequence_length"), "20");
  ASSERT_NE(file->Find("golden/input"), nullptr);
  EXPECT_EQ(file->Find("golden/input")->shape,
            (std::vector<int64_t>{7, 20, 100}));
}

TEST(SafetensorsTest, ReadOfMissingFileIsNotFound) {
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Read("/nonexistent/model.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("/nonexistent/model"));
}

TEST(SafetensorsTest, ReadOfADirectoryIsAnErrorNotACrash) {
  // libstdc++ throws from the stream buffer when the "file" is a directory.
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read("/tmp");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr("/tmp: cannot read"));
  EXPECT_THAT(file.status().message(), HasSubstr("Is a directory"));
}

TEST(SafetensorsTest, RefusesFileShorterThanHeaderLength) {
  ExpectRefused("", "truncated");
  ExpectRefused("\x10\x00\x00", "truncated");
}

TEST(SafetensorsTest, RefusesHeaderLengthPastEndOfFile) {
  ExpectRefused(EightBytes(100) + "{}", "runs past the end");
}

TEST(SafetensorsTest, RefusesHeaderLengthOverTheLimit) {
  ExpectRefused(EightBytes(uint64_t{1} << 40) + "{}", "exceeds the limit");
  ExpectRefused(EightBytes(~uint64_t{0}) + "{}", "exceeds the limit");
}

TEST(SafetensorsTest, RefusesEveryTruncationOfAValidFile) {
  const std::string bytes = GoldenBytes();
  ASSERT_GT(bytes.size(), 100u);
  for (size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(SafetensorsFile::Parse(bytes.substr(0, size), "prefix").ok())
        << "accepted the first " << size << " bytes";
  }
  EXPECT_TRUE(SafetensorsFile::Parse(bytes, "whole").ok());
}

TEST(SafetensorsTest, RefusesInvalidJson) {
  ExpectRefused(RawSafetensors("{\"a\": [1, 2", ""), "not valid JSON");
  ExpectRefused(RawSafetensors("[1, 2, 3]", ""), "not a JSON object");
}

TEST(SafetensorsTest, RefusesBadMetadata) {
  ExpectRefused(RawSafetensors(R"({"__metadata__": [1]})", ""),
                "'__metadata__' is not a JSON object");
  ExpectRefused(
      RawSafetensors(R"({"__metadata__": {"sequence_length": 20}})", ""),
      "metadata 'sequence_length' is not a string");
}

TEST(SafetensorsTest, RefusesBadTensorEntries) {
  const std::string data(4, '\0');
  ExpectRefused(RawSafetensors(R"({"t": 3})", data), "not a JSON object");
  ExpectRefused(
      RawSafetensors(R"({"t": {"shape": [1], "data_offsets": [0, 4]}})", data),
      "missing string 'dtype'");
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F31", "shape": [1], "data_offsets": [0, 4]}})",
          data),
      "unknown dtype 'F31'");
  ExpectRefused(RawSafetensors(
                    R"({"t": {"dtype": "F32", "data_offsets": [0, 4]}})", data),
                "missing array 'shape'");
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
          data),
      "not an integer >= 0");
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})",
          data),
      "not an integer >= 0");
  ExpectRefused(
      RawSafetensors(R"({"t": {"dtype": "F32", "shape": [1]}})", data),
      "'data_offsets' must be two integers");
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})",
          data),
      "'data_offsets' must be two integers");
}

TEST(SafetensorsTest, RefusesOffsetsOutOfRange) {
  const std::string data(8, '\0');
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
          data),
      "out of range");
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})",
          data),
      "out of range");
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551616]}})",
          data),
      "'data_offsets' must be two integers");
}

TEST(SafetensorsTest, RefusesSizeThatDisagreesWithShape) {
  const std::string data(8, '\0');
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
          data),
      "need 12");
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}})",
          data),
      "need 16");
}

// Found by fuzz/safetensors_fuzzer: the message used to dump the shape, and
// json::dump recursed once per nesting level, so a 1 MB header crashed the
// loader (and rnn-server at start-up) with a stack overflow.
TEST(SafetensorsTest, RefusesDeeplyNestedShapeWithoutRecursing) {
  constexpr int kDepth = 1'000'000;
  const std::string header =
      R"({"t": {"dtype": "F32", "shape": [1, )" + std::string(kDepth, '[') +
      std::string(kDepth, ']') + R"(], "data_offsets": [0, 4]}})";
  ExpectRefused(RawSafetensors(header, std::string(4, '\0')),
                "shape dimension 1 is a JSON array, not an integer >= 0");
}

TEST(SafetensorsTest, RefusesShapeWhoseProductOverflows) {
  ExpectRefused(
      RawSafetensors(
          R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})",
          std::string(8, '\0')),
      "more than 2^64");
}

TEST(SafetensorsTest, RefusesOverlappingTensors) {
  ExpectRefused(
      RawSafetensors(
          R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
          std::string(12, '\0')),
      "overlaps");
}

TEST(SafetensorsTest, RefusesGapBetweenTensors) {
  ExpectRefused(
      RawSafetensors(
          R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                         "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
          std::string(12, '\0')),
      "belong to no tensor (gap before 'b')");
}

TEST(SafetensorsTest, RefusesTrailingBytes) {
  ExpectRefused(
      RawSafetensors(
          R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
          std::string(6, '\0')),
      "2 trailing bytes");
}

TEST(SafetensorsTest, TypedReadsCheckNameDtypeAndShape) {
  const std::string bytes = SafetensorsBuilder()
                                .AddF32("f", {2}, {1, 2})
                                .AddRaw("i", "I32", {1}, std::string(4, '\0'))
                                .Build();
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Parse(bytes, "x");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(file->ReadFloat32("g", {}).status().message(),
              HasSubstr("missing tensor 'g'"));
  EXPECT_THAT(file->ReadFloat32("i", {}).status().message(),
              HasSubstr("dtype I32, expected F32"));
  EXPECT_THAT(file->ReadFloat32("f", {3}).status().message(),
              HasSubstr("shape [2], expected [3]"));
  EXPECT_THAT(file->ReadInt32("f", {}).status().message(),
              HasSubstr("dtype F32, expected I32"));
  EXPECT_THAT(*file->ReadInt32("i", {1}), ::testing::ElementsAre(0));
}

}  // namespace
}  // namespace rnn
