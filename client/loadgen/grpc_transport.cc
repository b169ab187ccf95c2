#include "client/loadgen/grpc_transport.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpc/support/time.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "proto/grpc_predict_v2.grpc.pb.h"

namespace rnn::loadgen {
namespace {

const std::string kModelInfer = absl::StrCat(
    "/", inference::GRPCInferenceService::service_full_name(), "/ModelInfer");

gpr_timespec In(int64_t ns) {
  return gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_nanos(std::max<int64_t>(ns, 0), GPR_TIMESPAN));
}

}  // namespace

GrpcTransport::GrpcTransport(std::vector<grpc::GenericStub*> stubs,
                             int connections, const RequestPool& pool,
                             absl::Duration deadline)
    : stubs_(std::move(stubs)),
      connections_(connections),
      pool_(pool),
      deadline_(deadline) {}

GrpcTransport::~GrpcTransport() {
  cq_.Shutdown();
  void* tag;
  bool ok;
  while (cq_.Next(&tag, &ok)) {
  }
}

void GrpcTransport::Start(CallSlot& slot) {
  if (static_cast<size_t>(slot.index) >= calls_.size()) {
    calls_.resize(slot.index + 1);
  }
  std::unique_ptr<Call>& call = calls_[slot.index];
  if (call == nullptr) call = std::make_unique<Call>();
  call->slot = &slot;
  call->busy = true;
  call->context.emplace();
  if (deadline_ > absl::ZeroDuration()) {
    call->context->set_deadline(In(absl::ToInt64Nanoseconds(deadline_)));
  }
  grpc::ByteBuffer request =
      pool_.Request(slot.entry, absl::string_view(slot.id, slot.id_size));
  call->reader =
      stubs_[slot.target * connections_ + slot.connection]->PrepareUnaryCall(
          &*call->context, kModelInfer, request, &cq_);
  call->reader->StartCall();
  call->reader->Finish(&call->response, &call->status, call.get());
}

CallSlot* GrpcTransport::Next(int64_t timeout_ns) {
  void* tag;
  bool ok;
  if (cq_.AsyncNext(&tag, &ok, In(timeout_ns)) !=
      grpc::CompletionQueue::GOT_EVENT) {
    return nullptr;
  }
  Call& call = *static_cast<Call*>(tag);
  call.busy = false;
  CallSlot& slot = *call.slot;
  slot.status_code = call.status.error_code();
  slot.status_message = call.status.error_message();
  slot.parsed = false;
  if (call.status.ok()) {
    grpc::ProtoBufferReader reader(&call.response);
    slot.parsed = slot.response.ParseFromZeroCopyStream(&reader);
  }
  return &slot;
}

void GrpcTransport::CancelAll() {
  for (auto& call : calls_) {
    if (call != nullptr && call->busy) call->context->TryCancel();
  }
}

}  // namespace rnn::loadgen
