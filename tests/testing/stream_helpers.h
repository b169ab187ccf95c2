// Test helpers for the Triton extensions of the inference service, called
// through the raw generated stub: a ModelStreamInfer call that collects its
// responses on a reader thread, and a one-scrape view of /metrics.
//
// Example:
//   auto stub = rnn::testing::LoopbackStub(server->grpc_port());
//   rnn::testing::InferStream stream(*stub);
//   stream.Write(request);
//   stream.WritesDone();
//   const grpc::Status status = stream.Finish();  // Every response read.
//   for (const auto& response : stream.responses()) { ... }
#ifndef RNN_TESTS_TESTING_STREAM_HELPERS_H_
#define RNN_TESTS_TESTING_STREAM_HELPERS_H_

#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/sync_stream.h"
#include "proto/grpc_predict_v2.grpc.pb.h"

namespace rnn::testing {

// A stub of the inference service at 127.0.0.1:`grpc_port`.
std::unique_ptr<inference::GRPCInferenceService::Stub> LoopbackStub(
    int grpc_port);

// Sample name with labels (as printed) -> value, from one scrape of
// http://127.0.0.1:`port`/metrics. A failed scrape fails the test and gives
// an empty map.
std::map<std::string, double> ScrapeMetrics(int port);

// `name`{model="rnn",version="1"`extra`}: an rnn_* series of the default model.
std::string RnnSeries(const std::string& name, const std::string& extra = "");

// The probabilities in an infer response's raw_output_contents[0].
std::vector<float> Probabilities(const inference::ModelInferResponse& response);

// One ModelStreamInfer call on gRPC's synchronous API. The test writes from
// one thread (Write blocks while gRPC's flow control holds the message
// back); a reader thread, started at construction or by StartReading(),
// reads every response into responses(). The call has a 120 s deadline, so
// a server that never ends the stream fails the test instead of hanging it.
//
// Thread-safety: Write, WritesDone and Finish from one thread at a time;
// the waits, responses(), Cancel and context() from any thread.
class InferStream {
 public:
  InferStream(inference::GRPCInferenceService::Stub& stub,
              bool start_reading = true);
  // Cancels the call if Finish was not called, and waits for the reader.
  ~InferStream();

  InferStream(const InferStream&) = delete;
  InferStream& operator=(const InferStream&) = delete;

  // False once the stream is broken or ended.
  bool Write(const inference::ModelInferRequest& request);
  // Half-closes the stream.
  bool WritesDone();
  // Starts the reader thread, if the constructor did not.
  void StartReading();
  // Waits until at least `n` responses have arrived (true), or the stream
  // ended or `timeout` passed first (false).
  bool WaitForResponses(size_t n, absl::Duration timeout);
  // Waits until the server ends the stream (cancelling it if it has not
  // within `timeout`), then returns the call's status. Once only.
  grpc::Status Finish(absl::Duration timeout = absl::Seconds(60));
  // TryCancel on the call's context.
  void Cancel();

  std::vector<inference::ModelStreamInferResponse> responses() const;
  size_t response_count() const;

 private:
  void ReadAll();

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<inference::ModelInferRequest,
                                           inference::ModelStreamInferResponse>>
      stream_;
  std::thread reader_;
  bool finished_ = false;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<inference::ModelStreamInferResponse> responses_;  // By mu_.
  bool ended_ = false;                                          // By mu_.
};

}  // namespace rnn::testing

#endif  // RNN_TESTS_TESTING_STREAM_HELPERS_H_
