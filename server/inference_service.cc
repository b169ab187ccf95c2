#include "server/inference_service.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "server/status_util.h"

namespace rnn {
namespace {

// One ModelInfer call, with its request and response messages. Lives until
// gRPC calls OnDone after Finish. Every answer goes through FinishWith,
// which serializes the response and records the call's metrics.
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  InferReactor(Batcher* batcher, Metrics* metrics, grpc::ByteBuffer* out)
      : batcher_(batcher), metrics_(metrics), out_(out), start_(absl::Now()) {
    if (metrics_ != nullptr) metrics_->RequestStarted();
  }

  ~InferReactor() override {
    if (admitted_ != nullptr)
      admitted_->fetch_sub(1, std::memory_order_release);
  }

  // Counts the call in `admitted` until it is done.
  void Admit(std::atomic<int64_t>* admitted) {
    admitted_ = admitted;
    admitted_->fetch_add(1, std::memory_order_acq_rel);
  }

  absl::Time start() const { return start_; }
  inference::ModelInferRequest& request() { return request_; }
  inference::ModelInferResponse& response() { return response_; }

  // Parses the call's body into request().
  absl::Status Parse(const grpc::ByteBuffer& body) {
    // Copying a ByteBuffer shares its slices; the parse needs a mutable one.
    grpc::ByteBuffer buffer(body);
    const size_t bytes = buffer.Length();
    if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(
             &buffer, &request_)
             .ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the request body (", bytes,
                       " bytes) is not a valid ModelInferRequest message"));
    }
    return absl::OkStatus();
  }

  void FinishWith(const absl::Status& status) {
    grpc::Status result = ToGrpcStatus(status);
    if (status.ok()) {
      bool own_buffer;
      result =
          grpc::SerializationTraits<inference::ModelInferResponse>::Serialize(
              response_, out_, &own_buffer);
    }
    if (metrics_ != nullptr) {
      metrics_->RequestFinished(
          static_cast<absl::StatusCode>(result.error_code()),
          absl::Now() - start_);
    }
    Finish(result);
  }

  void OnCancel() override {
    cancelled_.store(true, std::memory_order_relaxed);
    batcher_->NotifyCancelled();
  }
  void OnDone() override { delete this; }

  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  DecodedRequest& decoded() { return decoded_; }

 private:
  Batcher* const batcher_;
  Metrics* const metrics_;
  grpc::ByteBuffer* const out_;  // gRPC's, for the serialized response.
  std::atomic<int64_t>* admitted_ = nullptr;
  const absl::Time start_;
  std::atomic<bool> cancelled_{false};
  inference::ModelInferRequest request_;
  inference::ModelInferResponse response_;
  DecodedRequest decoded_;  // Holds the rows' aligned copy, if one was made.
};

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// The answer of every RPC of Triton's service that rnn-server does not
// implement: never an empty message, which some clients (Triton's) read as
// success.
grpc::ServerUnaryReactor* Unimplemented(grpc::CallbackServerContext* context,
                                        absl::string_view rpc,
                                        absl::string_view why) {
  return FinishNow(
      context,
      absl::UnimplementedError(absl::StrCat(
          "rnn-server does not implement ", rpc, ": ", why,
          ". It implements ServerLive, ServerReady, ModelReady, "
          "ServerMetadata, ModelMetadata, ModelInfer, ModelStreamInfer, "
          "ModelConfig, ModelStatistics and RepositoryIndex.")));
}

inference::StatisticDuration* Fill(const Metrics::Statistics::Duration& d,
                                   inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
  return out;
}

}  // namespace

InferenceService::InferenceService(Options options, Batcher* batcher,
                                   const ServingState* state, Metrics* metrics)
    : options_(std::move(options)),
      batcher_(batcher),
      state_(state),
      metrics_(metrics),
      streams_(
          StreamRegistry::Dependencies{&signature_, batcher, state, metrics,
                                       options_.max_inflight_per_stream}) {}

const std::vector<std::string>& InferenceService::Extensions() {
  static const auto* const extensions =
      new std::vector<std::string>{"model_configuration", "statistics"};
  return *extensions;
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  // Answering at all means the process is live, in every phase.
  response->set_live(true);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(state_->serving());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  absl::Status status =
      CheckModel(signature_, request->name(), request->version());
  if (status.ok()) response->set_ready(state_->serving());
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name("rnn-server");
  response->set_version(options_.server_version);
  for (const std::string& e : Extensions()) response->add_extensions(e);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::Status status =
      CheckModel(signature_, request->name(), request->version());
  if (status.ok()) FillModelMetadata(signature_, *response);
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* out) {
  auto* reactor = new InferReactor(batcher_, metrics_, out);
  last_arrival_ns_.store(absl::ToUnixNanos(reactor->start()),
                         std::memory_order_relaxed);
  // Counted before the check, so that a drain which has seen the state
  // change and then no admitted call cannot miss one admitted in between.
  reactor->Admit(&admitted_);
  if (!state_->serving()) {
    reactor->FinishWith(absl::UnavailableError(absl::StrCat(
        "model '", signature_.name, "' is not ready (server ",
        state_->phase() == ServingState::Phase::kStarting ? "starting"
                                                          : "shutting down",
        ")")));
    return reactor;
  }
  if (absl::Status s = reactor->Parse(*body); !s.ok()) {
    reactor->FinishWith(s);
    return reactor;
  }
  const inference::ModelInferRequest* request = &reactor->request();
  inference::ModelInferResponse* response = &reactor->response();
  DecodedRequest& decoded = reactor->decoded();
  if (absl::Status s = DecodeRequest(signature_, *request, decoded); !s.ok()) {
    reactor->FinishWith(s);
    return reactor;
  }
  BatchTask task;
  task.input = decoded.input;
  task.output = PrepareResponse(signature_, *request, decoded.rows, *response);
  task.deadline = std::min(absl::FromChrono(context->deadline()),
                           absl::Now() + decoded.queue_timeout);
  task.is_cancelled = [reactor] { return reactor->cancelled(); };
  task.done = [reactor](absl::Status s) { reactor->FinishWith(s); };
  if (absl::Status s = batcher_->Submit(std::move(task)); !s.ok()) {
    reactor->FinishWith(s);
  }
  return reactor;
}

void InferenceService::AwaitQuiet(absl::Duration quiet, absl::Time deadline) {
  // Polled: this runs once per process, and waking a waiter from every
  // call's arrival would cost the request path.
  for (absl::Time now = absl::Now(); now < deadline; now = absl::Now()) {
    const absl::Time last =
        absl::FromUnixNanos(last_arrival_ns_.load(std::memory_order_relaxed));
    if (now - last >= quiet) return;
    absl::SleepFor(std::min(quiet - (now - last), deadline - now));
  }
}

bool InferenceService::AwaitAdmittedAnswered(absl::Time deadline) {
  // Calls refused while draining are counted for a moment too; they are
  // answered at once, so the count still reaches zero between them.
  while (admitted_.load(std::memory_order_acquire) > 0 ||
         streams_.open_streams() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Microseconds(500));
  }
  return true;
}

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return streams_.Open(context);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  if (absl::Status s =
          CheckModel(signature_, request->name(), request->version());
      !s.ok()) {
    return FinishNow(context, s);
  }
  inference::ModelConfig& config = *response->mutable_config();
  config.set_name(signature_.name);
  config.set_platform(signature_.platform);
  config.set_max_batch_size(options_.batching.max_batch_size);
  // Dims leave out the batch dimension, as max_batch_size > 0 says.
  inference::ModelInput& input = *config.add_input();
  input.set_name(signature_.input_name);
  input.set_data_type(inference::TYPE_FP32);
  input.add_dims(signature_.sequence_length);
  input.add_dims(signature_.input_size);
  inference::ModelOutput& output = *config.add_output();
  output.set_name(signature_.output_name);
  output.set_data_type(inference::TYPE_FP32);
  output.add_dims(signature_.num_classes);
  inference::ModelDynamicBatching& batching =
      *config.mutable_dynamic_batching();
  batching.set_max_queue_delay_microseconds(static_cast<uint64_t>(
      absl::ToInt64Microseconds(options_.batching.max_queue_delay)));
  // Our queue bound counts rows (sequences), Triton's requests; for
  // batch-1 clients they are the same.
  batching.mutable_default_queue_policy()->set_max_queue_size(
      static_cast<uint32_t>(options_.batching.max_queue_size));
  inference::ModelInstanceGroup& group = *config.add_instance_group();
  group.set_name(signature_.name);
  group.set_kind(inference::ModelInstanceGroup::KIND_CPU);
  group.set_count(options_.instances);
  // Exactly one response per request, computed every time.
  config.mutable_model_transaction_policy()->set_decoupled(false);
  config.mutable_response_cache()->set_enable(false);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context,
    const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  // An empty name means every model, an empty version every version: here
  // both are the one served.
  if (!request->name().empty() || !request->version().empty()) {
    if (absl::Status s = CheckModel(
            signature_,
            request->name().empty() ? signature_.name : request->name(),
            request->version());
        !s.ok()) {
      return FinishNow(context, s);
    }
  }
  if (metrics_ == nullptr) {
    return FinishNow(context,
                     absl::UnavailableError(
                         "statistics are off: rnn-server runs with "
                         "--metrics_port=-1, which turns their recording off"));
  }
  const Metrics::Statistics stats = metrics_->GetStatistics();
  inference::ModelStatistics& out = *response->add_model_stats();
  out.set_name(signature_.name);
  out.set_version(signature_.version);
  out.set_last_inference(static_cast<uint64_t>(stats.last_inference_ms));
  out.set_inference_count(stats.inference_count);
  out.set_execution_count(stats.execution_count);
  inference::InferStatistics& infer = *out.mutable_inference_stats();
  Fill(stats.success, infer.mutable_success());
  Fill(stats.fail, infer.mutable_fail());
  Fill(stats.queue, infer.mutable_queue());
  Fill(stats.compute_input, infer.mutable_compute_input());
  Fill(stats.compute_infer, infer.mutable_compute_infer());
  Fill(stats.compute_output, infer.mutable_compute_output());
  for (const Metrics::Statistics::BatchSize& b : stats.batch_sizes) {
    inference::InferBatchStatistics& batch = *out.add_batch_stats();
    batch.set_batch_size(b.batch_size);
    Fill(b.compute_input, batch.mutable_compute_input());
    Fill(b.compute_infer, batch.mutable_compute_infer());
    Fill(b.compute_output, batch.mutable_compute_output());
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (!request->repository_name().empty()) {
    return FinishNow(
        context,
        absl::NotFoundError(absl::StrCat(
            "no repository ", QuoteForError(request->repository_name()),
            ": rnn-server has one, unnamed (give an empty name)")));
  }
  const bool ready = state_->serving();
  if (ready || !request->ready()) {
    inference::RepositoryIndexResponse::ModelIndex& model =
        *response->add_models();
    model.set_name(signature_.name);
    model.set_version(signature_.version);
    model.set_state(ready ? "READY" : "UNAVAILABLE");
    if (!ready) {
      model.set_reason(state_->phase() == ServingState::Phase::kStarting
                           ? "server starting"
                           : "server shutting down");
    }
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelLoadRequest*,
    inference::RepositoryModelLoadResponse*) {
  return Unimplemented(context, "RepositoryModelLoad",
                       "it serves one model, loaded at start-up (--model)");
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelUnloadRequest*,
    inference::RepositoryModelUnloadResponse*) {
  return Unimplemented(context, "RepositoryModelUnload",
                       "it serves one model, loaded at start-up (--model)");
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryStatus(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryStatusRequest*,
    inference::SystemSharedMemoryStatusResponse*) {
  return Unimplemented(context, "SystemSharedMemoryStatus",
                       "tensors travel in the request and response messages");
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryRegister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryRegisterRequest*,
    inference::SystemSharedMemoryRegisterResponse*) {
  return Unimplemented(context, "SystemSharedMemoryRegister",
                       "tensors travel in the request and response messages");
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryUnregisterRequest*,
    inference::SystemSharedMemoryUnregisterResponse*) {
  return Unimplemented(context, "SystemSharedMemoryUnregister",
                       "tensors travel in the request and response messages");
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryStatus(
    grpc::CallbackServerContext* context,
    const inference::CudaSharedMemoryStatusRequest*,
    inference::CudaSharedMemoryStatusResponse*) {
  return Unimplemented(context, "CudaSharedMemoryStatus",
                       "it runs on the CPU only");
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryRegister(
    grpc::CallbackServerContext* context,
    const inference::CudaSharedMemoryRegisterRequest*,
    inference::CudaSharedMemoryRegisterResponse*) {
  return Unimplemented(context, "CudaSharedMemoryRegister",
                       "it runs on the CPU only");
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::CudaSharedMemoryUnregisterRequest*,
    inference::CudaSharedMemoryUnregisterResponse*) {
  return Unimplemented(context, "CudaSharedMemoryUnregister",
                       "it runs on the CPU only");
}

grpc::ServerUnaryReactor* InferenceService::TraceSetting(
    grpc::CallbackServerContext* context, const inference::TraceSettingRequest*,
    inference::TraceSettingResponse*) {
  return Unimplemented(context, "TraceSetting",
                       "it has no request tracing; its timings are in "
                       "ModelStatistics and on /metrics");
}

grpc::ServerUnaryReactor* InferenceService::LogSettings(
    grpc::CallbackServerContext* context, const inference::LogSettingsRequest*,
    inference::LogSettingsResponse*) {
  return Unimplemented(context, "LogSettings",
                       "its logging is fixed at start-up");
}

}  // namespace rnn
