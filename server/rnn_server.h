// RnnServer: the whole service in one object — model instances, batcher,
// gRPC server with the inference, health and reflection services — so that
// main() and the end-to-end tests start exactly the same thing.
//
// Start() loads the model, creates `instances` model instances and warms
// each one up for every batch size up to max_batch_size (so no request ever
// waits for primitive creation), starts listening, and only then reports
// SERVING. Shutdown() reports NOT_SERVING, lets gRPC finish the calls in
// flight, then stops the batcher once every accepted request is answered.
//
// Example:
//   rnn::ServerOptions options;
//   options.model_path = "model/rnn.safetensors";
//   options.grpc_port = 0;  // Any free port.
//   absl::StatusOr<std::unique_ptr<rnn::RnnServer>> server =
//       rnn::RnnServer::Start(options);
//   const std::string target =
//       "localhost:" + std::to_string((*server)->grpc_port());
//   (*server)->Shutdown();
#ifndef RNN_SERVER_RNN_SERVER_H_
#define RNN_SERVER_RNN_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "model/rnn_model.h"
#include "server/batching/batcher.h"
#include "server/inference_codec.h"
#include "server/inference_service.h"
#include "server/listener.h"
#include "server/metrics/metrics.h"
#include "server/metrics/metrics_server.h"
#include "server/serving_state.h"

namespace rnn {

struct ServerOptions {
  // Address to listen on; "0.0.0.0" for every IPv4 interface.
  std::string host = "0.0.0.0";
  // gRPC port; 0 picks a free one (see RnnServer::grpc_port()).
  int grpc_port = 8001;
  // Port of the Prometheus endpoint http://host:port/metrics, on `host`;
  // 0 picks a free one, -1 turns metrics off.
  int metrics_port = 8002;
  // Safetensors weights file.
  std::string model_path;
  std::string model_name = "rnn";
  // When > 0, overrides the sequence length recorded in the weights file.
  int sequence_length = 0;
  // OpenMP threads per model instance (see RnnModel::Options::num_threads).
  int model_threads = 1;
  // The model's arithmetic (RnnModel::Options::precision): fp32, or the
  // opt-in bf16 on CPUs with AVX512-BF16.
  RnnModel::Options::Precision precision = RnnModel::Options::Precision::kFp32;
  // Model instances computing batches in parallel.
  int instances = 1;
  // Batching; Start fills in the per-row sizes (from the model) and the
  // observer (the metrics). The server computes on the gRPC thread when an
  // instance is idle (--inline_when_idle, Batcher::Options::
  // run_on_caller_when_idle): at low load the hand-off to a worker cost
  // more than the model.
  Batcher::Options batching = [] {
    Batcher::Options o;
    o.run_on_caller_when_idle = true;
    return o;
  }();
  // Largest request accepted, in bytes; gRPC refuses larger ones with
  // RESOURCE_EXHAUSTED. Default 16 MiB: about 2000 sequences of 20x100
  // floats, four times gRPC's own 4 MiB default.
  int max_receive_message_bytes = 16 << 20;
  // When positive, a client connection older than this is sent GOAWAY (its
  // calls in flight get 30 s more to finish), so long-lived
  // clients reconnect and spread over replicas added since; behind a
  // Kubernetes Service this is what rebalances HTTP/2 clients. Default
  // zero: connections live as long as the client keeps them.
  absl::Duration max_connection_age = absl::ZeroDuration();
  // Requests a ModelStreamInfer stream may hold read but not yet answered;
  // at the bound the server stops reading that stream (infer_stream.h).
  // Default 128: two full default batches, so that one stream can keep an
  // instance busy, while a client that never reads its answers pins at most
  // 128 requests.
  int max_inflight_per_stream = 128;
  // HTTP/2 streams (calls) a client connection may have open at once
  // (SETTINGS_MAX_CONCURRENT_STREAMS); gRPC clients queue calls beyond it.
  // Default 100, the least RFC 9113 recommends: enough for any client's
  // pipelining, and a bound on what one connection can make the server hold.
  int max_concurrent_streams = 100;
  // Memory gRPC's transport may take for connections, streams and their
  // buffers (a grpc::ResourceQuota); under pressure it shrinks windows and
  // buffers and refuses new streams. Default 128 MiB: with the model (~45
  // MiB resident) a server stays under 256 MiB, a common pod limit.
  int64_t transport_memory_bytes = int64_t{128} << 20;
  // TLS for the gRPC port: PEM files of the server's certificate chain and
  // private key, both or neither. Empty: plaintext.
  std::string tls_cert_file, tls_key_file;
  // When set (needs the two above): PEM bundle of the CAs whose client
  // certificates are accepted; clients without one are refused (mutual TLS).
  std::string tls_client_ca_file;
  // How often the three files are read again, so that renewed certificates
  // take effect without a restart (new connections get them; open ones keep
  // theirs).
  absl::Duration tls_reload_interval = absl::Seconds(60);
  // Address of the metrics endpoint; empty: `host`. Lets /metrics listen on
  // an internal interface while gRPC listens on all.
  std::string metrics_host;

  // OK, or INVALID_ARGUMENT naming the first bad option by its rnn-server
  // flag, in the flag's unit, with the value given: "--instances must be >=
  // 1; was 0". Each rule is written once, by the option's owner: the server
  // checks its own fields here, the model's options are checked by
  // RnnModel::Options::Validate and the batching rules by
  // BatchQueue::Options::Validate. Start calls it; rnn-server calls it first
  // to tell a bad flag (exit 2) from a failure to start.
  //
  // The owners name flags rather than fields because flags are how users
  // meet these options. Naming fields would make rnn-server map each
  // message back to its flag, through a second list of every option (with
  // units: max_queue_delay is a Duration, --max_queue_delay_us counts
  // microseconds) that would have to be kept in step with the owners' by
  // hand.
  absl::Status Validate() const;
};

class RnnServer {
 public:
  // Refuses invalid options with INVALID_ARGUMENT (ServerOptions::Validate)
  // before loading anything.
  static absl::StatusOr<std::unique_ptr<RnnServer>> Start(
      const ServerOptions& options);

  // Shuts down (with the default grace) if Shutdown was not called.
  ~RnnServer();

  // The ports actually listened on; metrics_port() is -1 when metrics are
  // off.
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const {
    return metrics_server_ ? metrics_server_->port() : -1;
  }
  const ModelSignature& signature() const { return signature_; }
  const Batcher& batcher() const { return *batcher_; }
  const ServingState& state() const { return state_; }

  // Drains and stops: new calls are refused, ModelStreamInfer streams answer
  // what they read and end, calls in flight get up to `grace` to finish
  // before gRPC cancels them, then every request the batcher accepted is
  // answered. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

  // Blocks until Shutdown has completed.
  void Wait();

 private:
  RnnServer() = default;

  // Start's steps after the model instances exist, in order.
  absl::Status StartMetrics(const ServerOptions& options);
  absl::Status StartBatcher(
      const Batcher::Options& options,
      std::vector<std::unique_ptr<BatchExecutor>> executors);
  absl::Status StartGrpc(const ServerOptions& options);

  ModelSignature signature_;
  ServingState state_;
  // Members are destroyed bottom up. Metrics outlives the batcher and the
  // service, which report to it; the metrics endpoint goes first, since a
  // scrape reads the batcher's queue depth.
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<grpc::Server> server_;
  // The plaintext gRPC port's accept loop (listener.h); null with TLS,
  // where gRPC listens itself. Stops before server_ shuts down.
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<MetricsServer> metrics_server_;
  int grpc_port_ = 0;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace rnn

#endif  // RNN_SERVER_RNN_SERVER_H_
