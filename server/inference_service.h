// InferenceService: the Open Inference Protocol (KServe v2) gRPC service,
// on gRPC's callback API.
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

#include <string>

#include "proto/grpc_predict_v2.grpc.pb.h"
#include "server/batching/batcher.h"
#include "server/inference_codec.h"
#include "server/metrics/metrics.h"
#include "server/serving_state.h"

namespace rnn {

class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // `batcher`, `state` and `metrics` are not owned and must outlive the
  // service; `metrics` may be null (metrics off).
  InferenceService(ModelSignature signature, std::string server_version,
                   Batcher* batcher, const ServingState* state,
                   Metrics* metrics);

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
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;

 private:
  const ModelSignature signature_;
  const std::string server_version_;
  Batcher* const batcher_;
  const ServingState* const state_;
  Metrics* const metrics_;
};

}  // namespace rnn

#endif  // RNN_SERVER_INFERENCE_SERVICE_H_
