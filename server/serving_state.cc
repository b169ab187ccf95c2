#include "server/serving_state.h"

#include <string>

#include "proto/grpc_predict_v2.grpc.pb.h"

namespace rnn {

void ServingState::AttachHealthService(
    grpc::HealthCheckServiceInterface* health) {
  absl::MutexLock lock(&mu_);
  health_ = health;
  Report();
}

void ServingState::Set(Phase phase) {
  absl::MutexLock lock(&mu_);
  phase_.store(phase, std::memory_order_release);
  Report();
}

void ServingState::Report() {
  if (health_ == nullptr) return;
  const bool serving = phase() == Phase::kServing;
  health_->SetServingStatus(serving);
  health_->SetServingStatus(
      inference::GRPCInferenceService::service_full_name(), serving);
}

}  // namespace rnn
