#include "client/loadgen/server_metrics.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rnn::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

// rnn-server's page is about 9 KB; a response this large is not a metrics
// page, and reading it all would only waste memory.
constexpr size_t kMaxResponseBytes = 64 << 20;

std::string ErrnoText(int error) {
  // std::generic_category, unlike strerror, is thread-safe.
  return std::generic_category().message(error);
}

// "host:port", with an IPv6 host in brackets.
std::string HostPort(const HttpUrl& url) {
  if (absl::StrContains(url.host, ':')) {
    return absl::StrCat("[", url.host, "]:", url.port);
  }
  return absl::StrCat(url.host, ":", url.port);
}

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits until `fd` is ready for `events` (or has an error, which the next
// call on it reports), or until `deadline`.
absl::Status WaitFor(int fd, short events, Clock::time_point deadline,
                     absl::string_view what, absl::Duration timeout) {
  for (;;) {
    const Clock::duration left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      return absl::DeadlineExceededError(absl::StrCat(
          what, ": no answer within ", absl::FormatDuration(timeout)));
    }
    // Rounded up, so that poll never wakes just short of the deadline and
    // spins.
    const int64_t left_ms =
        std::chrono::ceil<std::chrono::milliseconds>(left).count();
    pollfd p{fd, events, 0};
    const int n =
        poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, INT_MAX)));
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) {
      return absl::UnavailableError(
          absl::StrCat(what, ": poll: ", ErrnoText(errno)));
    }
  }
}

// Connects to the first of `url.host`'s addresses that accepts.
absl::StatusOr<ScopedFd> Connect(const HttpUrl& url, Clock::time_point deadline,
                                 absl::string_view what,
                                 absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(url.host.c_str(), std::to_string(url.port).c_str(),
                             &hints, &list);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat(
        what, ": cannot resolve ", url.host, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(list, freeaddrinfo);
  std::string last_error = "no address";
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    ScopedFd fd(socket(ai->ai_family,
                       ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol));
    if (fd.get() < 0) {
      last_error = ErrnoText(errno);
      continue;
    }
    // A non-blocking connect interrupted by a signal goes on in the
    // background, as one in progress does.
    if (connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS && errno != EINTR) {
      last_error = ErrnoText(errno);
      continue;
    }
    absl::Status ready = WaitFor(fd.get(), POLLOUT, deadline, what, timeout);
    if (!ready.ok()) return ready;
    int error = 0;
    socklen_t length = sizeof(error);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
      error = errno;
    }
    if (error == 0) return fd;
    last_error = ErrnoText(error);
  }
  return absl::UnavailableError(absl::StrCat(what, ": cannot connect to ",
                                             HostPort(url), ": ", last_error));
}

// The status line and the headers that matter of a response.
struct ResponseHead {
  std::string status_line;
  int status = 0;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  size_t body_start = 0;  // Offset of the body in the response.
};

// Parses the head of `response`; nullopt while it has not all arrived.
absl::StatusOr<std::optional<ResponseHead>> ParseHead(
    absl::string_view response, absl::string_view what) {
  const size_t end = response.find("\r\n\r\n");
  if (end == absl::string_view::npos) return std::nullopt;
  std::vector<absl::string_view> lines =
      absl::StrSplit(response.substr(0, end), "\r\n");
  ResponseHead head;
  head.status_line = std::string(lines[0]);
  head.body_start = end + 4;
  // "HTTP/1.1 200 OK": the code is always three digits at offset 9.
  const absl::string_view line = lines[0];
  if (!absl::StartsWith(line, "HTTP/1.") || line.size() < 12 ||
      line[8] != ' ' || !absl::SimpleAtoi(line.substr(9, 3), &head.status) ||
      (line.size() > 12 && line[12] != ' ')) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": not an HTTP/1.x response: \"",
                     absl::CEscape(line.substr(0, 80)), "\""));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::pair<absl::string_view, absl::string_view> field =
        absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
    const absl::string_view name = absl::StripAsciiWhitespace(field.first);
    const absl::string_view value = absl::StripAsciiWhitespace(field.second);
    if (absl::EqualsIgnoreCase(name, "Content-Length")) {
      uint64_t length = 0;
      if (!absl::SimpleAtoi(value, &length)) {
        return absl::FailedPreconditionError(
            absl::StrCat(what, ": bad Content-Length \"",
                         absl::CEscape(value.substr(0, 40)), "\""));
      }
      head.content_length = length;
    } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      head.chunked = absl::StrContains(absl::AsciiStrToLower(value), "chunked");
    }
  }
  return head;
}

// Reads the response until the server closes the connection or the body
// given by Content-Length is complete.
absl::StatusOr<std::string> ReadResponse(int fd, Clock::time_point deadline,
                                         absl::string_view what,
                                         absl::Duration timeout,
                                         const std::string& host_port) {
  std::string response;
  std::optional<ResponseHead> head;
  char buffer[16384];
  for (;;) {
    if (!head.has_value()) {
      absl::StatusOr<std::optional<ResponseHead>> parsed =
          ParseHead(response, what);
      if (!parsed.ok()) return parsed.status();
      head = *std::move(parsed);
    }
    if (head.has_value() && head->content_length.has_value() &&
        response.size() - head->body_start >= *head->content_length) {
      break;
    }
    absl::Status ready = WaitFor(fd, POLLIN, deadline, what, timeout);
    if (!ready.ok()) return ready;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat(
          what, ": receiving from ", host_port, ": ", ErrnoText(errno)));
    }
    response.append(buffer, static_cast<size_t>(n));
    if (response.size() > kMaxResponseBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(what, ": response over ", kMaxResponseBytes, " bytes"));
    }
  }
  if (!head.has_value()) {
    if (response.empty()) {
      return absl::UnavailableError(absl::StrCat(
          what, ": ", host_port, " closed the connection without answering"));
    }
    // Never a complete head: an HTTP server's answer cut short, or not an
    // HTTP server at all.
    if (absl::StartsWith(response, "HTTP/")) {
      return absl::UnavailableError(absl::StrCat(
          what, ": ", host_port, " closed the connection mid-response"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": not an HTTP response: \"",
                     absl::CEscape(response.substr(0, 80)), "\""));
  }
  if (head->status == 404) {
    return absl::NotFoundError(absl::StrCat(what, ": ", head->status_line));
  }
  if (head->status != 200) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", head->status_line));
  }
  if (head->chunked) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": chunked response to an HTTP/1.0 request (not supported)"));
  }
  std::string body = response.substr(head->body_start);
  if (head->content_length.has_value()) {
    if (body.size() < *head->content_length) {
      return absl::UnavailableError(absl::StrCat(
          what, ": ", host_port, " closed the connection after ", body.size(),
          " of ", *head->content_length, " body bytes"));
    }
    body.resize(*head->content_length);
  }
  return body;
}

// A line of the exposition that is a sample.
struct Sample {
  absl::string_view name;
  std::vector<std::pair<absl::string_view, std::string>> labels;
  double value = 0;

  const std::string* Label(absl::string_view label) const {
    for (const auto& [key, text] : labels) {
      if (key == label) return &text;
    }
    return nullptr;
  }
};

bool IsNameStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || absl::ascii_isdigit(c); }

// Parses one sample line; the error says what is wrong, not where.
absl::StatusOr<Sample> ParseSample(absl::string_view line) {
  Sample sample;
  size_t i = 0;
  const size_t n = line.size();
  auto skip_blanks = [&] {
    while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
  };
  auto error = [](absl::string_view why) {
    return absl::InvalidArgumentError(why);
  };

  // Metric names may also hold ':' (recording rules); label names may not.
  if (i == n || !(IsNameStart(line[i]) || line[i] == ':')) {
    return error("expected a metric name");
  }
  const size_t name_start = i;
  while (i < n && (IsNameChar(line[i]) || line[i] == ':')) ++i;
  sample.name = line.substr(name_start, i - name_start);
  skip_blanks();

  if (i < n && line[i] == '{') {
    ++i;
    for (;;) {
      skip_blanks();
      if (i < n && line[i] == '}') {
        ++i;
        break;
      }
      if (i == n || !IsNameStart(line[i])) {
        return error("expected a label name or '}'");
      }
      const size_t label_start = i;
      while (i < n && IsNameChar(line[i])) ++i;
      const absl::string_view label = line.substr(label_start, i - label_start);
      skip_blanks();
      if (i == n || line[i] != '=') {
        return error(absl::StrCat("expected '=' after label ", label));
      }
      ++i;
      skip_blanks();
      if (i == n || line[i] != '"') {
        return error(absl::StrCat("expected '\"' opening label ", label));
      }
      ++i;
      std::string value;
      for (;;) {
        if (i == n) {
          return error(absl::StrCat("unterminated value of label ", label));
        }
        const char c = line[i++];
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        const char escaped = i < n ? line[i++] : '\0';
        if (escaped == '\\' || escaped == '"') {
          value += escaped;
        } else if (escaped == 'n') {
          value += '\n';
        } else {
          return error(absl::StrCat("bad escape in label ", label));
        }
      }
      sample.labels.emplace_back(label, std::move(value));
      skip_blanks();
      if (i < n && line[i] == ',') {
        ++i;
      } else if (i < n && line[i] == '}') {
        ++i;
        break;
      } else {
        return error(absl::StrCat("expected ',' or '}' after label ", label));
      }
    }
  }

  const std::vector<absl::string_view> fields =
      absl::StrSplit(line.substr(i), absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (fields.empty()) return error("no value");
  if (fields.size() > 2) return error("text after the timestamp");
  // SimpleAtod takes "+Inf", "-Inf" and "NaN" in any case (prometheus-cpp
  // writes "Nan").
  if (!absl::SimpleAtod(fields[0], &sample.value)) {
    return error(absl::StrCat("bad value \"", absl::CEscape(fields[0]), "\""));
  }
  int64_t timestamp_ms = 0;
  if (fields.size() == 2 && !absl::SimpleAtoi(fields[1], &timestamp_ms)) {
    return error(
        absl::StrCat("bad timestamp \"", absl::CEscape(fields[1]), "\""));
  }
  return sample;
}

// The increase of a running total; a decrease means the server restarted
// in between and counted `after` since.
double Increase(double before, double after) {
  return after >= before ? after - before : after;
}

double MeanOfIncrease(const HistogramTotals& before,
                      const HistogramTotals& after) {
  const bool restarted = after.count < before.count;
  const double sum = restarted ? after.sum : after.sum - before.sum;
  const double count = restarted ? after.count : after.count - before.count;
  return count > 0 ? sum / count : 0;
}

}  // namespace

absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url) {
  auto bad = [url](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad URL \"", absl::CEscape(url), "\": ", why));
  };
  constexpr absl::string_view kScheme = "http://";
  if (absl::StartsWithIgnoreCase(url, "https://")) {
    return bad("https is not supported; use http://");
  }
  if (!absl::StartsWithIgnoreCase(url, kScheme)) {
    return bad("expected http://host[:port][/path]");
  }
  absl::string_view rest = url.substr(kScheme.size());
  // The fragment is for the client alone; it is never sent.
  rest = rest.substr(0, rest.find('#'));
  const size_t authority_end = rest.find_first_of("/?");
  const absl::string_view authority = rest.substr(0, authority_end);

  HttpUrl result;
  if (authority_end != absl::string_view::npos) {
    const absl::string_view path = rest.substr(authority_end);
    result.path = path[0] == '/' ? std::string(path) : absl::StrCat("/", path);
  }
  if (absl::StrContains(authority, '@')) {
    return bad("user info (user@host) is not supported");
  }

  std::optional<absl::string_view> port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return bad("no ']' closing the IPv6 address");
    }
    result.host = std::string(authority.substr(1, close - 1));
    const absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("expected ':port' after ']'");
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    if (colon != absl::string_view::npos &&
        authority.find(':', colon + 1) != absl::string_view::npos) {
      return bad("an IPv6 address needs brackets: http://[::1]:8002/");
    }
    result.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port = authority.substr(colon + 1);
  }
  if (result.host.empty()) return bad("empty host");

  if (port.has_value()) {
    if (port->empty()) return bad("empty port");
    // SimpleAtoi would also take a sign or blanks; a port is digits only.
    const bool digits = std::all_of(port->begin(), port->end(), [](char c) {
      return absl::ascii_isdigit(c);
    });
    if (!digits || !absl::SimpleAtoi(*port, &result.port) || result.port < 1 ||
        result.port > 65535) {
      return bad(absl::StrCat("port \"", absl::CEscape(*port),
                              "\" is not a number from 1 to 65535"));
    }
  }
  return result;
}

absl::StatusOr<std::string> HttpGet(const HttpUrl& url,
                                    absl::Duration timeout) {
  const Clock::time_point deadline =
      Clock::now() + absl::ToChronoNanoseconds(timeout);
  const std::string host_port = HostPort(url);
  const std::string what = absl::StrCat("GET http://", host_port, url.path);

  absl::StatusOr<ScopedFd> fd = Connect(url, deadline, what, timeout);
  if (!fd.ok()) return fd.status();

  // HTTP/1.0, so that the answer cannot be chunked; Connection: close for
  // servers that would keep a 1.0 connection open anyway.
  const std::string request =
      absl::StrCat("GET ", url.path, " HTTP/1.0\r\nHost: ", host_port,
                   "\r\nUser-Agent: rnn-loadgen\r\nAccept: text/plain\r\n"
                   "Connection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    absl::Status ready = WaitFor(fd->get(), POLLOUT, deadline, what, timeout);
    if (!ready.ok()) return ready;
    // MSG_NOSIGNAL: a peer that closed early must give an error, not SIGPIPE.
    const ssize_t n = send(fd->get(), request.data() + sent,
                           request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat(
          what, ": sending to ", host_port, ": ", ErrnoText(errno)));
    }
    sent += static_cast<size_t>(n);
  }
  return ReadResponse(fd->get(), deadline, what, timeout, host_port);
}

absl::StatusOr<MetricsSnapshot> ParseMetrics(absl::string_view text,
                                             absl::string_view model) {
  MetricsSnapshot snapshot;
  // The families read, by the series name that carries each total.
  const std::pair<absl::string_view, double*> totals[] = {
      {"rnn_request_duration_seconds_sum", &snapshot.request_duration_s.sum},
      {"rnn_request_duration_seconds_count",
       &snapshot.request_duration_s.count},
      {"rnn_queue_duration_seconds_sum", &snapshot.queue_duration_s.sum},
      {"rnn_queue_duration_seconds_count", &snapshot.queue_duration_s.count},
      {"rnn_compute_duration_seconds_sum", &snapshot.compute_duration_s.sum},
      {"rnn_compute_duration_seconds_count",
       &snapshot.compute_duration_s.count},
      {"rnn_batch_size_sum", &snapshot.batch_size.sum},
      {"rnn_batch_size_count", &snapshot.batch_size.count},
      {"rnn_requests_total", &snapshot.requests_ok},
      {"rnn_sequences_total", &snapshot.sequences},
  };
  std::set<std::string> models;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    const absl::string_view content = absl::StripLeadingAsciiWhitespace(line);
    if (content.empty() || content[0] == '#') continue;

    absl::StatusOr<Sample> sample = ParseSample(content);
    if (!sample.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, " (\"", absl::CEscape(line.substr(0, 80)),
          "\"): ", sample.status().message()));
    }
    if (!absl::StartsWith(sample->name, "rnn_")) continue;
    snapshot.has_rnn_metrics = true;
    const std::string* series_model = sample->Label("model");
    if (series_model != nullptr) models.insert(*series_model);
    if (!model.empty() && (series_model == nullptr || *series_model != model)) {
      continue;
    }
    if (sample->name == "rnn_requests_total") {
      const std::string* code = sample->Label("code");
      if (code == nullptr || *code != "OK") continue;
    }
    for (const auto& [name, total] : totals) {
      if (sample->name != name) continue;
      // A total that is not finite would make every difference meaningless.
      if (!std::isfinite(sample->value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": ", name, " is not finite"));
      }
      *total += sample->value;
    }
  }
  snapshot.models.assign(models.begin(), models.end());
  return snapshot;
}

ServerBreakdown Breakdown(const MetricsSnapshot& before,
                          const MetricsSnapshot& after) {
  constexpr double kMicrosPerSecond = 1e6;
  ServerBreakdown breakdown;
  breakdown.queue_us =
      MeanOfIncrease(before.queue_duration_s, after.queue_duration_s) *
      kMicrosPerSecond;
  breakdown.compute_us =
      MeanOfIncrease(before.compute_duration_s, after.compute_duration_s) *
      kMicrosPerSecond;
  breakdown.request_us =
      MeanOfIncrease(before.request_duration_s, after.request_duration_s) *
      kMicrosPerSecond;
  breakdown.batch_size = MeanOfIncrease(before.batch_size, after.batch_size);
  breakdown.requests_ok = static_cast<int64_t>(
      std::llround(Increase(before.requests_ok, after.requests_ok)));
  breakdown.sequences = static_cast<int64_t>(
      std::llround(Increase(before.sequences, after.sequences)));
  return breakdown;
}

absl::StatusOr<MetricsSnapshot> ScrapeMetrics(const HttpUrl& url,
                                              absl::string_view model,
                                              absl::Duration timeout) {
  absl::StatusOr<std::string> body = HttpGet(url, timeout);
  if (!body.ok()) return body.status();
  const std::string where = absl::StrCat("http://", HostPort(url), url.path);
  absl::StatusOr<MetricsSnapshot> snapshot = ParseMetrics(*body, model);
  if (!snapshot.ok()) {
    return absl::Status(snapshot.status().code(),
                        absl::StrCat(where, ": ", snapshot.status().message()));
  }
  if (!snapshot->has_rnn_metrics) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": no rnn_* metrics; is this an rnn-server's metrics port?"));
  }
  if (!model.empty() && !std::binary_search(snapshot->models.begin(),
                                            snapshot->models.end(), model)) {
    return absl::NotFoundError(absl::StrCat(
        where, ": no metrics for model \"", model, "\"; the server has: ",
        snapshot->models.empty() ? "none"
                                 : absl::StrJoin(snapshot->models, ", ")));
  }
  return snapshot;
}

}  // namespace rnn::loadgen
