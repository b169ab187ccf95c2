#include "tests/testing/client_helpers.h"

#include <cstdlib>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace rnn::testing {

std::unique_ptr<InferenceClient> LoopbackClient(int grpc_port) {
  ClientOptions options;
  options.targets = {absl::StrCat("127.0.0.1:", grpc_port)};
  absl::StatusOr<std::unique_ptr<InferenceClient>> client =
      InferenceClient::Create(options);
  if (!client.ok()) std::abort();  // Only a malformed target can fail.
  return *std::move(client);
}

std::vector<absl::StatusOr<InferOutput>> InferAllAtOnce(
    InferenceClient& client, const std::vector<InferInput>& inputs) {
  std::vector<absl::StatusOr<InferOutput>> outputs(
      inputs.size(), absl::UnknownError("no answer"));
  std::deque<absl::Notification> done(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    client.InferAsync(inputs[i], [&, i](absl::StatusOr<InferOutput> out) {
      outputs[i] = std::move(out);
      done[i].Notify();
    });
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  for (absl::Notification& d : done) {
    if (!d.WaitForNotificationWithTimeout(give_up - absl::Now())) std::abort();
  }
  return outputs;
}

}  // namespace rnn::testing
