#include "server/listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace rnn {
namespace {

// How long the loop waits after shedding before it accepts again: long
// enough not to spin while descriptors are short, short enough that the port
// serves again within a moment of their coming back.
constexpr int kShedPauseMs = 10;

// The address's port, once bound.
int BoundPort(int fd) {
  sockaddr_storage address = {};
  socklen_t size = sizeof(address);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    return -1;
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(
    const std::string& host, int port) {
  // "[::]" and "[::1]" as in gRPC's address syntax.
  std::string name(absl::StripSuffix(absl::StripPrefix(host, "["), "]"));
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const std::string service = std::to_string(port);
  if (int error =
          getaddrinfo(name.c_str(), service.c_str(), &hints, &addresses);
      error != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", host, ":", port, ": ", gai_strerror(error)));
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1024) == 0) {
      break;
    }
    last_error = std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(addresses);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", last_error));
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    return absl::InternalError(
        absl::StrCat("eventfd failed: ", std::strerror(errno)));
  }
  return std::unique_ptr<Listener>(new Listener(fd, wake, BoundPort(fd)));
}

Listener::Listener(int listen_fd, int wake_fd, int port)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port) {
  reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Listener::~Listener() {
  Stop();
  close(wake_fd_);
  if (reserve_fd_ >= 0) close(reserve_fd_);
}

void Listener::Start(std::function<void(int)> on_connection) {
  on_connection_ = std::move(on_connection);
  thread_ = std::thread([this] { AcceptLoop(); });
}

void Listener::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  close(listen_fd_);
}

void Listener::AcceptLoop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    for (;;) {
      const int fd =
          accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        Remember(fd);
        on_connection_(fd);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        Shed();
        poll(nullptr, 0, kShedPauseMs);
      }
      break;  // EAGAIN: nothing more waits; or a pause after shedding.
    }
  }
}

void Listener::Remember(int fd) {
  struct stat st = {};
  if (fstat(fd, &st) != 0) return;
  // Forget connections whose descriptor no longer names their socket, so
  // the list stays about as long as the open connections; pruned when it
  // has doubled, so each accept costs O(1) fstat calls on average.
  if (connections_.size() >= 2 * pruned_size_ + 64) {
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                      [](const std::pair<int, ino_t>& c) {
                                        struct stat now = {};
                                        return fstat(c.first, &now) != 0 ||
                                               now.st_ino != c.second;
                                      }),
                       connections_.end());
    pruned_size_ = connections_.size();
  }
  connections_.emplace_back(fd, st.st_ino);
}

void Listener::ShutdownConnections() {
  for (const auto& [fd, inode] : connections_) {
    struct stat st = {};
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode) {
      shutdown(fd, SHUT_RDWR);
    }
  }
}

void Listener::Shed() {
  // With the reserve descriptor free, accept (and at once close) everything
  // waiting, so that those clients see their connection closed rather than
  // hanging unanswered.
  if (reserve_fd_ >= 0) {
    close(reserve_fd_);
    reserve_fd_ = -1;
  }
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) break;
    close(fd);
    shed_.fetch_add(1, std::memory_order_relaxed);
  }
  reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

}  // namespace rnn
