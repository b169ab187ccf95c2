#include "client/loadgen/h2_transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nghttp2/nghttp2.h"
#include "proto/grpc_predict_v2.grpc.pb.h"

namespace rnn::loadgen {
namespace {

// grpc::StatusCode values, without including gRPC.
enum Code {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kDeadlineExceeded = 4,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kUnauthenticated = 16,
};

// The ModelInfer method's HTTP/2 path, from the generated service name.
const std::string& ModelInferPath() {
  static const std::string* const path = new std::string(
      absl::StrCat("/", inference::GRPCInferenceService::service_full_name(),
                   "/ModelInfer"));
  return *path;
}
// Bytes gathered before one send(): a batch of requests' frames.
constexpr size_t kSendChunk = 64 << 10;
constexpr int32_t kWindow = (1 << 30) - 1;  // As h2load's -w 30 -W 30.
constexpr size_t kMaxAnswerBytes = 64 << 20;
constexpr int64_t kReconnectEveryNs = 100'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// gRPC's mapping of an HTTP status without grpc-status.
int FromHttpStatus(int status) {
  switch (status) {
    case 400:
      return kInternal;
    case 401:
      return kUnauthenticated;
    case 403:
      return kPermissionDenied;
    case 404:
      return kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return kUnavailable;
    default:
      return kUnknown;
  }
}

int FromResetCode(uint32_t code) {
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return kUnavailable;
    case NGHTTP2_CANCEL:
      return kCancelled;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return kResourceExhausted;
    default:
      return kInternal;
  }
}

nghttp2_nv Header(absl::string_view name, absl::string_view value) {
  return {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
          const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
          name.size(), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

// Splits "host:port", "[v6]:port" or "dns:///host:port".
bool SplitTarget(std::string target, std::string& host, std::string& port) {
  if (absl::StartsWith(target, "dns:///")) target = target.substr(7);
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos || colon + 1 == target.size()) return false;
  host = target.substr(0, colon);
  port = target.substr(colon + 1);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  int p;
  return !host.empty() && absl::SimpleAtoi(port, &p) && p > 0 && p < 65536;
}

}  // namespace

struct H2Transport::Connection {
  H2Transport* transport = nullptr;
  std::string target, host, port;
  int index = 0;  // Among the target's connections: picks the address.
  int fd = -1;
  nghttp2_session* session = nullptr;
  std::string out;  // Bytes nghttp2 produced that the socket did not take.
  bool want_out = false;  // EPOLLOUT registered.
  int64_t last_attempt_ns = 0;
  std::string last_error;
};

struct H2Transport::Stream {
  CallSlot* slot = nullptr;
  Connection* conn = nullptr;
  int32_t id = 0;
  uint64_t generation = 0;
  bool open = false;
  int64_t deadline_ns = 0;
  // The request body: gRPC's 5-byte prefix, then the message's three parts.
  char frame_header[5];
  std::string id_field;
  size_t body_size = 0;
  size_t read = 0;  // Bytes nghttp2 has framed.
  size_t sent = 0;  // Bytes written to the connection's output.
  // The answer.
  int http_status = 0;
  int grpc_status = -1;
  std::string grpc_message;
  std::string received;
};

// nghttp2's callbacks, with access to the transport's internals.
struct H2Callbacks {
  using Stream = H2Transport::Stream;
  using Connection = H2Transport::Connection;

  // The stream `id` of connection `c`, if it is still the call in flight.
  static Stream* Find(nghttp2_session* session, Connection* c, int32_t id) {
    auto* s =
        static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
    return s != nullptr && s->open && s->conn == c && s->id == id ? s : nullptr;
  }

  // The request body's bytes [offset, offset + length) appended to `out`.
  static void AppendBody(const RequestPool& pool, const Stream& s,
                         size_t offset, size_t length, std::string& out) {
    const absl::string_view parts[] = {absl::string_view(s.frame_header, 5),
                                       pool.prefix(), s.id_field,
                                       pool.payload(s.slot->entry)};
    for (absl::string_view part : parts) {
      if (length == 0) return;
      if (offset >= part.size()) {
        offset -= part.size();
        continue;
      }
      const size_t n = std::min(part.size() - offset, length);
      out.append(part.data() + offset, n);
      length -= n;
      offset = 0;
    }
  }

  // DATA frames are not copied into nghttp2's buffers: ReadBody only says
  // how much goes in the next frame, and SendData writes the frame header
  // and that much of the body straight into the connection's output.
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t*, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    const size_t n = std::min(length, s->body_size - s->read);
    s->read += n;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->read == s->body_size) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static int SendData(nghttp2_session*, nghttp2_frame* frame,
                      const uint8_t* frame_header, size_t length,
                      nghttp2_data_source* source, void* user_data) {
    auto* c = static_cast<Connection*>(user_data);
    auto* s = static_cast<Stream*>(source->ptr);
    c->out.append(reinterpret_cast<const char*>(frame_header), 9);
    AppendBody(c->transport->pool_, *s, s->sent, length, c->out);
    s->sent += length;
    (void)frame;
    return 0;
  }

  // Gathers nghttp2's other frames into the connection's output; past
  // kSendChunk bytes, asks nghttp2 to wait until they are sent.
  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t length, int,
                      void* user_data) {
    auto* c = static_cast<Connection*>(user_data);
    if (c->out.size() >= kSendChunk) return NGHTTP2_ERR_WOULDBLOCK;
    c->out.append(reinterpret_cast<const char*>(data), length);
    return static_cast<ssize_t>(length);
  }

  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                      const uint8_t* name, size_t namelen, const uint8_t* value,
                      size_t valuelen, uint8_t, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* s =
        Find(session, static_cast<Connection*>(user_data), frame->hd.stream_id);
    if (s == nullptr) return 0;
    const absl::string_view n(reinterpret_cast<const char*>(name), namelen);
    const absl::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      if (!absl::SimpleAtoi(v, &s->http_status)) s->http_status = 0;
    } else if (n == "grpc-status") {
      if (!absl::SimpleAtoi(v, &s->grpc_status)) s->grpc_status = kUnknown;
    } else if (n == "grpc-message") {
      s->grpc_message.assign(v.data(), v.size());
    }
    return 0;
  }

  static int OnData(nghttp2_session* session, uint8_t, int32_t stream_id,
                    const uint8_t* data, size_t len, void* user_data) {
    auto* c = static_cast<Connection*>(user_data);
    Stream* s = Find(session, c, stream_id);
    if (s == nullptr) return 0;
    if (s->received.size() + len > kMaxAnswerBytes) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
                                NGHTTP2_CANCEL);
      c->transport->Finish(*s, kResourceExhausted, "answer larger than 64 MiB");
      return 0;
    }
    s->received.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int OnClose(nghttp2_session* session, int32_t stream_id,
                     uint32_t error_code, void* user_data) {
    auto* c = static_cast<Connection*>(user_data);
    Stream* s = Find(session, c, stream_id);
    if (s == nullptr) return 0;
    if (s->grpc_status < 0 && error_code != NGHTTP2_NO_ERROR) {
      c->transport->Finish(*s, FromResetCode(error_code),
                           absl::StrCat("stream reset by the server: ",
                                        nghttp2_http2_strerror(error_code)));
      return 0;
    }
    c->transport->Complete(*s);
    return 0;
  }
};

H2Transport::H2Transport(const RequestPool& pool, absl::Duration deadline)
    : pool_(pool),
      deadline_ns_(absl::ToInt64Nanoseconds(deadline)),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      read_buffer_(64 << 10, '\0') {}

absl::StatusOr<std::unique_ptr<H2Transport>> H2Transport::Connect(
    const std::vector<std::string>& targets, int connections,
    const RequestPool& pool, absl::Duration deadline,
    absl::Duration connect_timeout) {
  auto t = std::unique_ptr<H2Transport>(new H2Transport(pool, deadline));
  if (t->epoll_fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("epoll_create1: ", std::strerror(errno)));
  }
  t->per_target_ = connections;
  for (const std::string& target : targets) {
    for (int i = 0; i < connections; ++i) {
      auto c = std::make_unique<Connection>();
      c->transport = t.get();
      c->target = target;
      c->index = i;
      if (!SplitTarget(target, c->host, c->port)) {
        return absl::InvalidArgumentError(
            absl::StrCat("target '", target,
                         "' is not host:port, [v6]:port or dns:///host:port"));
      }
      absl::Status s = t->Open(*c, absl::ToInt64Nanoseconds(connect_timeout));
      if (!s.ok()) return s;
      t->connections_.push_back(std::move(c));
    }
  }
  return t;
}

H2Transport::~H2Transport() {
  for (auto& c : draining_) connections_.push_back(std::move(c));
  for (auto& c : connections_) {
    if (c->session != nullptr) nghttp2_session_del(c->session);
    if (c->fd >= 0) close(c->fd);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

absl::Status H2Transport::Open(Connection& c, int64_t timeout_ns) {
  c.last_attempt_ns = NowNs();
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  const int rc =
      getaddrinfo(c.host.c_str(), c.port.c_str(), &hints, &addresses);
  if (rc != 0) {
    c.last_error =
        absl::StrCat("cannot resolve ", c.host, ": ", gai_strerror(rc));
    return absl::UnavailableError(c.last_error);
  }
  std::vector<addrinfo*> candidates;
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    candidates.push_back(a);
  }
  // Connection i starts at address i mod n and falls back to the others.
  std::rotate(
      candidates.begin(),
      candidates.begin() + c.index % std::max<size_t>(1, candidates.size()),
      candidates.end());
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a : candidates) {
    if (fd >= 0) break;
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
      continue;
    }
    pollfd p = {fd, POLLOUT, 0};
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    const int ready = poll(&p, 1, static_cast<int>(timeout_ns / 1'000'000));
    if (ready <= 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 ||
        so_error != 0) {
      error = ready <= 0 ? "timed out" : std::strerror(so_error);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addresses);
  if (fd < 0) {
    c.last_error = absl::StrCat("cannot connect to ", c.target, ": ", error);
    return absl::UnavailableError(c.last_error);
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  nghttp2_session_callbacks* callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_send_callback(callbacks, H2Callbacks::Send);
  nghttp2_session_callbacks_set_send_data_callback(callbacks,
                                                   H2Callbacks::SendData);
  nghttp2_session_callbacks_set_on_header_callback(callbacks,
                                                   H2Callbacks::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      callbacks, H2Callbacks::OnData);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                         H2Callbacks::OnClose);
  nghttp2_option* option;
  nghttp2_option_new(&option);
  // Until the server's SETTINGS arrive, do not assume nghttp2's default
  // limit of 100 streams; the server's own limit applies once they do.
  nghttp2_option_set_peer_max_concurrent_streams(option, 1u << 30);
  nghttp2_session_client_new2(&c.session, callbacks, &c, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kWindow},
  };
  nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(c.session, NGHTTP2_FLAG_NONE, 0,
                                        kWindow);
  c.fd = fd;
  c.out.clear();
  c.want_out = false;
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.ptr = &c;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  Flush(c);
  return absl::OkStatus();
}

void H2Transport::Close(Connection& c, const std::string& why) {
  if (c.fd < 0) return;
  c.last_error = absl::StrCat(c.target, ": ", why);
  for (auto& s : streams_) {
    if (s != nullptr && s->open && s->conn == &c) {
      Finish(*s, kUnavailable, c.last_error);
    }
  }
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
  c.fd = -1;
  nghttp2_session_del(c.session);
  c.session = nullptr;
}

void H2Transport::Replace(size_t k) {
  auto fresh = std::make_unique<Connection>();
  const Connection& old = *connections_[k];
  fresh->transport = this;
  fresh->target = old.target;
  fresh->host = old.host;
  fresh->port = old.port;
  fresh->index = old.index;
  draining_.push_back(std::move(connections_[k]));
  connections_[k] = std::move(fresh);
  Open(*connections_[k], 1'000'000'000).IgnoreError();
}

void H2Transport::Flush(Connection& c) {
  while (c.session != nullptr) {
    if (c.out.size() < kSendChunk) {
      const int rv = nghttp2_session_send(c.session);
      if (rv != 0) {
        Close(c, absl::StrCat("HTTP/2 error: ", nghttp2_strerror(rv)));
        return;
      }
    }
    if (c.out.empty()) break;
    const ssize_t w = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      Close(c, absl::StrCat("send: ", std::strerror(errno)));
      return;
    }
    if (w > 0) c.out.erase(0, w);
    if (!c.out.empty()) {
      if (!c.want_out) {
        epoll_event ev = {};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.ptr = &c;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
        c.want_out = true;
      }
      return;
    }
  }
  if (c.want_out && c.fd >= 0) {
    epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
    c.want_out = false;
  }
  if (c.session != nullptr && !nghttp2_session_want_read(c.session) &&
      !nghttp2_session_want_write(c.session)) {
    Close(c, "the server ended the connection (GOAWAY)");
    c.last_attempt_ns = 0;  // A graceful end: reconnect at once when needed.
  }
}

void H2Transport::Read(Connection& c) {
  while (c.session != nullptr) {
    const ssize_t n = recv(c.fd, read_buffer_.data(), read_buffer_.size(), 0);
    if (n == 0) {
      Close(c, "connection closed by the server");
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      Close(c, absl::StrCat("recv: ", std::strerror(errno)));
      return;
    }
    const ssize_t used = nghttp2_session_mem_recv(
        c.session, reinterpret_cast<const uint8_t*>(read_buffer_.data()), n);
    if (used < 0) {
      Close(c, absl::StrCat("HTTP/2 error: ", nghttp2_strerror(used)));
      return;
    }
  }
  Flush(c);
}

void H2Transport::Finish(Stream& s, int code, std::string message) {
  s.open = false;
  CallSlot& slot = *s.slot;
  slot.status_code = code;
  slot.status_message = std::move(message);
  slot.parsed = false;
  done_.push_back(&slot);
}

void H2Transport::Complete(Stream& s) {
  if (s.http_status != 200) {
    Finish(s,
           s.grpc_status >= 0 ? s.grpc_status : FromHttpStatus(s.http_status),
           s.grpc_status >= 0 ? s.grpc_message
                              : absl::StrCat("HTTP status ", s.http_status));
    return;
  }
  if (s.grpc_status < 0) {
    Finish(s, kUnknown, "the answer has no grpc-status");
    return;
  }
  if (s.grpc_status != kOk) {
    Finish(s, s.grpc_status, s.grpc_message);
    return;
  }
  s.open = false;
  CallSlot& slot = *s.slot;
  slot.status_code = kOk;
  slot.status_message.clear();
  // One uncompressed length-prefixed message, nothing after it.
  const std::string& r = s.received;
  slot.parsed = false;
  if (r.size() >= 5 && r[0] == 0) {
    const uint32_t length = (static_cast<uint8_t>(r[1]) << 24) |
                            (static_cast<uint8_t>(r[2]) << 16) |
                            (static_cast<uint8_t>(r[3]) << 8) |
                            static_cast<uint8_t>(r[4]);
    slot.parsed = r.size() - 5 == length &&
                  slot.response.ParseFromArray(r.data() + 5, length);
  }
  done_.push_back(&slot);
}

void H2Transport::Start(CallSlot& slot) {
  if (static_cast<size_t>(slot.index) >= streams_.size()) {
    streams_.resize(slot.index + 1);
  }
  std::unique_ptr<Stream>& stream = streams_[slot.index];
  if (stream == nullptr) stream = std::make_unique<Stream>();
  Stream& s = *stream;
  const size_t k = slot.target * per_target_ + slot.connection % per_target_;
  if (connections_[k]->session != nullptr &&
      !nghttp2_session_check_request_allowed(connections_[k]->session)) {
    Replace(k);  // The server sent GOAWAY: new calls go elsewhere.
  }
  Connection& c = *connections_[k];
  s.slot = &slot;
  s.conn = &c;
  s.id = 0;
  ++s.generation;
  s.open = true;
  s.read = 0;
  s.sent = 0;
  s.http_status = 0;
  s.grpc_status = -1;
  s.grpc_message.clear();
  s.received.clear();
  s.id_field = RequestPool::IdField(absl::string_view(slot.id, slot.id_size));
  const uint32_t length =
      static_cast<uint32_t>(pool_.prefix().size() + s.id_field.size() +
                            pool_.payload(slot.entry).size());
  s.body_size = 5 + length;
  s.frame_header[0] = 0;
  s.frame_header[1] = static_cast<char>(length >> 24);
  s.frame_header[2] = static_cast<char>(length >> 16);
  s.frame_header[3] = static_cast<char>(length >> 8);
  s.frame_header[4] = static_cast<char>(length);

  if (c.session == nullptr &&
      (NowNs() - c.last_attempt_ns < kReconnectEveryNs ||
       !Open(c, 1'000'000'000).ok())) {
    Finish(s, kUnavailable, c.last_error);
    return;
  }
  char timeout[16];
  size_t nva_size = 6;
  nghttp2_nv nva[7] = {
      Header(":method", "POST"),
      Header(":scheme", "http"),
      Header(":path", ModelInferPath()),
      Header(":authority", c.target),
      Header("content-type", "application/grpc"),
      Header("te", "trailers"),
  };
  if (deadline_ns_ > 0) {
    // grpc-timeout: at most 8 digits and a unit; microseconds up to 100 s.
    const int64_t us = std::max<int64_t>(1, deadline_ns_ / 1000);
    const std::string value =
        us < 100'000'000
            ? absl::StrCat(us, "u")
            : absl::StrCat(std::min<int64_t>(us / 1'000'000, 99'999'999), "S");
    std::memcpy(timeout, value.data(), value.size());
    nva[nva_size++] =
        Header("grpc-timeout", absl::string_view(timeout, value.size()));
    nva[nva_size - 1].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;  // Value copied.
    s.deadline_ns = NowNs() + deadline_ns_;
    deadlines_.emplace_back(&s, s.generation);
  }
  nghttp2_data_provider body;
  body.source.ptr = &s;
  body.read_callback = H2Callbacks::ReadBody;
  const int32_t id =
      nghttp2_submit_request(c.session, nullptr, nva, nva_size, &body, &s);
  if (id < 0) {
    // No more stream ids, or the server sent GOAWAY: reconnect next time.
    Close(c, absl::StrCat("cannot start a stream: ", nghttp2_strerror(id)));
    if (s.open) Finish(s, kUnavailable, c.last_error);
    return;
  }
  s.id = id;
}

void H2Transport::ExpireDeadlines(int64_t now_ns) {
  while (!deadlines_.empty()) {
    auto [s, generation] = deadlines_.front();
    if (s->generation == generation && s->open) {
      if (s->deadline_ns > now_ns) return;
      if (s->conn->session != nullptr && s->id > 0) {
        nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_CANCEL);
      }
      Finish(*s, kDeadlineExceeded, "Deadline Exceeded");
    }
    deadlines_.pop_front();
  }
}

CallSlot* H2Transport::Next(int64_t timeout_ns) {
  auto take = [this]() -> CallSlot* {
    if (done_head_ == done_.size()) {
      done_.clear();
      done_head_ = 0;
      return nullptr;
    }
    return done_[done_head_++];
  };
  if (CallSlot* slot = take()) return slot;
  for (auto& c : connections_) Flush(*c);
  for (auto& c : draining_) Flush(*c);
  // A draining connection is closed once its last call is done.
  draining_.erase(std::remove_if(draining_.begin(), draining_.end(),
                                 [](const auto& c) { return c->fd < 0; }),
                  draining_.end());
  int64_t now = NowNs();
  ExpireDeadlines(now);
  if (CallSlot* slot = take()) return slot;

  if (!deadlines_.empty()) {
    timeout_ns =
        std::min(timeout_ns, deadlines_.front().first->deadline_ns - now);
  }
  timeout_ns = std::max<int64_t>(timeout_ns, 0);
  epoll_event events[16];
  const timespec ts = {static_cast<time_t>(timeout_ns / 1'000'000'000),
                       static_cast<long>(timeout_ns % 1'000'000'000)};
  int n = epoll_pwait2(epoll_fd_, events, 16, &ts, nullptr);
  if (n < 0 && errno == ENOSYS) {
    // Kernels before 5.11: millisecond waits, rounded up.
    n = epoll_wait(epoll_fd_, events, 16,
                   static_cast<int>((timeout_ns + 999'999) / 1'000'000));
  }
  for (int i = 0; i < n; ++i) {
    auto* c = static_cast<Connection*>(events[i].data.ptr);
    if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Read(*c);
    if (events[i].events & EPOLLOUT) Flush(*c);
  }
  ExpireDeadlines(NowNs());
  return take();
}

void H2Transport::CancelAll() {
  for (auto& s : streams_) {
    if (s == nullptr || !s->open) continue;
    if (s->conn->session != nullptr && s->id > 0) {
      nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id,
                                NGHTTP2_CANCEL);
    }
    Finish(*s, kCancelled, "Cancelled");
  }
  for (auto& c : connections_) Flush(*c);
}

}  // namespace rnn::loadgen
