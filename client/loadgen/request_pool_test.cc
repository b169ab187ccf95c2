#include "client/loadgen/request_pool.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "gtest/gtest.h"
#include "model/reference_forward.h"
#include "model/testing/safetensors_builder.h"

namespace rnn::loadgen {
namespace {

using ::testing::HasSubstr;

constexpr int kT = 3, kC = 4, kO = 5;

PoolSpec SmallSpec(int batch) {
  PoolSpec spec;
  spec.sequence_length = kT;
  spec.input_size = kC;
  spec.num_classes = kO;
  spec.batch = batch;
  return spec;
}

std::vector<float> Rows(int n) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> rows(n * kT * kC);
  for (float& v : rows) v = dist(rng);
  return rows;
}

// The answer a correct server gives to request `i`.
inference::ModelInferResponse Answer(const RequestPool& pool,
                                     const RnnWeights& w, int i,
                                     const std::string& id) {
  const inference::ModelInferRequest request = pool.RequestMessage(i, id);
  const std::string& raw = request.raw_input_contents(0);
  std::vector<float> x(raw.size() / sizeof(float));
  std::memcpy(x.data(), raw.data(), raw.size());
  const std::vector<double> p = ReferenceForward(w, x).probabilities;
  inference::ModelInferResponse response;
  response.set_id(id);
  auto* out = response.add_outputs();
  out->set_name("probabilities");
  out->set_datatype("FP32");
  out->add_shape(pool.batch());
  out->add_shape(kO);
  std::vector<float> f(p.begin(), p.end());
  response.add_raw_output_contents()->assign(
      reinterpret_cast<const char*>(f.data()), f.size() * sizeof(float));
  return response;
}

class RequestPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    weights_ = testing::RandomWeights(kT, kC, /*hidden=*/6, kO, /*seed=*/9);
  }
  RnnWeights weights_;
};

TEST_F(RequestPoolTest, RequestBytesParseIntoTheRequestWithItsIdAndRows) {
  const std::vector<float> rows = Rows(10);
  auto pool = RequestPool::Create(SmallSpec(4), rows, {});
  ASSERT_TRUE(pool.ok()) << pool.status();
  // 10 rows in requests of 4 need 3 requests to cover them all.
  EXPECT_EQ((*pool)->size(), 3);
  grpc::ByteBuffer bytes = (*pool)->Request(2, "7.42");
  inference::ModelInferRequest request;
  grpc::ProtoBufferReader reader(&bytes);
  ASSERT_TRUE(request.ParseFromZeroCopyStream(&reader));
  EXPECT_EQ(request.id(), "7.42");
  EXPECT_EQ(request.model_name(), "rnn");
  ASSERT_EQ(request.inputs_size(), 1);
  EXPECT_EQ(request.inputs(0).datatype(), "FP32");
  EXPECT_THAT(request.inputs(0).shape(), ::testing::ElementsAre(4, kT, kC));
  // Request 2 holds rows 8, 9, 0, 1 (wrapping round).
  const std::string& raw = request.raw_input_contents(0);
  ASSERT_EQ(raw.size(), 4 * kT * kC * sizeof(float));
  const int expected_rows[] = {8, 9, 0, 1};
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(std::memcmp(raw.data() + j * kT * kC * sizeof(float),
                          rows.data() + expected_rows[j] * kT * kC,
                          kT * kC * sizeof(float)),
              0)
        << j;
  }
}

TEST_F(RequestPoolTest, LongIdsEncodeTheirLength) {
  auto pool = RequestPool::Create(SmallSpec(1), Rows(1), {});
  const std::string id(300, 'x');  // Length needs a two-byte varint.
  EXPECT_EQ((*pool)->RequestMessage(0, id).id(), id);
}

TEST_F(RequestPoolTest, RightAnswersPassAndEveryKindOfWrongOneIsNamed) {
  auto pool = RequestPool::Create(SmallSpec(2), Rows(6), {});
  ASSERT_TRUE((*pool)->ExpectFromWeights(weights_).ok());
  EXPECT_TRUE((*pool)->verifying());
  const inference::ModelInferResponse right = Answer(**pool, weights_, 1, "a");
  EXPECT_TRUE((*pool)->Check(1, "a", right).right);

  // Another request's answer (cross-talk).
  AnswerCheck c = (*pool)->Check(2, "a", right);
  EXPECT_FALSE(c.right);
  EXPECT_THAT(c.problem, HasSubstr("request id a: sequence 0 (input row 4)"));
  // Another request's id.
  c = (*pool)->Check(1, "b", right);
  EXPECT_FALSE(c.right);
  EXPECT_THAT(c.problem, HasSubstr("carries id 'a'"));
  // A value off by more than the tolerance, and one within it.
  inference::ModelInferResponse off = right;
  float* v =
      reinterpret_cast<float*>(off.mutable_raw_output_contents(0)->data());
  v[kO + 2] += 2e-4f;
  c = (*pool)->Check(1, "a", off);
  EXPECT_FALSE(c.right);
  EXPECT_THAT(c.problem, HasSubstr("sequence 1 (input row 3): probability[2]"));
  v[kO + 2] -= 1.5e-4f;
  EXPECT_TRUE((*pool)->Check(1, "a", off).right);
  // Wrong shape, wrong datatype, short data.
  inference::ModelInferResponse bad = right;
  bad.mutable_outputs(0)->set_shape(0, 3);
  EXPECT_THAT((*pool)->Check(1, "a", bad).problem,
              HasSubstr("expected FP32 [2, 5]"));
  bad = right;
  bad.mutable_outputs(0)->set_datatype("FP64");
  EXPECT_FALSE((*pool)->Check(1, "a", bad).right);
  bad = right;
  bad.mutable_raw_output_contents(0)->resize(8);
  EXPECT_THAT((*pool)->Check(1, "a", bad).problem,
              HasSubstr("raw output holds 8 bytes"));
  bad.clear_outputs();
  EXPECT_THAT((*pool)->Check(1, "a", bad).problem, HasSubstr("no outputs"));
}

TEST_F(RequestPoolTest, TypedContentsAreCheckedLikeRaw) {
  auto pool = RequestPool::Create(SmallSpec(1), Rows(2), {});
  ASSERT_TRUE((*pool)->ExpectFromWeights(weights_).ok());
  inference::ModelInferResponse r = Answer(**pool, weights_, 0, "t");
  const std::string raw = r.raw_output_contents(0);
  r.clear_raw_output_contents();
  auto* typed =
      r.mutable_outputs(0)->mutable_contents()->mutable_fp32_contents();
  for (size_t k = 0; k < raw.size() / sizeof(float); ++k) {
    float f;
    std::memcpy(&f, raw.data() + k * sizeof(float), sizeof(float));
    typed->Add(f);
  }
  EXPECT_TRUE((*pool)->Check(0, "t", r).right);
  typed->Set(0, typed->Get(0) + 0.5f);
  EXPECT_FALSE((*pool)->Check(0, "t", r).right);
}

TEST_F(RequestPoolTest, LabelChecksCountMatchingRows) {
  // Labels chosen so that the reference's top class matches row 0 only.
  const std::vector<float> rows = Rows(2);
  const std::vector<double> p = ReferenceForward(weights_, rows).probabilities;
  auto top = [&](int r) {
    return static_cast<int32_t>(
        std::max_element(p.begin() + r * kO, p.begin() + (r + 1) * kO) -
        (p.begin() + r * kO));
  };
  auto pool =
      RequestPool::Create(SmallSpec(2), rows, {top(0), (top(1) + 1) % kO});
  ASSERT_TRUE((*pool)->ExpectLabels().ok());
  EXPECT_TRUE((*pool)->checking_labels());
  const AnswerCheck c =
      (*pool)->Check(0, "l", Answer(**pool, weights_, 0, "l"));
  EXPECT_FALSE(c.right);
  EXPECT_EQ(c.rows_matching_label, 1);
  EXPECT_THAT(c.problem, HasSubstr("sequence 1 (eval row 1)"));
}

TEST_F(RequestPoolTest, RefusesWhatDoesNotFit) {
  EXPECT_FALSE(RequestPool::Create(SmallSpec(0), Rows(1), {}).ok());
  std::vector<float> ragged = Rows(1);
  ragged.pop_back();
  EXPECT_THAT(RequestPool::Create(SmallSpec(1), ragged, {}).status().message(),
              HasSubstr("not a whole number of 3 x 4 sequences"));
  EXPECT_FALSE(RequestPool::Create(SmallSpec(1), Rows(2), {1}).ok());
  auto pool = RequestPool::Create(SmallSpec(1), Rows(2), {});
  EXPECT_FALSE((*pool)->ExpectLabels().ok());  // No labels given.
  const RnnWeights other = testing::RandomWeights(kT, kC + 1, 6, kO, 1);
  absl::Status s = (*pool)->ExpectFromWeights(other);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("does not match the model's shape"));
  auto labelled = RequestPool::Create(SmallSpec(1), Rows(1), {kO});
  EXPECT_THAT((*labelled)->ExpectLabels().message(), HasSubstr("outside"));
}

TEST_F(RequestPoolTest, PoolSizeIsBoundedByMemory) {
  PoolSpec spec = SmallSpec(1);
  spec.max_pool_bytes = 3 * kT * kC * sizeof(float);
  auto pool = RequestPool::Create(spec, Rows(100), {});
  EXPECT_EQ((*pool)->size(), 3);
}

}  // namespace
}  // namespace rnn::loadgen
