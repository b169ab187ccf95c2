// Server metrics: the server's own view of a load-test step, from two scrapes
// of rnn-server's Prometheus /metrics page (README.md, "Metrics").
//
// A scrape reads the running sums and counts of the server's histograms and
// counters; the difference of two scrapes, taken at a step's start and end,
// gives that step's mean queue, compute and request times, mean batch size,
// and how many requests and sequences the server finished in between.
//
// Example:
//   absl::StatusOr<HttpUrl> url =
//       ParseHttpUrl("http://127.0.0.1:8002/metrics");
//   if (!url.ok()) return url.status();
//   absl::StatusOr<MetricsSnapshot> before =
//       ScrapeMetrics(*url, "rnn", absl::Seconds(2));
//   StepResult result = {};  // LoadRunner::RunStep runs the step here
//   absl::StatusOr<MetricsSnapshot> after =
//       ScrapeMetrics(*url, "rnn", absl::Seconds(2));
//   if (before.ok() && after.ok()) result.server = Breakdown(*before, *after);
//
// Only plain HTTP is spoken (no TLS, no redirects, no proxies): rnn-server's
// metrics port serves plain HTTP.
//
// Thread-safety: every function here is safe to call concurrently; none keeps
// state between calls.
#ifndef RNN_CLIENT_LOADGEN_SERVER_METRICS_H_
#define RNN_CLIENT_LOADGEN_SERVER_METRICS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/loadgen/step_result.h"

namespace rnn::loadgen {

// A parsed http://host[:port][/path] URL.
struct HttpUrl {
  // A DNS name, an IPv4 literal, or an IPv6 literal *without* its brackets
  // ("::1" for http://[::1]:8002/).
  std::string host;
  int port = 80;  // 1 to 65535; 80 when the URL gives none.
  // Starts with '/'; "/" when the URL gives none. Includes any "?query";
  // never a "#fragment".
  std::string path = "/";
};

// Parses `url`, which must be http://host[:port][/path] (the scheme in any
// case). Errors are InvalidArgument naming the problem: another scheme
// (https is not supported), an empty host, user info ("user@"), an IPv6
// literal without brackets, an empty, non-numeric or out-of-range port.
//
// Example: ParseHttpUrl("http://[::1]:8002/metrics") gives
//   {.host = "::1", .port = 8002, .path = "/metrics"}.
absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url);

// GETs `url` over plain HTTP (an HTTP/1.0 request with "Connection: close",
// so that no server may answer with chunked encoding) and returns the body of
// a 200 response.
//
// `host` is resolved with getaddrinfo (IPv4 and IPv6); each address is tried
// in turn until one connects. `timeout` bounds connecting, sending and
// receiving together; name resolution is not bounded by it (getaddrinfo
// cannot be interrupted), which matters only for DNS names, not IP literals.
//
// Errors, each naming host:port:
//   Unavailable: the name does not resolve, no address accepts the
//     connection (e.g. "Connection refused"), or the connection fails or
//     closes before the whole response arrived.
//   DeadlineExceeded: `timeout` passed first.
//   NotFound: the server answered 404; the message holds the status line.
//   FailedPrecondition: any other status but 200 (the status line again),
//     or a response that is not HTTP/1.x or is chunked.
//   ResourceExhausted: a response over 64 MiB.
absl::StatusOr<std::string> HttpGet(const HttpUrl& url, absl::Duration timeout);

// The sum and the count of one Prometheus histogram (its `_sum` and `_count`
// series), in the histogram's own unit.
struct HistogramTotals {
  double sum = 0;
  double count = 0;
};

// The running totals one breakdown needs, read from one scrape. All values
// count from the server's start; a breakdown is the difference of two.
struct MetricsSnapshot {
  HistogramTotals request_duration_s;  // rnn_request_duration_seconds
  HistogramTotals queue_duration_s;    // rnn_queue_duration_seconds
  HistogramTotals compute_duration_s;  // rnn_compute_duration_seconds
  HistogramTotals batch_size;          // rnn_batch_size, rows
  double requests_ok = 0;              // rnn_requests_total{code="OK"}
  double sequences = 0;                // rnn_sequences_total

  // True when the page holds any rnn_* series, whatever its model: the page
  // is an rnn-server's.
  bool has_rnn_metrics = false;
  // The distinct `model` labels of the page's rnn_* series, sorted: tells
  // "the server serves another model" from "not an rnn-server".
  std::vector<std::string> models;
};

// Parses a Prometheus text exposition (format 0.0.4, as prometheus-cpp
// writes it): blank lines, comments and # HELP / # TYPE lines are skipped;
// every other line must be a sample, `name{label="value",...} value
// [timestamp]`, with label values that may hold \\, \" and \n escapes, values
// in any floating-point form or +Inf, -Inf, NaN (any case), and an optional
// integer timestamp, which is ignored.
//
// Only series whose `model` label equals `model` are counted (every series
// when `model` is empty); several counted series of one family (e.g. one per
// `version`) are summed.
//
// Errors: InvalidArgument naming the first malformed line by number. A page
// with no rnn_* series is not an error here: `has_rnn_metrics` is false.
absl::StatusOr<MetricsSnapshot> ParseMetrics(absl::string_view text,
                                             absl::string_view model);

// The server's view of the interval between two snapshots of one server:
// means of the histograms' increases (mean queue time per queued request,
// mean compute time per batch, mean request time, in microseconds; mean rows
// per batch) and the increases of the OK-request and sequence counters. A
// mean over no observations is 0.
//
// If a histogram's count or a counter went down, the server restarted between
// the scrapes and `after` alone is the increase (as Prometheus's increase()
// assumes).
//
// Example: queue sums 0.002 s and 0.012 s at counts 20 and 120 give
// queue_us = 0.010 s / 100 = 100.
ServerBreakdown Breakdown(const MetricsSnapshot& before,
                          const MetricsSnapshot& after);

// HttpGet(url, timeout), then ParseMetrics(body, model). Beyond their
// errors (prefixed with the URL):
//   FailedPrecondition: the page holds no rnn_* series (not an rnn-server's
//     /metrics page).
//   NotFound: it does, but none for `model` (the message lists the models it
//     has). Never when `model` is empty.
absl::StatusOr<MetricsSnapshot> ScrapeMetrics(const HttpUrl& url,
                                              absl::string_view model,
                                              absl::Duration timeout);

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_SERVER_METRICS_H_
