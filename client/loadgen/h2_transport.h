// H2Transport: the gRPC wire protocol spoken directly over HTTP/2 with
// nghttp2 — the library h2load is built on — on non-blocking sockets driven
// by the worker thread's own epoll loop.
//
// A unary gRPC call is one HTTP/2 stream: HEADERS (POST :path
// /inference.GRPCInferenceService/ModelInfer, content-type application/grpc,
// te trailers, grpc-timeout when there is a deadline), DATA holding the
// length-prefixed message, then the server's HEADERS (:status 200), DATA
// (the length-prefixed answer) and trailers (grpc-status, grpc-message).
// Errors map as gRPC's own client maps them: a non-200 :status by the gRPC
// HTTP mapping (503 -> UNAVAILABLE, ...), a reset stream to
// UNAVAILABLE/CANCELLED, a lost connection to UNAVAILABLE, a passed
// deadline to DEADLINE_EXCEEDED (the stream is then reset). Messages are
// sent uncompressed and compressed answers are not accepted (no
// grpc-accept-encoding is sent). Writes of several calls are gathered into
// one send, as h2load does. A connection that fails is reconnected, at most
// every 100 ms, by the next call for it; calls in between fail UNAVAILABLE.
// A connection the server ends gracefully (GOAWAY, e.g. rnn-server's
// --max_connection_age_s) finishes its calls in flight while new calls go
// to a new connection, so no call fails. When a target's name resolves to
// several addresses, its connections are spread over them (connection i to
// address i mod n).
//
// Plain TCP only (no TLS); targets are "host:port", "[v6]:port" or
// "dns:///host:port".
//
// Thread-safety: one worker thread.
#ifndef RNN_CLIENT_LOADGEN_H2_TRANSPORT_H_
#define RNN_CLIENT_LOADGEN_H2_TRANSPORT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/loadgen/request_pool.h"
#include "client/loadgen/transport.h"

namespace rnn::loadgen {

class H2Transport final : public Transport {
 public:
  // Connects `connections` HTTP/2 connections to each of `targets` (calls
  // pick one by CallSlot::connection); Unavailable naming the target when
  // one cannot connect within `connect_timeout`. The pool outlives the
  // transport. `deadline` zero: calls without deadline.
  static absl::StatusOr<std::unique_ptr<H2Transport>> Connect(
      const std::vector<std::string>& targets, int connections,
      const RequestPool& pool, absl::Duration deadline,
      absl::Duration connect_timeout);
  ~H2Transport() override;

  void Start(CallSlot& call) override;
  CallSlot* Next(int64_t timeout_ns) override;
  void CancelAll() override;

 private:
  struct Connection;
  struct Stream;
  friend struct H2Callbacks;

  H2Transport(const RequestPool& pool, absl::Duration deadline);
  absl::Status Open(Connection& c, int64_t timeout_ns);
  void Close(Connection& c, const std::string& why);
  // Moves connections_[k] to draining_ and opens a new one in its place.
  void Replace(size_t k);
  void Flush(Connection& c);
  void Read(Connection& c);
  void Finish(Stream& s, int code, std::string message);
  void Complete(Stream& s);  // From the stream's received headers and data.
  void ExpireDeadlines(int64_t now_ns);

  const RequestPool& pool_;
  const int64_t deadline_ns_;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Connection>> connections_;  // target-major
  // Connections the server sent GOAWAY on, finishing their calls.
  std::vector<std::unique_ptr<Connection>> draining_;
  int per_target_ = 1;
  std::vector<std::unique_ptr<Stream>> streams_;  // By CallSlot::index.
  std::vector<CallSlot*> done_;                   // Finished, not yet taken.
  size_t done_head_ = 0;
  // Calls with a deadline in send order (so in deadline order), with the
  // generation they were started in.
  std::deque<std::pair<Stream*, uint64_t>> deadlines_;
  std::string read_buffer_;
};

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_H2_TRANSPORT_H_
