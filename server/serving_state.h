// ServingState: the server's one lifecycle state, which the health service,
// ServerReady, ModelReady and the rnn_model_ready metric all report.
//
//   kStarting  until RnnServer::Start is done:  health NOT_SERVING, not ready
//   kServing   answering inference:             health SERVING, ready
//   kDraining  finishing accepted requests:     health NOT_SERVING, not ready
//
// RnnServer::Start loads the weights and warms up every model instance
// before it opens a port, so no client sees the warm-up: until then
// connections are refused. kStarting shows only briefly, from the moment the
// ports open (metrics first, then gRPC) until Start sets kServing.
//
// Health is reported through gRPC's built-in grpc.health.v1 service, both
// for the server as a whole ("") and for "inference.GRPCInferenceService".
//
// Thread-safety: all methods may be called from any thread.
#ifndef RNN_SERVER_SERVING_STATE_H_
#define RNN_SERVER_SERVING_STATE_H_

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "grpcpp/health_check_service_interface.h"

namespace rnn {

class ServingState {
 public:
  enum class Phase { kStarting, kServing, kDraining };

  // Reports every later change to `health` (not owned; may be null). Call
  // once, after the gRPC server has started.
  void AttachHealthService(grpc::HealthCheckServiceInterface* health);

  void Set(Phase phase);
  Phase phase() const { return phase_.load(std::memory_order_acquire); }
  bool serving() const { return phase() == Phase::kServing; }

 private:
  void Report() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::atomic<Phase> phase_{Phase::kStarting};
  absl::Mutex mu_;  // Orders reports to the health service.
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace rnn

#endif  // RNN_SERVER_SERVING_STATE_H_
