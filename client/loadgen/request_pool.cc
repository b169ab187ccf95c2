#include "client/loadgen/request_pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "grpcpp/support/slice.h"
#include "model/reference_forward.h"

namespace rnn::loadgen {
std::string RequestPool::IdField(absl::string_view id) {
  std::string out(1, static_cast<char>((3 << 3) | 2));
  size_t n = id.size();
  do {
    out += static_cast<char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>= 7;
  } while (n != 0);
  out.append(id.data(), id.size());
  return out;
}

absl::StatusOr<std::unique_ptr<RequestPool>> RequestPool::Create(
    const PoolSpec& spec, std::vector<float> rows,
    std::vector<int32_t> labels) {
  if (spec.batch < 1) {
    return absl::InvalidArgumentError("batch must be at least 1");
  }
  if (spec.sequence_length < 1 || spec.input_size < 1 || spec.num_classes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model's shape [-1, ", spec.sequence_length, ", ", spec.input_size,
        "] -> [-1, ", spec.num_classes, "] has a dimension below 1"));
  }
  const size_t per_row = spec.sequence_length * spec.input_size;
  if (rows.empty() || rows.size() % per_row != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inputs hold ", rows.size(), " values, not a whole number of ",
        spec.sequence_length, " x ", spec.input_size, " sequences"));
  }
  auto pool = std::unique_ptr<RequestPool>(new RequestPool(spec));
  pool->num_rows_ = static_cast<int64_t>(rows.size() / per_row);
  if (!labels.empty() &&
      static_cast<int64_t>(labels.size()) != pool->num_rows_) {
    return absl::InvalidArgumentError(absl::StrCat(
        labels.size(), " labels for ", pool->num_rows_, " sequences"));
  }
  pool->rows_ = std::move(rows);
  pool->labels_ = std::move(labels);

  inference::ModelInferRequest prefix;
  prefix.set_model_name(spec.model);
  prefix.set_model_version(spec.model_version);
  auto* tensor = prefix.add_inputs();
  tensor->set_name(spec.input_name);
  tensor->set_datatype("FP32");
  tensor->add_shape(spec.batch);
  tensor->add_shape(spec.sequence_length);
  tensor->add_shape(spec.input_size);
  pool->prefix_ = prefix.SerializeAsString();

  // Enough requests to cover every row once, within the memory bound.
  const int64_t request_bytes =
      static_cast<int64_t>(per_row * sizeof(float)) * spec.batch;
  const int64_t covering = (pool->num_rows_ + spec.batch - 1) / spec.batch;
  const int64_t count = std::max<int64_t>(
      1, std::min(covering, spec.max_pool_bytes / request_bytes));
  pool->payloads_.reserve(count);
  inference::ModelInferRequest payload;
  std::string* raw = payload.add_raw_input_contents();
  for (int i = 0; i < count; ++i) {
    raw->clear();
    for (int j = 0; j < spec.batch; ++j) {
      raw->append(reinterpret_cast<const char*>(pool->rows_.data() +
                                                pool->RowOf(i, j) * per_row),
                  per_row * sizeof(float));
    }
    pool->payloads_.push_back(payload.SerializeAsString());
  }
  return pool;
}

absl::Status RequestPool::ExpectFromWeights(const RnnWeights& weights) {
  if (weights.input_size != spec_.input_size ||
      weights.num_classes != spec_.num_classes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the weights file does not match the model's shape: it maps %d "
        "features to %d classes; the server's model '%s' takes [-1, %d, %d] "
        "and answers [-1, %d]",
        weights.input_size, weights.num_classes, spec_.model,
        spec_.sequence_length, spec_.input_size, spec_.num_classes));
  }
  RnnWeights w = weights;
  w.sequence_length = static_cast<int>(spec_.sequence_length);
  expected_ = ReferenceForward(w, rows_).probabilities;
  mode_ = Mode::kWeights;
  return absl::OkStatus();
}

absl::Status RequestPool::ExpectLabels() {
  if (labels_.empty()) {
    return absl::FailedPreconditionError("the inputs carry no labels");
  }
  for (int32_t label : labels_) {
    if (label < 0 || label >= spec_.num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("label ", label, " is outside the model's ",
                       spec_.num_classes, " classes"));
    }
  }
  mode_ = Mode::kLabels;
  return absl::OkStatus();
}

grpc::ByteBuffer RequestPool::Request(int i, absl::string_view id) const {
  const std::string& payload = payloads_[i];
  const std::string id_field = IdField(id);
  grpc::Slice slices[3] = {
      grpc::Slice(prefix_.data(), prefix_.size(), grpc::Slice::STATIC_SLICE),
      grpc::Slice(id_field.data(), id_field.size()),
      grpc::Slice(payload.data(), payload.size(), grpc::Slice::STATIC_SLICE),
  };
  return grpc::ByteBuffer(slices, 3);
}

inference::ModelInferRequest RequestPool::RequestMessage(
    int i, absl::string_view id) const {
  inference::ModelInferRequest request;
  request.ParseFromString(absl::StrCat(prefix_, IdField(id), payloads_[i]));
  return request;
}

AnswerCheck RequestPool::Check(
    int i, absl::string_view id,
    const inference::ModelInferResponse& response) const {
  AnswerCheck check;
  auto wrong = [&](std::string problem) {
    check.right = false;
    check.problem = absl::StrCat("request id ", id, ": ", problem);
    return check;
  };
  if (response.id() != id) {
    return wrong(absl::StrCat("the answer carries id '", response.id(), "'"));
  }
  if (response.outputs_size() < 1) return wrong("the answer has no outputs");
  const auto& out = response.outputs(0);
  const int64_t o = spec_.num_classes;
  if (out.datatype() != "FP32" || out.shape_size() != 2 ||
      out.shape(0) != spec_.batch || out.shape(1) != o) {
    return wrong(absl::StrCat("output '", out.name(), "' is ", out.datatype(),
                              " [", absl::StrJoin(out.shape(), ", "),
                              "], expected FP32 [", spec_.batch, ", ", o, "]"));
  }
  const size_t count = static_cast<size_t>(spec_.batch) * o;
  const float* values;
  if (response.raw_output_contents_size() > 0) {
    const std::string& raw = response.raw_output_contents(0);
    if (raw.size() != count * sizeof(float)) {
      return wrong(absl::StrCat("raw output holds ", raw.size(),
                                " bytes, expected ", count * sizeof(float)));
    }
    values = reinterpret_cast<const float*>(raw.data());
  } else {
    if (static_cast<size_t>(out.contents().fp32_contents_size()) != count) {
      return wrong(absl::StrCat("fp32_contents holds ",
                                out.contents().fp32_contents_size(),
                                " values, expected ", count));
    }
    values = out.contents().fp32_contents().data();
  }
  for (int j = 0; j < spec_.batch; ++j) {
    const int64_t row = RowOf(i, j);
    const float* got = values + static_cast<size_t>(j) * o;
    if (mode_ == Mode::kWeights) {
      const double* want = expected_.data() + row * o;
      for (int64_t k = 0; k < o; ++k) {
        const bool both_nan = std::isnan(want[k]) && std::isnan(got[k]);
        if (!both_nan &&
            !(std::abs(got[k] - want[k]) <= kProbabilityTolerance)) {
          return wrong(absl::StrFormat(
              "sequence %d (input row %d): probability[%d] = %.6f, expected "
              "%.6f",
              j, row, k, got[k], want[k]));
        }
      }
    } else if (mode_ == Mode::kLabels) {
      const int64_t top = std::max_element(got, got + o) - got;
      if (top == labels_[row]) {
        ++check.rows_matching_label;
      } else if (check.right) {
        check.right = false;
        check.problem = absl::StrFormat(
            "request id %s: sequence %d (eval row %d) classified %d, label %d",
            id, j, row, top, labels_[row]);
      }
    }
  }
  return check;
}

}  // namespace rnn::loadgen
