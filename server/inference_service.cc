#include "server/inference_service.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/status_util.h"

namespace rnn {
namespace {

// One ModelInfer call. Lives until gRPC calls OnDone after Finish. Every
// answer goes through FinishWith, which records the call's metrics.
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  InferReactor(Batcher* batcher, Metrics* metrics)
      : batcher_(batcher), metrics_(metrics), start_(absl::Now()) {
    if (metrics_ != nullptr) metrics_->RequestStarted();
  }

  void FinishWith(const absl::Status& status) {
    if (metrics_ != nullptr) {
      metrics_->RequestFinished(status.code(), absl::Now() - start_);
    }
    Finish(ToGrpcStatus(status));
  }

  void OnCancel() override {
    cancelled_.store(true, std::memory_order_relaxed);
    batcher_->NotifyCancelled();
  }
  void OnDone() override { delete this; }

  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  DecodedRequest& decoded() { return decoded_; }

 private:
  Batcher* const batcher_;
  Metrics* const metrics_;
  const absl::Time start_;
  std::atomic<bool> cancelled_{false};
  DecodedRequest decoded_;  // Holds the rows' aligned copy, if one was made.
};

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

InferenceService::InferenceService(ModelSignature signature,
                                   std::string server_version, Batcher* batcher,
                                   const ServingState* state, Metrics* metrics)
    : signature_(std::move(signature)),
      server_version_(std::move(server_version)),
      batcher_(batcher),
      state_(state),
      metrics_(metrics) {}

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  // Answering at all means the process is live, in every phase.
  response->set_live(true);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(state_->serving());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  absl::Status status =
      CheckModel(signature_, request->name(), request->version());
  if (status.ok()) response->set_ready(state_->serving());
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name("rnn-server");
  response->set_version(server_version_);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::Status status =
      CheckModel(signature_, request->name(), request->version());
  if (status.ok()) FillModelMetadata(signature_, *response);
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  auto* reactor = new InferReactor(batcher_, metrics_);
  if (!state_->serving()) {
    reactor->FinishWith(absl::UnavailableError(absl::StrCat(
        "model '", signature_.name, "' is not ready (server ",
        state_->phase() == ServingState::Phase::kStarting ? "starting"
                                                          : "shutting down",
        ")")));
    return reactor;
  }
  DecodedRequest& decoded = reactor->decoded();
  if (absl::Status s = DecodeRequest(signature_, *request, decoded); !s.ok()) {
    reactor->FinishWith(s);
    return reactor;
  }
  BatchTask task;
  task.input = decoded.input;
  task.output = PrepareResponse(signature_, *request, decoded.rows, *response);
  task.deadline = std::min(absl::FromChrono(context->deadline()),
                           absl::Now() + decoded.queue_timeout);
  task.is_cancelled = [reactor] { return reactor->cancelled(); };
  task.done = [reactor](absl::Status s) { reactor->FinishWith(s); };
  if (absl::Status s = batcher_->Submit(std::move(task)); !s.ok()) {
    reactor->FinishWith(s);
  }
  return reactor;
}

}  // namespace rnn
