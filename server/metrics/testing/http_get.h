// Test helper: a minimal HTTP/1.0 client for scraping /metrics in tests.
#ifndef RNN_SERVER_METRICS_TESTING_HTTP_GET_H_
#define RNN_SERVER_METRICS_TESTING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace rnn::testing {

// Sends GET `path` to 127.0.0.1:`port` and returns everything the server
// sends (status line, headers, body) until it closes the connection. Gives
// up after 30 s without data, so a hung server fails a test instead of
// hanging it.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

}  // namespace rnn::testing

#endif  // RNN_SERVER_METRICS_TESTING_HTTP_GET_H_
