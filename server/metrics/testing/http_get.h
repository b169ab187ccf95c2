// Test helper: a minimal HTTP/1.0 client for scraping /metrics in tests.
#ifndef RNN_SERVER_METRICS_TESTING_HTTP_GET_H_
#define RNN_SERVER_METRICS_TESTING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rnn::testing {

// Sends GET `path` to 127.0.0.1:`port` and returns everything the server
// sends (status line, headers, body) until it closes the connection. Gives
// up (DEADLINE_EXCEEDED) after `timeout` without data, so a hung server
// fails a test instead of hanging it.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path,
                                    absl::Duration timeout = absl::Seconds(30));

// Opens a connection to 127.0.0.1:`port` and sends the start of a request
// whose headers never end, the way a slowloris client holds a server's
// worker; returns the socket (close it to let go), or -1.
int OpenSlowRequest(int port);

}  // namespace rnn::testing

#endif  // RNN_SERVER_METRICS_TESTING_HTTP_GET_H_
