#include "server/metrics/testing/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace rnn::testing {

namespace {

// A socket connected to 127.0.0.1:`port`, or -1.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address),
              sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int OpenSlowRequest(int port) {
  const int fd = Connect(port);
  if (fd < 0) return -1;
  const std::string start = "GET /metrics HTTP/1.1\r\nHost: slow\r\n";
  if (send(fd, start.data(), start.size(), 0) !=
      static_cast<ssize_t>(start.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path,
                                    absl::Duration timeout) {
  const int fd = Connect(port);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", port));
  }
  // Bounds a hung server to a failed test rather than a hung one.
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0)
    response.append(buffer, n);
  close(fd);
  if (n < 0) return absl::DeadlineExceededError("recv failed or timed out");
  return response;
}

}  // namespace rnn::testing
