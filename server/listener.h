// Listener: the plaintext gRPC port's accept loop, owned by rnn-server
// rather than by gRPC.
//
// Why: gRPC 1.51's own accept loop gives up on a listening socket the first
// time accept4 fails with EMFILE (out of file descriptors) — after one burst
// of connections past the open-file limit, the port accepts TCP connections
// that are never served, for good. This loop survives it: when out of
// descriptors it accepts and closes the pending connections with a
// descriptor kept in reserve for the purpose (so clients see a closed
// connection, not a hang), waits a little, and goes on. Each accepted
// connection is handed to the gRPC server (grpc::AddInsecureChannelFromFd),
// which serves it as if it had accepted it.
//
// TLS ports stay gRPC's: 1.51 can adopt only plaintext connections.
//
// Example:
//   absl::StatusOr<std::unique_ptr<rnn::Listener>> listener =
//       rnn::Listener::Bind("127.0.0.1", 0);  // Port 0: any free port.
//   if (!listener.ok()) return listener.status();
//   std::printf("listening on %d\n", (*listener)->port());
//   (*listener)->Start([](int fd) { close(fd); });  // Or hand it to gRPC.
//   (*listener)->Stop();
//
// Thread-safety: Start and Stop from one thread; `on_connection` runs on the
// listener's thread.
#ifndef RNN_SERVER_LISTENER_H_
#define RNN_SERVER_LISTENER_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace rnn {

class Listener {
 public:
  // Binds and listens on `host`:`port` (a name, an IPv4 or an IPv6 address;
  // "0.0.0.0" and "[::]" for every interface). UNAVAILABLE when the port is
  // taken or the host does not resolve to an address of this machine.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(const std::string& host,
                                                        int port);

  // Stops (see Stop).
  ~Listener();

  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  int port() const { return port_; }

  // Starts accepting; each connection's socket (non-blocking, TCP_NODELAY)
  // goes to `on_connection`, which owns it from then on.
  void Start(std::function<void(int fd)> on_connection);

  // Stops accepting and closes the listening socket; connections already
  // handed over are not touched. Idempotent.
  void Stop();

  // Connections refused because the process was out of descriptors.
  int64_t shed() const { return shed_.load(std::memory_order_relaxed); }

  // Shuts down (both directions) every connection handed over that is
  // still open, so that its client sees the connection end — and retries
  // elsewhere with UNAVAILABLE — rather than a call cancelled by the
  // server's shutdown. For the end of a drain, once every admitted call is
  // answered. Call after Stop.
  void ShutdownConnections();

 private:
  Listener(int listen_fd, int wake_fd, int port);
  void AcceptLoop();
  void Remember(int fd);
  // Out of descriptors: accept and close what waits, with the reserve.
  void Shed();

  const int listen_fd_;
  const int wake_fd_;  // An eventfd that wakes the loop to stop.
  const int port_;
  int reserve_fd_ = -1;  // Kept open to be closed when descriptors run out.
  std::function<void(int)> on_connection_;
  std::thread thread_;
  bool stopped_ = false;
  // Each connection handed over: its descriptor and its socket's inode,
  // which tells whether the descriptor still names that socket (gRPC closes
  // it when the connection ends, and the number is then reused). Written
  // by the accept thread only, read after Stop joined it.
  std::vector<std::pair<int, ino_t>> connections_;
  size_t pruned_size_ = 0;
  std::atomic<int64_t> shed_{0};
};

}  // namespace rnn

#endif  // RNN_SERVER_LISTENER_H_
