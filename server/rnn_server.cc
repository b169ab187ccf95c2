#include "server/rnn_server.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/pem_file.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_posix.h"
#include "model/rnn_model.h"

namespace rnn {
namespace {

// A drain's wait for calls in transit (RnnServer::Shutdown): done after this
// long without an arrival, or after half the grace at most. On loopback and
// within a cluster, a call in transit arrives within a few milliseconds.
constexpr absl::Duration kDrainQuiet = absl::Milliseconds(50);

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

// The model's options, as the server's options set them.
RnnModel::Options ModelOptions(const ServerOptions& options) {
  RnnModel::Options model;
  model.num_threads = options.model_threads;
  model.precision = options.precision;
  model.max_batch_size = options.batching.queue.max_batch_size;
  model.sequence_length = options.sequence_length;
  return model;
}

ModelSignature SignatureOf(const std::string& name, const RnnWeights& w) {
  ModelSignature signature;
  signature.name = name;
  signature.sequence_length = w.sequence_length;
  signature.input_size = w.input_size;
  signature.num_classes = w.num_classes;
  return signature;
}

// `count` model instances, each warmed up for every batch size it can be
// given, so that no request waits for primitive creation.
absl::StatusOr<std::vector<std::unique_ptr<BatchExecutor>>> CreateInstances(
    const RnnWeights& weights, const RnnModel::Options& options, int count) {
  std::vector<std::unique_ptr<BatchExecutor>> executors;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::unique_ptr<RnnModel>> model =
        RnnModel::Create(weights, options);
    if (!model.ok()) return model.status();
    if (absl::Status s = (*model)->WarmUp(options.max_batch_size); !s.ok()) {
      return s;
    }
    executors.push_back(std::make_unique<ModelExecutor>(*std::move(model)));
  }
  return executors;
}

// What gRPC applies to every connection: the largest message, no port
// sharing, and the connection age.
void ConfigureConnections(const ServerOptions& options,
                          grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.max_concurrent_streams);
  grpc::ResourceQuota quota("rnn-server-transport");
  quota.Resize(static_cast<size_t>(options.transport_memory_bytes));
  builder.SetResourceQuota(quota);
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
}

// Whether `path` is a readable file holding PEM `what` ("CERTIFICATE",
// "PRIVATE KEY"), checked here because gRPC reads the files only at the
// first handshake and then merely logs a failure: a wrong path would
// otherwise show up as clients failing to connect.
absl::Status CheckPemFile(const std::string& flag, const std::string& path,
                          const std::string& what) {
  absl::StatusOr<std::string> text = ReadPemFile(path, what);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", text.status().message()));
  }
  return absl::OkStatus();
}

// The gRPC port's credentials: plaintext, TLS, or mutual TLS.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcCredentials(
    const ServerOptions& options) {
  if (options.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  if (absl::Status s =
          CheckPemFile("--tls_cert_file", options.tls_cert_file, "CERTIFICATE");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckPemFile("--tls_key_file", options.tls_key_file, "PRIVATE KEY");
      !s.ok()) {
    return s;
  }
  const bool mutual = !options.tls_client_ca_file.empty();
  if (mutual) {
    if (absl::Status s = CheckPemFile(
            "--tls_client_ca_file", options.tls_client_ca_file, "CERTIFICATE");
        !s.ok()) {
      return s;
    }
  }
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          options.tls_key_file, options.tls_cert_file,
          options.tls_client_ca_file,
          static_cast<unsigned int>(
              absl::ToInt64Seconds(options.tls_reload_interval)));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (mutual) {
    tls.watch_root_certs();
    tls.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace

absl::Status ServerOptions::Validate() const {
  if (grpc_port < 0 || grpc_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--grpc_port must be in [0, 65535]; was ", grpc_port));
  }
  if (metrics_port < -1 || metrics_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics_port must be in [-1, 65535]; was ", metrics_port));
  }
  if (instances < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--instances must be >= 1; was ", instances));
  }
  if (max_inflight_per_stream < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_inflight_per_stream must be >= 1; was ",
                     max_inflight_per_stream));
  }
  if (max_concurrent_streams < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_concurrent_streams must be >= 1; was ", max_concurrent_streams));
  }
  if (transport_memory_bytes < (int64_t{16} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--transport_memory_mb must be >= 16; was ",
                     transport_memory_bytes >> 20));
  }
  if (max_receive_message_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_receive_message_bytes must be >= 1; was ",
                     max_receive_message_bytes));
  }
  // gRPC takes the age in milliseconds as an int; a day keeps it far from
  // overflowing and is longer than any useful rebalancing period.
  if (max_connection_age < absl::ZeroDuration() ||
      max_connection_age > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_connection_age_s must be in [0, 86400]; was ",
                     absl::ToInt64Seconds(max_connection_age)));
  }
  if (tls_cert_file.empty() != tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together: give both or "
        "neither");
  }
  if (!tls_client_ca_file.empty() && tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_file needs --tls_cert_file and --tls_key_file: "
        "client certificates are checked only over TLS");
  }
  if (tls_reload_interval < absl::Seconds(1) ||
      tls_reload_interval > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_reload_interval_s must be in [1, 86400]; was ",
                     absl::ToInt64Seconds(tls_reload_interval)));
  }
  if (absl::Status s = ModelOptions(*this).Validate(); !s.ok()) return s;
  return batching.queue.Validate();
}

absl::StatusOr<std::unique_ptr<RnnServer>> RnnServer::Start(
    const ServerOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  absl::StatusOr<RnnWeights> weights =
      RnnWeights::Load(options.model_path, options.sequence_length);
  if (!weights.ok()) return weights.status();
  absl::StatusOr<std::vector<std::unique_ptr<BatchExecutor>>> executors =
      CreateInstances(*weights, ModelOptions(options), options.instances);
  if (!executors.ok()) return executors.status();

  std::unique_ptr<RnnServer> server(new RnnServer());
  server->signature_ = SignatureOf(options.model_name, *weights);
  if (options.metrics_port >= 0) {
    if (absl::Status s = server->StartMetrics(options); !s.ok()) return s;
  }
  if (absl::Status s =
          server->StartBatcher(options.batching, *std::move(executors));
      !s.ok()) {
    return s;
  }
  InferenceService::Options service;
  service.signature = server->signature_;
  service.server_version = PROJECT_VERSION;
  service.batching = options.batching.queue;
  service.instances = options.instances;
  service.max_inflight_per_stream = options.max_inflight_per_stream;
  server->service_ = std::make_unique<InferenceService>(
      std::move(service), server->batcher_.get(), &server->state_,
      server->metrics_.get());
  if (absl::Status s = server->StartGrpc(options); !s.ok()) return s;
  server->state_.Set(ServingState::Phase::kServing);
  return server;
}

absl::Status RnnServer::StartMetrics(const ServerOptions& options) {
  Metrics::Options metrics_options;
  metrics_options.model = signature_.name;
  metrics_options.version = signature_.version;
  metrics_options.max_batch_size =
      static_cast<size_t>(options.batching.queue.max_batch_size);
  metrics_options.server_version = PROJECT_VERSION;
  metrics_options.grpc_version = grpc::Version();
  metrics_options.onednn_version = RnnModel::OneDnnVersion();
  metrics_ = std::make_unique<Metrics>(metrics_options);
  const ServingState* state = &state_;
  metrics_->SetModelReadySource([state] { return state->serving(); });
  absl::StatusOr<std::unique_ptr<MetricsServer>> exposer = MetricsServer::Start(
      absl::StrCat(
          options.metrics_host.empty() ? options.host : options.metrics_host,
          ":", options.metrics_port),
      metrics_->registry());
  if (!exposer.ok()) return exposer.status();
  metrics_server_ = *std::move(exposer);
  return absl::OkStatus();
}

absl::Status RnnServer::StartBatcher(
    const Batcher::Options& options,
    std::vector<std::unique_ptr<BatchExecutor>> executors) {
  Batcher::Options batching = options;
  batching.input_floats_per_row = signature_.input_floats_per_row();
  batching.output_floats_per_row = signature_.output_floats_per_row();
  batching.observer = metrics_.get();
  absl::StatusOr<std::unique_ptr<Batcher>> batcher =
      Batcher::Create(batching, std::move(executors));
  if (!batcher.ok()) return batcher.status();
  batcher_ = *std::move(batcher);
  if (metrics_ != nullptr) {
    const Batcher* source = batcher_.get();
    metrics_->SetQueueDepthSource(
        [source] { return static_cast<int64_t>(source->queued_rows()); });
  }
  return absl::OkStatus();
}

absl::Status RnnServer::StartGrpc(const ServerOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      GrpcCredentials(options);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  const std::string address =
      absl::StrCat(options.host, ":", options.grpc_port);
  const bool tls = !options.tls_cert_file.empty();
  if (tls) {
    builder.AddListeningPort(address, *credentials, &grpc_port_);
  } else {
    // Plaintext: our own accept loop, which survives running out of file
    // descriptors where gRPC's does not (listener.h).
    absl::StatusOr<std::unique_ptr<Listener>> listener =
        Listener::Bind(options.host, options.grpc_port);
    if (!listener.ok()) return listener.status();
    listener_ = *std::move(listener);
    grpc_port_ = listener_->port();
  }
  ConfigureConnections(options, builder);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, " (port in use, or a bad --host?)"));
  }
  if (listener_ != nullptr) {
    grpc::Server* server = server_.get();
    listener_->Start(
        [server](int fd) { grpc::AddInsecureChannelFromFd(server, fd); });
  }
  state_.AttachHealthService(server_->GetHealthCheckService());
  return absl::OkStatus();
}

RnnServer::~RnnServer() { Shutdown(); }

void RnnServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  state_.Set(ServingState::Phase::kDraining);
  // Calls in flight need the batcher to finish, so it stops last. Either
  // may be missing when Start failed part way.
  if (server_ != nullptr) {
    const absl::Time deadline = absl::Now() + grace;
    // Streams would otherwise stay open until the grace ran out and then be
    // cancelled with their answers unsent.
    service_->DrainStreams();
    // Calls clients sent just before the drain may still be in transit, and
    // gRPC's Shutdown cancels the calls that reach it after it started
    // (CANCELLED, though their clients cancelled nothing). Until arrivals
    // pause, the service answers them itself: UNAVAILABLE, which clients
    // retry elsewhere. Under steady load arrivals do not pause; then this
    // lasts half the grace.
    service_->AwaitQuiet(kDrainQuiet,
                         absl::Now() + (deadline - absl::Now()) / 2);
    if (listener_ != nullptr) {
      // Plaintext: end the connections ourselves once every admitted call
      // is answered. A call still arriving then meets a closed connection,
      // which its client reports as UNAVAILABLE and retries elsewhere;
      // gRPC's Shutdown would have cancelled it instead.
      listener_->Stop();
      service_->AwaitAdmittedAnswered(deadline);
      listener_->ShutdownConnections();
    }
    server_->Shutdown(absl::ToChronoTime(deadline));
  }
  if (batcher_ != nullptr) batcher_->Stop();
  shut_down_ = true;
}

void RnnServer::Wait() {
  absl::MutexLock lock(&shutdown_mu_);
  shutdown_mu_.Await(absl::Condition(&shut_down_));
}

}  // namespace rnn
