#include "model/testing/safetensors_builder.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace rnn::testing {

SafetensorsBuilder& SafetensorsBuilder::AddF32(
    const std::string& name, std::vector<int64_t> shape,
    const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return AddRaw(name, "F32", std::move(shape), std::move(bytes));
}

SafetensorsBuilder& SafetensorsBuilder::AddRaw(const std::string& name,
                                               const std::string& dtype,
                                               std::vector<int64_t> shape,
                                               std::string bytes) {
  entries_.push_back({name, dtype, std::move(shape), data_.size(),
                      data_.size() + bytes.size()});
  data_ += bytes;
  return *this;
}

SafetensorsBuilder& SafetensorsBuilder::SetMetadata(const std::string& key,
                                                    const std::string& value) {
  metadata_.emplace_back(key, value);
  return *this;
}

SafetensorsBuilder& SafetensorsBuilder::AddWeights(const RnnWeights& w) {
  const int64_t c = w.input_size, h = w.hidden_size, o = w.num_classes;
  SetMetadata("sequence_length", std::to_string(w.sequence_length));
  AddF32("simple_rnn/kernel", {c, h}, w.kernel);
  AddF32("simple_rnn/recurrent_kernel", {h, h}, w.recurrent_kernel);
  AddF32("simple_rnn/bias", {h}, w.bias);
  AddF32("dense/kernel", {h, o}, w.dense_kernel);
  return AddF32("dense/bias", {o}, w.dense_bias);
}

std::string SafetensorsBuilder::HeaderJson() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json& meta = header["__metadata__"];
    for (const auto& [key, value] : metadata_) meta[key] = value;
  }
  for (const Entry& e : entries_) {
    header[e.name] = {{"dtype", e.dtype},
                      {"shape", e.shape},
                      {"data_offsets", {e.begin, e.end}}};
  }
  return header.dump();
}

std::string SafetensorsBuilder::Build() const {
  return RawSafetensors(HeaderJson(), data_);
}

std::string RawSafetensors(const std::string& header_json,
                           const std::string& data) {
  const uint64_t n = header_json.size();
  std::string bytes(sizeof(n), '\0');
  std::memcpy(bytes.data(), &n, sizeof(n));
  return bytes + header_json + data;
}

std::string WriteTempFile(const std::string& name, const std::string& bytes) {
  // ctest runs each test case as its own process, several at once, and
  // cases share file names: the process id keeps their files apart.
  const std::string path =
      ::testing::TempDir() + std::to_string(getpid()) + "_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(out.good()) << "cannot write " << path;
  return path;
}

RnnWeights RandomWeights(int t, int c, int h, int o, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto fill = [&rng](size_t count, int fan_in, int fan_out) {
    std::uniform_real_distribution<float> dist(
        -std::sqrt(6.f / (fan_in + fan_out)),
        std::sqrt(6.f / (fan_in + fan_out)));
    std::vector<float> values(count);
    for (float& v : values) v = dist(rng);
    return values;
  };
  RnnWeights w;
  w.sequence_length = t;
  w.input_size = c;
  w.hidden_size = h;
  w.num_classes = o;
  w.kernel = fill(size_t{1} * c * h, c, h);
  w.recurrent_kernel = fill(size_t{1} * h * h, h, h);
  w.bias = fill(h, h, h);
  w.dense_kernel = fill(size_t{1} * h * o, h, o);
  w.dense_bias = fill(o, h, o);
  return w;
}

std::vector<float> RandomInput(size_t n, size_t floats_per_sequence,
                               uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> values(n * floats_per_sequence);
  for (float& v : values) v = dist(rng);
  return values;
}

}  // namespace rnn::testing
