#include "server/rnn_server.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "model/rnn_model.h"

namespace rnn {
namespace {

// A model instance as the batcher sees it.
class ModelExecutor final : public BatchExecutor {
 public:
  explicit ModelExecutor(std::unique_ptr<RnnModel> model)
      : model_(std::move(model)) {}
  absl::Status Execute(absl::Span<const float> input,
                       absl::Span<float> output) override {
    return model_->Run(input, output);
  }

 private:
  std::unique_ptr<RnnModel> model_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RnnServer>> RnnServer::Start(
    const ServerOptions& options) {
  if (options.instances < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("instances must be >= 1, got ", options.instances));
  }
  absl::StatusOr<RnnWeights> weights =
      RnnWeights::Load(options.model_path, options.sequence_length);
  if (!weights.ok()) return weights.status();

  std::unique_ptr<RnnServer> server(new RnnServer());
  ModelSignature& sig = server->signature_;
  sig.name = options.model_name;
  sig.sequence_length = weights->sequence_length;
  sig.input_size = weights->input_size;
  sig.num_classes = weights->num_classes;

  RnnModel::Options model_options;
  model_options.num_threads = options.model_threads;
  model_options.max_batch_size =
      static_cast<int>(std::max<size_t>(options.batching.max_batch_size, 1));
  std::vector<std::unique_ptr<BatchExecutor>> executors;
  for (int i = 0; i < options.instances; ++i) {
    absl::StatusOr<std::unique_ptr<RnnModel>> model =
        RnnModel::Create(*weights, model_options);
    if (!model.ok()) return model.status();
    if (absl::Status s = (*model)->WarmUp(model_options.max_batch_size);
        !s.ok()) {
      return s;
    }
    executors.push_back(std::make_unique<ModelExecutor>(*std::move(model)));
  }

  if (options.metrics_port >= 0) {
    Metrics::Options metrics_options;
    metrics_options.model = sig.name;
    metrics_options.version = sig.version;
    metrics_options.max_batch_size = options.batching.max_batch_size;
    metrics_options.server_version = PROJECT_VERSION;
    metrics_options.grpc_version = grpc::Version();
    metrics_options.onednn_version = RnnModel::OneDnnVersion();
    server->metrics_ = std::make_unique<Metrics>(metrics_options);
    absl::StatusOr<std::unique_ptr<MetricsServer>> exposer =
        MetricsServer::Start(
            absl::StrCat(options.host, ":", options.metrics_port),
            server->metrics_->registry());
    if (!exposer.ok()) return exposer.status();
    server->metrics_server_ = *std::move(exposer);
  }

  Batcher::Options batching = options.batching;
  batching.input_floats_per_row = sig.input_floats_per_row();
  batching.output_floats_per_row = sig.output_floats_per_row();
  batching.observer = server->metrics_.get();
  absl::StatusOr<std::unique_ptr<Batcher>> batcher =
      Batcher::Create(batching, std::move(executors));
  if (!batcher.ok()) return batcher.status();
  server->batcher_ = *std::move(batcher);
  if (server->metrics_ != nullptr) {
    Batcher* batcher = server->batcher_.get();
    server->metrics_->SetQueueDepthSource(
        [batcher] { return static_cast<int64_t>(batcher->queued_rows()); });
    const ServingState* state = &server->state_;
    server->metrics_->SetModelReadySource([state] { return state->serving(); });
  }
  server->service_ = std::make_unique<InferenceService>(
      sig, PROJECT_VERSION, server->batcher_.get(), &server->state_,
      server->metrics_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address =
      absl::StrCat(options.host, ":", options.grpc_port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &server->grpc_port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // gRPC sets SO_REUSEPORT by default, which lets a second server bind the
  // same port and silently take half the traffic; a busy port is an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (options.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(
                                   options.max_connection_age)));
    // Long enough for any call in flight to finish: a full queue drains in
    // tens of milliseconds.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 30'000);
  }
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, " (port in use, or a bad --host?)"));
  }
  server->state_.AttachHealthService(server->server_->GetHealthCheckService());
  server->state_.Set(ServingState::Phase::kServing);
  return server;
}

RnnServer::~RnnServer() { Shutdown(); }

void RnnServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  state_.Set(ServingState::Phase::kDraining);
  // Calls in flight need the batcher to finish, so it stops last. Either
  // may be missing when Start failed part way.
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  if (batcher_ != nullptr) batcher_->Stop();
  shut_down_ = true;
}

void RnnServer::Wait() {
  absl::MutexLock lock(&shutdown_mu_);
  shutdown_mu_.Await(absl::Condition(&shut_down_));
}

}  // namespace rnn
