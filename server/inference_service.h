// InferenceService: the Open Inference Protocol (KServe v2) gRPC service and
// Triton's extensions of it, on gRPC's callback API.
//
// Implemented: the six KServe v2 RPCs, ModelStreamInfer (infer_stream.h),
// ModelConfig, ModelStatistics (Triton's semantics, from the same recording
// as /metrics: Metrics::GetStatistics) and RepositoryIndex. Every other RPC
// of Triton's service answers UNIMPLEMENTED with a message naming it.
//
// ModelInfer decodes and validates the request on the gRPC thread, hands the
// rows to the Batcher and returns at once; the batcher's worker finishes the
// call when the rows are computed. No handler ever waits for the model.
// Request and response messages stay owned by gRPC until the call finishes,
// so rows are read straight from the request and probabilities written
// straight into the response.
//
// Thread-safety: gRPC calls the handlers concurrently; the service holds no
// mutable state of its own.
#ifndef RNN_SERVER_INFERENCE_SERVICE_H_
#define RNN_SERVER_INFERENCE_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/support/byte_buffer.h"
#include "proto/grpc_predict_v2.grpc.pb.h"
#include "server/batching/batch_queue.h"
#include "server/batching/batcher.h"
#include "server/infer_stream.h"
#include "server/inference_codec.h"
#include "server/metrics/metrics.h"
#include "server/serving_state.h"

namespace rnn {

// ModelInfer is registered raw (ByteBuffer in and out) so that the service
// parses the request itself: gRPC's own parse failure answers UNIMPLEMENTED
// with an empty message and never reaches the service, where a malformed
// body deserves INVALID_ARGUMENT, counted like any other bad request.
class InferenceService final
    : public inference::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
          inference::GRPCInferenceService::CallbackService> {
 public:
  // What the service reports (ModelConfig) and enforces beyond the batcher.
  struct Options {
    ModelSignature signature;
    std::string server_version;
    // The batcher's rules, as ModelConfig reports them.
    BatchQueue::Options batching;
    int instances = 1;
    // Requests a ModelStreamInfer stream holds read but not yet answered.
    int max_inflight_per_stream = 128;
  };

  // `batcher`, `state` and `metrics` are not owned and must outlive the
  // service; `metrics` may be null (metrics off; ModelStatistics then
  // answers UNAVAILABLE).
  InferenceService(Options options, Batcher* batcher, const ServingState* state,
                   Metrics* metrics);

  // Ends every ModelStreamInfer stream once it has answered what it read
  // (StreamRegistry::Drain). Call before the gRPC server's Shutdown, which
  // waits for calls to end.
  void DrainStreams() { streams_.Drain(); }

  // Returns once no ModelInfer call has arrived for `quiet`, or at
  // `deadline`. Meant for a drain: while it waits, calls still in transit
  // reach the service and are answered (UNAVAILABLE once the state is no
  // longer serving), where gRPC's server Shutdown would cancel the calls
  // that reach it after it started.
  void AwaitQuiet(absl::Duration quiet, absl::Time deadline);

  // Waits until every ModelInfer call admitted while serving has been
  // answered and every stream has ended (call DrainStreams first), or until
  // `deadline`; true when none is left.
  bool AwaitAdmittedAnswered(absl::Time deadline);

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

  grpc::ServerBidiReactor<inference::ModelInferRequest,
                          inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(
      grpc::CallbackServerContext* context,
      const inference::ModelConfigRequest* request,
      inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(
      grpc::CallbackServerContext* context,
      const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(
      grpc::CallbackServerContext* context,
      const inference::RepositoryIndexRequest* request,
      inference::RepositoryIndexResponse* response) override;

  // Not implemented; each answers UNIMPLEMENTED saying so.
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryStatusRequest* request,
      inference::SystemSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryRegisterRequest* request,
      inference::SystemSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryUnregisterRequest* request,
      inference::SystemSharedMemoryUnregisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryStatus(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryStatusRequest* request,
      inference::CudaSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryRegisterRequest* request,
      inference::CudaSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryUnregisterRequest* request,
      inference::CudaSharedMemoryUnregisterResponse* response) override;
  grpc::ServerUnaryReactor* TraceSetting(
      grpc::CallbackServerContext* context,
      const inference::TraceSettingRequest* request,
      inference::TraceSettingResponse* response) override;
  grpc::ServerUnaryReactor* LogSettings(
      grpc::CallbackServerContext* context,
      const inference::LogSettingsRequest* request,
      inference::LogSettingsResponse* response) override;

  // ServerMetadata's extensions: Triton's names for what is implemented
  // beyond KServe v2 (perf_analyzer reads this list).
  static const std::vector<std::string>& Extensions();

 private:
  const Options options_;
  const ModelSignature& signature_ = options_.signature;
  Batcher* const batcher_;
  const ServingState* const state_;
  Metrics* const metrics_;
  StreamRegistry streams_;
  // When the last ModelInfer call arrived, in Unix nanoseconds.
  std::atomic<int64_t> last_arrival_ns_{0};
  // ModelInfer calls admitted (the server was serving) and not yet done.
  std::atomic<int64_t> admitted_{0};
};

}  // namespace rnn

#endif  // RNN_SERVER_INFERENCE_SERVICE_H_
