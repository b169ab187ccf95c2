#include "client/testing/fake_stream_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace rnn::testing {

std::unique_ptr<FakeStreamServer> FakeStreamServer::Start(Handler handler) {
  std::unique_ptr<FakeStreamServer> server(new FakeStreamServer);
  server->service_.handler = std::move(handler);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&server->service_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    ADD_FAILURE() << "cannot start a gRPC server on 127.0.0.1";
    return nullptr;
  }
  server->target_ = absl::StrCat("127.0.0.1:", port);
  return server;
}

FakeStreamServer::~FakeStreamServer() {
  if (server_ != nullptr) server_->Shutdown();
}

grpc::Status FakeStreamServer::Service::ModelStreamInfer(
    grpc::ServerContext* context, Stream* stream) {
  ++streams;
  return handler(context, stream);
}

inference::ModelStreamInferResponse FakeStreamServer::Answer(
    const inference::ModelInferRequest& request, const absl::Status& status,
    bool with_error_code) {
  inference::ModelStreamInferResponse answer;
  inference::ModelInferResponse& response = *answer.mutable_infer_response();
  response.set_id(request.id());
  response.set_model_name(request.model_name());
  response.set_model_version("1");
  if (status.ok()) {
    response.add_outputs()->set_name("probabilities");
    return answer;
  }
  answer.set_error_message(std::string(status.message()));
  if (with_error_code) {
    (*response.mutable_parameters())["error_code"].set_string_param(
        absl::StatusCodeToString(status.code()));
  }
  return answer;
}

}  // namespace rnn::testing
