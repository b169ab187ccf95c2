// ServingState: the server's one lifecycle state, which the health service,
// ServerReady and ModelReady all report.
//
//   kStarting  listening, model warming up:  health NOT_SERVING, not ready
//   kServing   answering inference:          health SERVING, ready
//   kDraining  finishing accepted requests:  health NOT_SERVING, not ready
//
// Health is reported through gRPC's built-in grpc.health.v1 service, both
// for the server as a whole ("") and for "inference.GRPCInferenceService".
//
// Thread-safety: all methods may be called from any thread.
#ifndef RNN_SERVER_SERVING_STATE_H_
#define RNN_SERVER_SERVING_STATE_H_

#include <atomic>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/health_check_service_interface.h"

namespace rnn {

class ServingState {
 public:
  enum class Phase { kStarting, kServing, kDraining };

  static constexpr absl::string_view kServiceName =
      "inference.GRPCInferenceService";

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
