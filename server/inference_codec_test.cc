#include "server/inference_codec.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/testing/bad_requests.h"

namespace rnn {
namespace {

using ::rnn::testing::BadRequests;
using ::rnn::testing::GoodRequest;
using ::testing::HasSubstr;

TEST(InferenceCodecTest, DecodesRawInputInPlace) {
  const ModelSignature sig;
  const inference::ModelInferRequest request = GoodRequest(sig, 3);
  DecodedRequest decoded;
  ASSERT_TRUE(DecodeRequest(sig, request, decoded).ok());
  EXPECT_EQ(decoded.rows, 3u);
  ASSERT_EQ(decoded.input.size(), 3u * 2000);
  // No copy: the rows are read from the request's own bytes.
  EXPECT_EQ(static_cast<const void*>(decoded.input.data()),
            static_cast<const void*>(request.raw_input_contents(0).data()));
  EXPECT_FLOAT_EQ(decoded.input[2000], 0.001f);
  EXPECT_EQ(decoded.queue_timeout, absl::InfiniteDuration());
}

TEST(InferenceCodecTest, DecodesTypedContents) {
  ModelSignature sig;
  sig.sequence_length = 2;
  sig.input_size = 3;
  inference::ModelInferRequest request = GoodRequest(sig, 2);
  request.clear_raw_input_contents();
  for (int i = 0; i < 12; ++i) {
    request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(i);
  }
  DecodedRequest decoded;
  ASSERT_TRUE(DecodeRequest(sig, request, decoded).ok());
  EXPECT_EQ(decoded.rows, 2u);
  EXPECT_EQ(decoded.input[11], 11.f);
}

TEST(InferenceCodecTest, ReadsTheTimeoutParameter) {
  const ModelSignature sig;
  inference::ModelInferRequest request = GoodRequest(sig, 1);
  (*request.mutable_parameters())["timeout"].set_int64_param(2500);
  DecodedRequest decoded;
  ASSERT_TRUE(DecodeRequest(sig, request, decoded).ok());
  EXPECT_EQ(decoded.queue_timeout, absl::Microseconds(2500));
  (*request.mutable_parameters())["timeout"].set_int64_param(0);
  DecodedRequest no_timeout;
  ASSERT_TRUE(DecodeRequest(sig, request, no_timeout).ok());
  EXPECT_EQ(no_timeout.queue_timeout, absl::InfiniteDuration());
}

TEST(InferenceCodecTest, AcceptsTheModelsOwnOutputName) {
  const ModelSignature sig;
  inference::ModelInferRequest request = GoodRequest(sig, 1);
  request.add_outputs()->set_name("probabilities");
  DecodedRequest decoded;
  EXPECT_TRUE(DecodeRequest(sig, request, decoded).ok());
  request.add_outputs()->set_name("probabilities");
  EXPECT_THAT(DecodeRequest(sig, request, decoded).message(),
              HasSubstr("requested more than once"));
}

TEST(InferenceCodecTest, RefusesEveryBadRequest) {
  const ModelSignature sig;
  for (const auto& bad : BadRequests(sig)) {
    DecodedRequest decoded;
    const absl::Status status = DecodeRequest(sig, bad.request, decoded);
    EXPECT_EQ(status.code(), bad.code) << bad.name << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(bad.message_part)) << bad.name;
    // Short enough for any client's limit on the grpc-message header.
    EXPECT_LE(status.message().size(), 512u) << bad.name;
  }
}

TEST(InferenceCodecTest, QuotesClientTextCutAtACharacterBoundary) {
  EXPECT_EQ(QuoteForError("lstm"), "'lstm'");
  EXPECT_EQ(QuoteForError(std::string(kMaxEchoedBytes, 'a')),
            "'" + std::string(kMaxEchoedBytes, 'a') + "'");
  // 'é' is two bytes: 64 bytes hold 32 of them; with one leading 'a', the
  // 64th byte would split one, so the cut keeps 31.
  std::string text = "a";
  for (int i = 0; i < 100; ++i) text += "\xC3\xA9";
  std::string expected = "'a";
  for (int i = 0; i < 31; ++i) expected += "\xC3\xA9";
  EXPECT_EQ(QuoteForError(text), expected + "...' (201 bytes)");
}

TEST(InferenceCodecTest, PreparesAResponseForTheRows) {
  const ModelSignature sig;
  inference::ModelInferRequest request = GoodRequest(sig, 4);
  request.set_id("abc");
  inference::ModelInferResponse response;
  absl::Span<float> out = PrepareResponse(sig, request, 4, response);
  EXPECT_EQ(out.size(), 40u);
  EXPECT_EQ(response.id(), "abc");
  EXPECT_EQ(response.model_name(), "rnn");
  EXPECT_EQ(response.model_version(), "1");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "probabilities");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(4, 10));
  EXPECT_EQ(response.raw_output_contents(0).size(), 160u);
  EXPECT_EQ(
      static_cast<void*>(out.data()),
      static_cast<void*>(response.mutable_raw_output_contents(0)->data()));
}

TEST(InferenceCodecTest, ModelMetadataDescribesTheSignature) {
  ModelSignature sig;
  sig.sequence_length = 5;
  sig.input_size = 3;
  sig.num_classes = 2;
  inference::ModelMetadataResponse metadata;
  FillModelMetadata(sig, metadata);
  EXPECT_EQ(metadata.name(), "rnn");
  EXPECT_THAT(metadata.versions(), ::testing::ElementsAre("1"));
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "sequence");
  EXPECT_THAT(metadata.inputs(0).shape(), ::testing::ElementsAre(-1, 5, 3));
  EXPECT_THAT(metadata.outputs(0).shape(), ::testing::ElementsAre(-1, 2));
}

}  // namespace
}  // namespace rnn
