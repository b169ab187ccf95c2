// The plan of a load test: which steps a sweep runs, when an open-loop
// sender sends, and when a step's measurements have settled.
//
// Example:
//   absl::StatusOr<std::vector<double>> concurrencies =
//       ParseSweep("1:64:x2", /*integers=*/true);  // 1, 2, 4, ..., 64
//   if (!concurrencies.ok()) return concurrencies.status();
//   absl::StatusOr<std::vector<double>> rates =
//       ParseSweep("1000:5000:+1000", /*integers=*/false);  // 1000, ..., 5000
//   if (!rates.ok()) return rates.status();
//   const int64_t t0 = 0;  // now, in ns on the sender's clock
//   ArrivalSchedule schedule(Arrivals::kPoisson, 2000, /*seed=*/1, t0);
//   // Intended send times of the first two requests, 0.5 ms apart on average:
//   std::vector<int64_t> send_ns = {schedule.Next(), schedule.Next()};
//   // Throughput (req/s) and p99 (µs) of the windows measured so far:
//   std::vector<WindowFigures> windows = {{2000, 900}, {2010, 950}};
//   if (!IsStable(windows, /*percent=*/10)) {
//     // Fewer than three windows, or not within 10%: measure another.
//   }
//
// Thread-safety: the functions are pure; an ArrivalSchedule belongs to one
// thread.
#ifndef RNN_CLIENT_LOADGEN_LOAD_PLAN_H_
#define RNN_CLIENT_LOADGEN_LOAD_PLAN_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace rnn::loadgen {

// Parses a step list: "V" (one step), "START:END:xF" (geometric, factor
// F > 1) or "START:END:+D" (arithmetic, D > 0). END is included when the
// progression lands on it, and is always the last step when the progression
// would skip past it. Values must be positive; when `integers`, whole
// numbers. At most 1000 steps. InvalidArgument naming the problem otherwise.
absl::StatusOr<std::vector<double>> ParseSweep(absl::string_view spec,
                                               bool integers);

enum class Arrivals { kConstant, kPoisson };

// "constant" or "poisson".
absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name);
const char* ArrivalsName(Arrivals arrivals);

// Intended send times of an open-loop sender, in nanoseconds on the caller's
// clock: evenly spaced 1/rate apart (kConstant), or with exponentially
// distributed gaps of mean 1/rate (kPoisson, a Poisson process; the
// sequence depends only on `seed`). The first time is start_ns + one gap
// (kConstant: start_ns + phase, phase in [0, 1) of a gap, so that several
// senders sharing a rate interleave).
class ArrivalSchedule {
 public:
  ArrivalSchedule(Arrivals arrivals, double rate_per_s, uint64_t seed,
                  int64_t start_ns, double phase = 0);

  // The next intended send time; each call advances the schedule.
  int64_t Next();

 private:
  Arrivals arrivals_;
  double gap_ns_;
  double next_ns_;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> exponential_;
};

// The figures of one measurement window that must settle.
struct WindowFigures {
  double throughput_rps = 0;
  double p99_us = 0;
};

// perf_analyzer's stability rule: true when there are at least three
// windows and, over the last three, throughput and p99 latency each stay
// within `percent`% of their three-window mean.
bool IsStable(absl::Span<const WindowFigures> windows, double percent);

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_LOAD_PLAN_H_
