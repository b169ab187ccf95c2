#include "client/inference_client.h"

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/grpc_status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace rnn {
namespace {

// Whether `target` is "ip:port" or "[ipv6]:port" with a literal address.
bool IsIpLiteral(const std::string& target) {
  if (absl::StartsWith(target, "[")) return true;
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos) return false;
  for (char c : target.substr(0, colon)) {
    if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

absl::StatusOr<std::string> ChannelTarget(
    const std::vector<std::string>& targets) {
  if (targets.empty()) {
    return absl::InvalidArgumentError("no target given");
  }
  if (targets.size() == 1) {
    return absl::StrContains(targets[0], ":///")
               ? targets[0]
               : absl::StrCat("dns:///", targets[0]);
  }
  // Several fixed addresses: gRPC's ipv4:/ipv6: resolvers take a list.
  const bool v6 = absl::StartsWith(targets[0], "[");
  for (const std::string& t : targets) {
    if (!IsIpLiteral(t) || absl::StartsWith(t, "[") != v6) {
      return absl::InvalidArgumentError(absl::StrCat(
          "with several targets each must be an IP literal of one family "
          "(127.0.0.1:8001 or [::1]:8001); got '",
          t, "'"));
    }
  }
  return absl::StrCat(v6 ? "ipv6:" : "ipv4:", absl::StrJoin(targets, ","));
}

// The host of "host:port" or "[v6]:port".
std::string Host(const std::string& target) {
  const size_t colon = target.rfind(':');
  if (absl::StartsWith(target, "[")) {
    const size_t close = target.find(']');
    return target.substr(1, close == std::string::npos ? close : close - 1);
  }
  return colon == std::string::npos ? target : target.substr(0, colon);
}

// gRPC's service config: round_robin over every address, and with
// `max_attempts` > 1 health checking and a retry policy for UNAVAILABLE on
// the inference and health services, but not on ModelStreamInfer (the more
// specific name wins), per ClientOptions::max_attempts.
std::string ServiceConfig(int max_attempts) {
  std::string config = R"({"loadBalancingConfig": [{"round_robin": {}}])";
  if (max_attempts > 1) {
    absl::StrAppend(&config, R"(,
    "healthCheckConfig": {"serviceName": "inference.GRPCInferenceService"},
    "methodConfig": [{
      "name": [{"service": "inference.GRPCInferenceService"},
               {"service": "grpc.health.v1.Health"}],
      "retryPolicy": {
        "maxAttempts": )",
                    max_attempts, R"(,
        "initialBackoff": "0.05s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]
      }
    }, {
      "name": [{"service": "inference.GRPCInferenceService",
                "method": "ModelStreamInfer"}]
    }])");
  }
  absl::StrAppend(&config, "}");
  return config;
}

// Requests up to the server's default size limit can be retried.
constexpr int kRetryBufferBytes = 16 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<InferenceClient>> InferenceClient::Create(
    const ClientOptions& options) {
  absl::StatusOr<std::string> target = ChannelTarget(options.targets);
  if (!target.ok()) return target.status();
  if (options.max_attempts < 1 || options.max_attempts > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts must be in [1, 5] (gRPC's limit); was ",
                     options.max_attempts));
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(ServiceConfig(options.max_attempts));
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  if (options.max_attempts > 1) {
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
    args.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, kRetryBufferBytes);
  }
  if (options.tls.on()) {
    // With several targets the channel's authority is the whole address
    // list, which no certificate names.
    const std::string name =
        !options.tls.server_name.empty() ? options.tls.server_name
        : options.targets.size() > 1     ? Host(options.targets[0])
                                         : "";
    if (!name.empty()) args.SetSslTargetNameOverride(name);
  }
  return Create(grpc::CreateCustomChannel(*target, *credentials, args),
                options);
}

std::unique_ptr<InferenceClient> InferenceClient::Create(
    std::shared_ptr<grpc::Channel> channel, const ClientOptions& options) {
  return std::unique_ptr<InferenceClient>(
      new InferenceClient(options, std::move(channel)));
}

InferenceClient::InferenceClient(const ClientOptions& options,
                                 std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      channel_(std::move(channel)),
      stub_(inference::GRPCInferenceService::NewStub(channel_)),
      health_stub_(grpc::health::v1::Health::NewStub(channel_)),
      stream_stub_(channel_) {}

void InferenceClient::SetDeadline(
    grpc::ClientContext& context,
    std::optional<absl::Duration> deadline) const {
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + deadline.value_or(options_.deadline)));
}

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> InferenceClient::Call(
    Stub& stub,
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                 Response*),
    const Request& request) const {
  grpc::ClientContext context;
  SetDeadline(context, std::nullopt);
  Response response;
  absl::Status s = FromGrpcStatus((stub.*method)(&context, request, &response));
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<bool> InferenceClient::ServerLive() {
  absl::StatusOr<inference::ServerLiveResponse> response =
      Call(*stub_, &inference::GRPCInferenceService::Stub::ServerLive,
           inference::ServerLiveRequest());
  if (!response.ok()) return response.status();
  return response->live();
}

absl::StatusOr<bool> InferenceClient::ServerReady() {
  absl::StatusOr<inference::ServerReadyResponse> response =
      Call(*stub_, &inference::GRPCInferenceService::Stub::ServerReady,
           inference::ServerReadyRequest());
  if (!response.ok()) return response.status();
  return response->ready();
}

absl::StatusOr<bool> InferenceClient::ModelReady(const std::string& model,
                                                 const std::string& version) {
  inference::ModelReadyRequest request;
  request.set_name(model);
  request.set_version(version);
  absl::StatusOr<inference::ModelReadyResponse> response =
      Call(*stub_, &inference::GRPCInferenceService::Stub::ModelReady, request);
  if (!response.ok()) return response.status();
  return response->ready();
}

absl::StatusOr<inference::ServerMetadataResponse>
InferenceClient::ServerMetadata() {
  return Call(*stub_, &inference::GRPCInferenceService::Stub::ServerMetadata,
              inference::ServerMetadataRequest());
}

absl::StatusOr<inference::ModelMetadataResponse> InferenceClient::ModelMetadata(
    const std::string& model, const std::string& version) {
  inference::ModelMetadataRequest request;
  request.set_name(model);
  request.set_version(version);
  return Call(*stub_, &inference::GRPCInferenceService::Stub::ModelMetadata,
              request);
}

absl::StatusOr<inference::ModelConfig> InferenceClient::ModelConfig(
    const std::string& model, const std::string& version) {
  inference::ModelConfigRequest request;
  request.set_name(model);
  request.set_version(version);
  absl::StatusOr<inference::ModelConfigResponse> response = Call(
      *stub_, &inference::GRPCInferenceService::Stub::ModelConfig, request);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_config());
}

absl::StatusOr<inference::ModelStatisticsResponse>
InferenceClient::ModelStatistics(const std::string& model,
                                 const std::string& version) {
  inference::ModelStatisticsRequest request;
  request.set_name(model);
  request.set_version(version);
  return Call(*stub_, &inference::GRPCInferenceService::Stub::ModelStatistics,
              request);
}

absl::StatusOr<inference::RepositoryIndexResponse>
InferenceClient::RepositoryIndex(bool ready_only) {
  inference::RepositoryIndexRequest request;
  request.set_ready(ready_only);
  return Call(*stub_, &inference::GRPCInferenceService::Stub::RepositoryIndex,
              request);
}

absl::StatusOr<std::string> InferenceClient::Health(
    const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  absl::StatusOr<grpc::health::v1::HealthCheckResponse> response =
      Call(*health_stub_, &grpc::health::v1::Health::Stub::Check, request);
  if (!response.ok()) return response.status();
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
      response->status());
}

inference::ModelInferRequest InferenceClient::BuildRequest(
    const InferInput& input) {
  inference::ModelInferRequest request;
  request.set_model_name(input.model);
  request.set_model_version(input.version);
  request.set_id(input.id);
  auto* tensor = request.add_inputs();
  tensor->set_name(input.input_name);
  tensor->set_datatype("FP32");
  for (int64_t d : input.shape) tensor->add_shape(d);
  if (input.typed_contents) {
    tensor->mutable_contents()->mutable_fp32_contents()->Add(input.data.begin(),
                                                             input.data.end());
  } else {
    request.add_raw_input_contents()->assign(
        reinterpret_cast<const char*>(input.data.data()),
        input.data.size() * sizeof(float));
  }
  if (input.queue_timeout.has_value()) {
    (*request.mutable_parameters())["timeout"].set_int64_param(
        absl::ToInt64Microseconds(*input.queue_timeout));
  }
  return request;
}

absl::StatusOr<InferOutput> InferenceClient::ParseResponse(
    const inference::ModelInferResponse& response) {
  if (response.outputs_size() == 0) {
    return absl::DataLossError("response has no outputs");
  }
  const auto& tensor = response.outputs(0);
  InferOutput out;
  out.model = response.model_name();
  out.version = response.model_version();
  out.id = response.id();
  out.output_name = tensor.name();
  out.shape.assign(tensor.shape().begin(), tensor.shape().end());
  int64_t count = 1;
  for (int64_t d : out.shape) count *= d;
  if (tensor.datatype() != "FP32") {
    return absl::DataLossError(absl::StrCat("output '", tensor.name(), "' is ",
                                            tensor.datatype(), ", not FP32"));
  }
  if (response.raw_output_contents_size() > 0) {
    const std::string& raw = response.raw_output_contents(0);
    if (raw.size() != static_cast<size_t>(count) * sizeof(float)) {
      return absl::DataLossError(
          absl::StrCat("raw_output_contents[0] has ", raw.size(),
                       " bytes; shape needs ", count * sizeof(float)));
    }
    out.values.resize(count);
    std::memcpy(out.values.data(), raw.data(), raw.size());
  } else {
    const auto& values = tensor.contents().fp32_contents();
    if (values.size() != count) {
      return absl::DataLossError(absl::StrCat(
          "fp32_contents has ", values.size(), " values; shape needs ", count));
    }
    out.values.assign(values.begin(), values.end());
  }
  return out;
}

absl::StatusOr<inference::ModelInferResponse> InferenceClient::InferRaw(
    const inference::ModelInferRequest& request,
    std::optional<absl::Duration> deadline) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  inference::ModelInferResponse response;
  absl::Status s =
      FromGrpcStatus(stub_->ModelInfer(&context, request, &response));
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<InferOutput> InferenceClient::Infer(const InferInput& input) {
  absl::StatusOr<inference::ModelInferResponse> response =
      InferRaw(BuildRequest(input), input.deadline);
  if (!response.ok()) return response.status();
  return ParseResponse(*response);
}

std::unique_ptr<ModelStream> InferenceClient::OpenStream(
    ModelStream::OnAnswer on_answer, ModelStream::OnDone on_done,
    const StreamOptions& options) {
  return ModelStream::Open(stream_stub_, std::move(on_answer),
                           std::move(on_done), options);
}

void InferenceClient::InferAsync(
    const InferInput& input,
    absl::AnyInvocable<void(absl::StatusOr<InferOutput>)> done) {
  struct Call {
    grpc::ClientContext context;
    inference::ModelInferRequest request;
    inference::ModelInferResponse response;
    absl::AnyInvocable<void(absl::StatusOr<InferOutput>)> done;
  };
  auto* call = new Call;
  call->request = BuildRequest(input);
  call->done = std::move(done);
  SetDeadline(call->context, input.deadline);
  // The call, with its ClientContext (which holds a reference to the
  // channel), goes before `done` runs: once told, the caller may destroy
  // this client, and the channel must not be released on gRPC's thread
  // (model_stream.cc says why).
  stub_->async()->ModelInfer(&call->context, &call->request, &call->response,
                             [call](grpc::Status status) {
                               const absl::Status s = FromGrpcStatus(status);
                               absl::StatusOr<InferOutput> result =
                                   s.ok() ? ParseResponse(call->response)
                                          : absl::StatusOr<InferOutput>(s);
                               auto done = std::move(call->done);
                               delete call;
                               done(std::move(result));
                             });
}

}  // namespace rnn
