#include "client/loadgen/step_result.h"

namespace rnn::loadgen {

const char* LoadModeName(LoadMode mode) {
  return mode == LoadMode::kClosed ? "closed" : "open";
}

LatencySummary LatencySummary::Of(const LatencyHistogram& histogram) {
  LatencySummary s;
  s.mean_us = histogram.mean_ns() / 1e3;
  s.p50_us = histogram.Percentile(50) / 1e3;
  s.p90_us = histogram.Percentile(90) / 1e3;
  s.p95_us = histogram.Percentile(95) / 1e3;
  s.p99_us = histogram.Percentile(99) / 1e3;
  s.p999_us = histogram.Percentile(99.9) / 1e3;
  s.max_us = static_cast<double>(histogram.max_ns()) / 1e3;
  return s;
}

int64_t StepResult::error_count() const {
  int64_t n = 0;
  for (const auto& [code, count] : errors) n += count;
  return n;
}

}  // namespace rnn::loadgen
