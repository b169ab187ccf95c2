#include "tests/testing/stream_helpers.h"

#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/metrics/testing/http_get.h"

namespace rnn::testing {

std::unique_ptr<inference::GRPCInferenceService::Stub> LoopbackStub(
    int grpc_port) {
  return inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                          grpc::InsecureChannelCredentials()));
}

std::map<std::string, double> ScrapeMetrics(int port) {
  absl::StatusOr<std::string> response = HttpGet(port, "/metrics");
  EXPECT_TRUE(response.ok()) << response.status();
  std::map<std::string, double> samples;
  if (!response.ok()) return samples;
  const size_t body = response->find("\r\n\r\n");
  EXPECT_NE(body, std::string::npos);
  if (body == std::string::npos) return samples;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(*response).substr(body + 4), '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space != absl::string_view::npos &&
        absl::SimpleAtod(line.substr(space + 1), &value)) {
      samples[std::string(line.substr(0, space))] = value;
    }
  }
  return samples;
}

std::string RnnSeries(const std::string& name, const std::string& extra) {
  return absl::StrCat(name, "{model=\"rnn\",version=\"1\"", extra, "}");
}

std::vector<float> Probabilities(
    const inference::ModelInferResponse& response) {
  if (response.raw_output_contents_size() != 1) return {};
  const std::string& raw = response.raw_output_contents(0);
  std::vector<float> values(raw.size() / sizeof(float));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  return values;
}

InferStream::InferStream(inference::GRPCInferenceService::Stub& stub,
                         bool start_reading) {
  context_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  stream_ = stub.ModelStreamInfer(&context_);
  if (start_reading) StartReading();
}

InferStream::~InferStream() {
  if (!finished_) {
    context_.TryCancel();
    StartReading();
    reader_.join();
    stream_->Finish().IgnoreError();
  }
}

bool InferStream::Write(const inference::ModelInferRequest& request) {
  return stream_->Write(request);
}

bool InferStream::WritesDone() { return stream_->WritesDone(); }

void InferStream::StartReading() {
  if (!reader_.joinable()) reader_ = std::thread([this] { ReadAll(); });
}

void InferStream::ReadAll() {
  inference::ModelStreamInferResponse response;
  while (stream_->Read(&response)) {
    std::lock_guard<std::mutex> lock(mu_);
    responses_.push_back(std::move(response));
    response.Clear();
    changed_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = true;
  changed_.notify_all();
}

bool InferStream::WaitForResponses(size_t n, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_until(lock, absl::ToChronoTime(absl::Now() + timeout),
                      [&] { return responses_.size() >= n || ended_; });
  return responses_.size() >= n;
}

grpc::Status InferStream::Finish(absl::Duration timeout) {
  StartReading();
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!changed_.wait_until(lock, absl::ToChronoTime(absl::Now() + timeout),
                             [&] { return ended_; })) {
      ADD_FAILURE() << "the server did not end the stream within " << timeout;
      context_.TryCancel();
    }
  }
  reader_.join();
  finished_ = true;
  return stream_->Finish();
}

void InferStream::Cancel() { context_.TryCancel(); }

std::vector<inference::ModelStreamInferResponse> InferStream::responses()
    const {
  std::lock_guard<std::mutex> lock(mu_);
  return responses_;
}

size_t InferStream::response_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return responses_.size();
}

}  // namespace rnn::testing
