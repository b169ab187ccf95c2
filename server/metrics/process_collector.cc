#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace rnn {
namespace {

// The fields of <proc>/self/stat used here (proc(5)), in clock ticks, bytes
// and pages.
struct ProcessStat {
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t starttime_ticks = 0;  // After boot.
  uint64_t vsize_bytes = 0;
  uint64_t rss_pages = 0;
};

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::optional<ProcessStat> ParseProcessStat(absl::string_view stat) {
  // The command name (field 2) is in parentheses and may itself hold spaces
  // and parentheses; fields are counted from after its last ')'.
  const size_t paren = stat.rfind(')');
  if (paren == absl::string_view::npos) return std::nullopt;
  const std::vector<absl::string_view> fields = absl::StrSplit(
      stat.substr(paren + 1), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  constexpr size_t kUtime = 14 - 3, kStime = 15 - 3, kStarttime = 22 - 3,
                   kVsize = 23 - 3, kRss = 24 - 3;
  ProcessStat parsed;
  if (fields.size() <= kRss ||
      !absl::SimpleAtoi(fields[kUtime], &parsed.utime_ticks) ||
      !absl::SimpleAtoi(fields[kStime], &parsed.stime_ticks) ||
      !absl::SimpleAtoi(fields[kStarttime], &parsed.starttime_ticks) ||
      !absl::SimpleAtoi(fields[kVsize], &parsed.vsize_bytes) ||
      !absl::SimpleAtoi(fields[kRss], &parsed.rss_pages)) {
    return std::nullopt;
  }
  return parsed;
}

// The "btime" line of <proc>/stat: boot time, in seconds since the epoch.
std::optional<uint64_t> ParseBootTime(absl::string_view stat) {
  for (absl::string_view line : absl::StrSplit(stat, '\n')) {
    uint64_t btime;
    if (absl::ConsumePrefix(&line, "btime ") &&
        absl::SimpleAtoi(line, &btime)) {
      return btime;
    }
  }
  return std::nullopt;
}

std::optional<int64_t> CountDirEntries(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return std::nullopt;
  int64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (name != "." && name != "..") ++count;
  }
  closedir(dir);
  return count;
}

prometheus::MetricFamily Family(std::string name, std::string help,
                                prometheus::MetricType type, double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return {std::move(name), std::move(help), type, {std::move(metric)}};
}

}  // namespace

ProcessCollector::ProcessCollector(std::string proc_dir)
    : proc_dir_(std::move(proc_dir)) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;

  std::optional<ProcessStat> stat;
  if (std::optional<std::string> text = ReadFile(proc_dir_ + "/self/stat")) {
    stat = ParseProcessStat(*text);
  }
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (stat) {
    families.push_back(Family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.", MetricType::Counter,
        static_cast<double>(stat->utime_ticks + stat->stime_ticks) /
            ticks_per_second));
  }
  if (std::optional<int64_t> fds = CountDirEntries(proc_dir_ + "/self/fd")) {
    families.push_back(Family("process_open_fds",
                              "Number of open file descriptors.",
                              MetricType::Gauge, static_cast<double>(*fds)));
  }
  if (rlimit limit; getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    families.push_back(
        Family("process_max_fds", "Maximum number of open file descriptors.",
               MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  if (stat) {
    families.push_back(
        Family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
               MetricType::Gauge, static_cast<double>(stat->vsize_bytes)));
    families.push_back(Family("process_resident_memory_bytes",
                              "Resident memory size in bytes.",
                              MetricType::Gauge,
                              static_cast<double>(stat->rss_pages) *
                                  static_cast<double>(sysconf(_SC_PAGESIZE))));
  }
  std::optional<uint64_t> boot_time;
  if (std::optional<std::string> text = ReadFile(proc_dir_ + "/stat")) {
    boot_time = ParseBootTime(*text);
  }
  if (stat && boot_time) {
    families.push_back(Family(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricType::Gauge,
        static_cast<double>(*boot_time) +
            static_cast<double>(stat->starttime_ticks) / ticks_per_second));
  }
  return families;
}

}  // namespace rnn
