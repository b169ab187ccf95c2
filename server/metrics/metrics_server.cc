#include "server/metrics/metrics_server.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

namespace rnn {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& bind_address,
    std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("MetricsServer needs a registry");
  }
  // Exposer reports a failure to listen only by throwing (civetweb's
  // CivetException); this is the edge where that becomes a Status.
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // civetweb's defaults (prometheus-cpp asks for 2 workers, no request
    // timeout) let two clients that open a request and never finish it hold
    // every worker, and Prometheus's scrapes then wait forever. A worker per
    // connection up to kWorkers, and a request not complete within
    // kRequestTimeoutMs dropped: a scrape of this endpoint takes
    // milliseconds.
    exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", bind_address, "num_threads",
                                 std::to_string(kWorkers), "request_timeout_ms",
                                 std::to_string(kRequestTimeoutMs)});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", bind_address, ": ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", bind_address, ": no listening port"));
  }
  exposer->RegisterCollectable(registry);
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(registry), std::move(exposer), ports[0]));
}

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                             std::unique_ptr<prometheus::Exposer> exposer,
                             int port)
    : registry_(std::move(registry)),
      exposer_(std::move(exposer)),
      port_(port) {}

MetricsServer::~MetricsServer() = default;

}  // namespace rnn
