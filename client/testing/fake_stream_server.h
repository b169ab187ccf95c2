// FakeStreamServer: a gRPC server on a free loopback port whose
// ModelStreamInfer handler the test writes, for the client's streaming
// tests (ModelStream, the load generator's stream transport) without a
// model. The other RPCs answer UNIMPLEMENTED.
//
// Example:
//   #include "client/inference_client.h"
//   std::unique_ptr<testing::FakeStreamServer> server =
//       testing::FakeStreamServer::Start(
//           [](grpc::ServerContext*, testing::FakeStreamServer::Stream* s) {
//             inference::ModelInferRequest request;
//             while (s->Read(&request)) {
//               s->Write(testing::FakeStreamServer::Answer(request));
//             }
//             return grpc::Status::OK;
//           });
//   ClientOptions options;
//   options.targets = {server->target()};
//
// Thread-safety: the handler runs on gRPC's threads, once per stream,
// possibly for several streams at once.
#ifndef RNN_CLIENT_TESTING_FAKE_STREAM_SERVER_H_
#define RNN_CLIENT_TESTING_FAKE_STREAM_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/server.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/sync_stream.h"
#include "proto/grpc_predict_v2.grpc.pb.h"

namespace rnn::testing {

class FakeStreamServer {
 public:
  using Stream = grpc::ServerReaderWriter<inference::ModelStreamInferResponse,
                                          inference::ModelInferRequest>;
  using Handler = std::function<grpc::Status(grpc::ServerContext*, Stream*)>;

  // Starts the server; the test fails (and nullptr is returned) when it
  // cannot.
  static std::unique_ptr<FakeStreamServer> Start(Handler handler);
  // Shuts down, waiting for the handlers to return.
  ~FakeStreamServer();

  // "127.0.0.1:port".
  std::string target() const { return target_; }
  // Streams the handler was called for so far.
  int streams() const { return service_.streams.load(); }

  // rnn-server's answer shape for `request`: OK, its id and model echoed
  // and one output; or, for an error `status`, error_message set and the
  // code named in the "error_code" parameter (unless `with_error_code` is
  // false).
  static inference::ModelStreamInferResponse Answer(
      const inference::ModelInferRequest& request,
      const absl::Status& status = absl::OkStatus(),
      bool with_error_code = true);

 private:
  struct Service final : inference::GRPCInferenceService::Service {
    grpc::Status ModelStreamInfer(grpc::ServerContext* context,
                                  Stream* stream) override;
    Handler handler;
    std::atomic<int> streams{0};
  };

  FakeStreamServer() = default;

  Service service_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
};

}  // namespace rnn::testing

#endif  // RNN_CLIENT_TESTING_FAKE_STREAM_SERVER_H_
