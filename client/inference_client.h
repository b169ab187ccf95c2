// InferenceClient: a small C++ client for rnn-server, or any server speaking
// the Open Inference Protocol (KServe v2) over gRPC. Shared by rnn-client,
// the load harness and the tests.
//
// Example:
//   ClientOptions options;
//   options.targets = {"localhost:8001"};
//   absl::StatusOr<std::unique_ptr<InferenceClient>> client =
//       InferenceClient::Create(options);
//   if (!client.ok()) return client.status();
//   const int64_t n = 2;  // sequences of 20 steps x 100 features
//   std::vector<float> rows(n * 20 * 100, 0.5f);
//   InferInput input;  // model "rnn", input "sequence"
//   input.data = rows;
//   input.shape = {n, 20, 100};
//   absl::StatusOr<InferOutput> out = (*client)->Infer(input);
//   if (!out.ok()) return out.status();
//   // out->shape {2, 10}; out->values: each sequence's 10 probabilities.
//
// Several targets are balanced round-robin, per call. Every call has a
// deadline (ClientOptions::deadline unless the call gives its own); streams
// (OpenStream, model_stream.h) have none unless StreamOptions sets one.
// Errors come back as absl::Status with the server's code and message.
//
// Replicas: with several targets and ClientOptions::max_attempts > 1, a call
// answered UNAVAILABLE — its replica was killed or is draining, or it was
// refused a connection — is retried by gRPC on the next replica, so losing a
// replica loses no call (tests/replica_failure_test.cc). TLS and mutual TLS:
// ClientOptions::tls (channel_credentials.h).
//
// Thread-safety: all methods may be called concurrently.
#ifndef RNN_CLIENT_INFERENCE_CLIENT_H_
#define RNN_CLIENT_INFERENCE_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/channel_credentials.h"
#include "client/model_stream.h"
#include "grpcpp/channel.h"
#include "proto/grpc_predict_v2.grpc.pb.h"
#include "proto/health.grpc.pb.h"
#include "proto/model_config.pb.h"

namespace rnn {

struct ClientOptions {
  // "host:port" each. One target may be a DNS name with several addresses;
  // several targets must be IP literals (127.0.0.1:8001, [::1]:8001). Calls
  // are spread round-robin over every address.
  std::vector<std::string> targets = {"localhost:8001"};
  // Deadline of each call unless the call sets its own.
  absl::Duration deadline = absl::Seconds(10);
  // Largest response accepted, in bytes.
  int max_receive_message_bytes = 64 << 20;
  // Plaintext, TLS or mutual TLS (channel_credentials.h). Default plaintext,
  // as rnn-server serves unless given a certificate.
  TlsOptions tls;
  // Attempts per call, the first included, when the answer is UNAVAILABLE
  // (a replica killed, draining, refusing connections, or its queue full):
  // gRPC's retry policy on every method but ModelStreamInfer (all of them
  // read-only or, as inference, idempotent, so a retry does no harm), within
  // the call's one deadline, after a jittered backoff (up to 50 ms, doubling
  // to at most 1 s); each attempt is balanced round-robin anew, so it goes to
  // another replica. Requests up to 16 MiB (the server's default limit) are
  // kept for retrying until their answer starts. Streams are not retried:
  // gRPC would keep every request written until the first answer, and a
  // stream already answering cannot be retried anyway. At most 5 (gRPC's
  // limit).
  // Above 1 this also turns on gRPC's client-side health checking: the
  // channel watches each replica's grpc.health.v1 status for
  // inference.GRPCInferenceService and sends calls only to replicas SERVING,
  // so a draining replica gets no new calls. Without it round_robin keeps
  // sending a draining replica its share, which it answers UNAVAILABLE until
  // arrivals pause, and a call can draw it on every attempt: 1 to 4 calls in
  // 2400 were lost so in tests/replica_failure_test.cc. (So with retries on,
  // a client of one server that is starting or draining gets UNAVAILABLE
  // from every call, Health() included, rather than NOT_SERVING.)
  // Default 1, no retries: UNAVAILABLE also means a replica's queue is full,
  // and retrying an overloaded fleet multiplies its load; and callers that
  // measure or test the server (rnn-loadgen, the tests) must see its own
  // answers. With several replicas, 3 rides out losing one.
  int max_attempts = 1;
};

// One inference call's input: N sequences of one FP32 input tensor.
struct InferInput {
  std::string model = "rnn";
  std::string version;  // Empty: the server chooses.
  std::string input_name = "sequence";
  absl::Span<const float> data;  // Row-major, shape[0] * shape[1] * ...
  std::vector<int64_t> shape;    // [N, T, C]
  std::string id;                // Echoed by the server.
  // Send contents.fp32_contents instead of raw_input_contents.
  bool typed_contents = false;
  // Triton's "timeout" parameter: the longest the request may be queued.
  std::optional<absl::Duration> queue_timeout;
  // This call's deadline; ClientOptions::deadline when unset.
  std::optional<absl::Duration> deadline;
};

// The first output tensor of a response.
struct InferOutput {
  std::string model, version, id;
  std::string output_name;
  std::vector<int64_t> shape;  // [N, O]
  std::vector<float> values;   // Row-major.
};

class InferenceClient {
 public:
  // InvalidArgument for no or mixed targets, max_attempts out of [1, 5],
  // or unusable TLS options (channel_credentials.h); connecting is left to
  // the first call.
  static absl::StatusOr<std::unique_ptr<InferenceClient>> Create(
      const ClientOptions& options);
  // A client over a channel the caller made (for channel arguments of its
  // own); options.targets, tls and max_attempts are not used.
  static std::unique_ptr<InferenceClient> Create(
      std::shared_ptr<grpc::Channel> channel, const ClientOptions& options);

  absl::StatusOr<bool> ServerLive();
  absl::StatusOr<bool> ServerReady();
  absl::StatusOr<bool> ModelReady(const std::string& model,
                                  const std::string& version = "");
  absl::StatusOr<inference::ServerMetadataResponse> ServerMetadata();
  absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata(
      const std::string& model, const std::string& version = "");
  // Triton's model configuration: batching, inputs and outputs without the
  // batch dimension, instance groups.
  absl::StatusOr<inference::ModelConfig> ModelConfig(
      const std::string& model, const std::string& version = "");
  // Triton's statistics: counts and cumulative durations, per model and
  // version; an empty `model` asks for every model, an empty `version` for
  // every version.
  absl::StatusOr<inference::ModelStatisticsResponse> ModelStatistics(
      const std::string& model = "", const std::string& version = "");
  // The models the server has, with version and state; `ready_only`: only
  // those ready to infer.
  absl::StatusOr<inference::RepositoryIndexResponse> RepositoryIndex(
      bool ready_only = false);
  // grpc.health.v1 Check of `service` ("" for the whole server): "SERVING",
  // "NOT_SERVING", ...
  absl::StatusOr<std::string> Health(const std::string& service = "");

  // Synchronous inference.
  absl::StatusOr<InferOutput> Infer(const InferInput& input);
  // Asynchronous inference: returns at once; `done` runs once, on a gRPC
  // thread, with the result. `input.data` may be released when this returns;
  // the client may be destroyed once every `done` has run.
  void InferAsync(const InferInput& input,
                  absl::AnyInvocable<void(absl::StatusOr<InferOutput>)> done);

  // Opens a ModelStreamInfer stream (model_stream.h): `on_answer` gets each
  // request's answer, `on_done` (when set) the stream's final status. The
  // client must outlive the stream.
  std::unique_ptr<ModelStream> OpenStream(ModelStream::OnAnswer on_answer,
                                          ModelStream::OnDone on_done = nullptr,
                                          const StreamOptions& options = {});

  // The raw protocol call, for callers that build requests themselves.
  absl::StatusOr<inference::ModelInferResponse> InferRaw(
      const inference::ModelInferRequest& request,
      std::optional<absl::Duration> deadline = std::nullopt);

  // Builds the request Infer sends.
  static inference::ModelInferRequest BuildRequest(const InferInput& input);
  // Reads the first output of `response`, raw or typed.
  static absl::StatusOr<InferOutput> ParseResponse(
      const inference::ModelInferResponse& response);

 private:
  InferenceClient(const ClientOptions& options,
                  std::shared_ptr<grpc::Channel> channel);
  void SetDeadline(grpc::ClientContext& context,
                   std::optional<absl::Duration> deadline) const;
  // One unary call of `method` on `stub` with the default deadline; the
  // response, or the call's status. Defined in the .cc, its only user.
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Call(
      Stub& stub,
      grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                   Response*),
      const Request& request) const;

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
  StreamStub stream_stub_;
};

}  // namespace rnn

#endif  // RNN_CLIENT_INFERENCE_CLIENT_H_
