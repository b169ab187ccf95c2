// MetricsServer: serves a prometheus::Registry over HTTP at
// http://<bind_address>/metrics, for Prometheus to scrape.
//
// Separate from the gRPC port so that scrapes never queue behind inference
// and the endpoint can be firewalled apart. prometheus-cpp's Exposer
// (civetweb) runs the HTTP server on its own threads: a listener and
// kWorkers workers, one per open connection; a scrape calls the registry's
// Collect on one of them. A request not received whole within
// kRequestTimeoutMs is dropped, so slow or stalled clients (slowloris) hold
// a worker for at most that long, and take the endpoint down only when they
// are more than kWorkers at once.
//
// Example:
//   auto registry = std::make_shared<prometheus::Registry>();  // or Metrics'
//   absl::StatusOr<std::unique_ptr<MetricsServer>> server =
//       MetricsServer::Start("0.0.0.0:8002", registry);
//   if (!server.ok()) return server.status();
//   const int port = (*server)->port();  // 8002; a free one when 0 was asked
//   if (port <= 0) return absl::InternalError("no port");
//
// Thread-safety: port() may be called from any thread.
#ifndef RNN_SERVER_METRICS_METRICS_SERVER_H_
#define RNN_SERVER_METRICS_METRICS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace rnn {

class MetricsServer {
 public:
  static constexpr int kWorkers = 16;
  static constexpr int kRequestTimeoutMs = 2000;

  // Listens on `bind_address`, "host:port" (port 0 picks a free port; see
  // port()), and serves `registry`, which the server keeps alive. Returns
  // UNAVAILABLE naming the address if it cannot listen there (port taken,
  // bad address), INVALID_ARGUMENT for a null registry.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& bind_address,
      std::shared_ptr<prometheus::Registry> registry);

  // Stops serving; waits for scrapes in progress. Takes up to 2 s: civetweb's
  // listener thread notices the stop only when its 2 s poll times out.
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port listened on.
  int port() const { return port_; }

 private:
  MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                std::unique_ptr<prometheus::Exposer> exposer, int port);

  // Declared before the exposer, which serves it: destroyed after it.
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::unique_ptr<prometheus::Exposer> exposer_;
  const int port_;
};

}  // namespace rnn

#endif  // RNN_SERVER_METRICS_METRICS_SERVER_H_
