#include "client/loadgen/load_plan.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rnn::loadgen {
namespace {

constexpr size_t kMaxSteps = 1000;

absl::StatusOr<double> ParseValue(absl::string_view text,
                                  absl::string_view what, bool integers,
                                  absl::string_view spec) {
  double value;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", spec, "': ", what, " '", text, "' is not a number"));
  }
  if (value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", spec, "': ", what, " must be positive"));
  }
  if (integers && value != std::floor(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", spec, "': ", what, " must be a whole number"));
  }
  return value;
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseSweep(absl::string_view spec,
                                               bool integers) {
  const std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  if (parts.size() == 1) {
    absl::StatusOr<double> v = ParseValue(parts[0], "value", integers, spec);
    if (!v.ok()) return v.status();
    return std::vector<double>{*v};
  }
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", spec, "': expected VALUE, START:END:xFACTOR or START:END:+STEP"));
  }
  absl::StatusOr<double> start = ParseValue(parts[0], "start", integers, spec);
  if (!start.ok()) return start.status();
  absl::StatusOr<double> end = ParseValue(parts[1], "end", integers, spec);
  if (!end.ok()) return end.status();
  if (*end < *start) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", spec, "': end is below start"));
  }
  const absl::string_view step = parts[2];
  const bool geometric = absl::StartsWith(step, "x");
  if (!geometric && !absl::StartsWith(step, "+")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", spec, "': the step must be xFACTOR (x2) or +INCREMENT (+1)"));
  }
  absl::StatusOr<double> by =
      ParseValue(step.substr(1), geometric ? "factor" : "increment",
                 integers && !geometric, spec);
  if (!by.ok()) return by.status();
  if (geometric && *by <= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", spec, "': the factor must be above 1"));
  }
  std::vector<double> values;
  // A relative tolerance keeps 0.1-steps from missing END by rounding.
  const double tolerance = *end * 1e-9;
  for (double v = *start; v <= *end + tolerance;
       v = geometric ? v * *by : v + *by) {
    const double value = integers ? std::round(v) : v;
    if (values.empty() || value != values.back()) values.push_back(value);
    if (values.size() > kMaxSteps) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", spec, "': more than ", kMaxSteps, " steps"));
    }
  }
  if (std::abs(values.back() - *end) > tolerance) values.push_back(*end);
  return values;
}

absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name) {
  if (name == "constant") return Arrivals::kConstant;
  if (name == "poisson") return Arrivals::kPoisson;
  return absl::InvalidArgumentError(absl::StrCat(
      "arrivals must be 'constant' or 'poisson', not '", name, "'"));
}

const char* ArrivalsName(Arrivals arrivals) {
  return arrivals == Arrivals::kConstant ? "constant" : "poisson";
}

ArrivalSchedule::ArrivalSchedule(Arrivals arrivals, double rate_per_s,
                                 uint64_t seed, int64_t start_ns, double phase)
    : arrivals_(arrivals),
      gap_ns_(1e9 / rate_per_s),
      next_ns_(static_cast<double>(start_ns)),
      rng_(seed),
      exponential_(1.0) {
  if (arrivals_ == Arrivals::kConstant) next_ns_ += phase * gap_ns_;
}

int64_t ArrivalSchedule::Next() {
  // Times are kept in double so that fractional gaps (3 requests per
  // microsecond...) do not drift; a double holds ns exactly for 104 days.
  next_ns_ +=
      arrivals_ == Arrivals::kConstant ? gap_ns_ : gap_ns_ * exponential_(rng_);
  return static_cast<int64_t>(next_ns_);
}

bool IsStable(absl::Span<const WindowFigures> windows, double percent) {
  if (windows.size() < 3) return false;
  const absl::Span<const WindowFigures> last = windows.last(3);
  auto within = [&](auto figure) {
    double mean = 0;
    for (const WindowFigures& w : last) mean += figure(w) / 3;
    for (const WindowFigures& w : last) {
      if (std::abs(figure(w) - mean) > mean * percent / 100) return false;
    }
    return true;
  };
  return within([](const WindowFigures& w) { return w.throughput_rps; }) &&
         within([](const WindowFigures& w) { return w.p99_us; });
}

}  // namespace rnn::loadgen
