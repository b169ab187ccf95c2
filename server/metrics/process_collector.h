// ProcessCollector: the process_* metrics every Prometheus client library
// exports, with the names and meanings of the Go and Python clients, read
// from procfs at scrape time.
//   process_cpu_seconds_total       counter User plus system CPU time (utime +
//                                           stime of <proc>/self/stat, in
//                                           clock ticks /
//                                           sysconf(_SC_CLK_TCK)).
//   process_open_fds                gauge   Entries of <proc>/self/fd.
//   process_max_fds                 gauge   The soft RLIMIT_NOFILE.
//   process_virtual_memory_bytes    gauge   vsize of <proc>/self/stat.
//   process_resident_memory_bytes   gauge   rss of <proc>/self/stat, in pages
//                                           times the page size.
//   process_start_time_seconds      gauge   Unix time the process started:
//                                           btime of <proc>/stat plus
//                                           starttime of <proc>/self/stat.
// A family whose source cannot be read or parsed is left out of that scrape
// (Prometheus then sees the series as absent), rather than reported as 0.
//
// Example (Metrics' registry holds one already; on its own):
//   #include "prometheus/exposer.h"
//   auto collector = std::make_shared<ProcessCollector>();
//   prometheus::Exposer exposer("127.0.0.1:8002");
//   exposer.RegisterCollectable(collector);  // keeps a weak_ptr only
//
// Thread-safety: Collect may be called from any thread; the collector holds
// no mutable state.
#ifndef RNN_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define RNN_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace rnn {

class ProcessCollector final : public prometheus::Collectable {
 public:
  // `proc_dir`: where procfs is mounted. Default "/proc"; tests point it at
  // a fake tree.
  explicit ProcessCollector(std::string proc_dir = "/proc");

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string proc_dir_;
};

}  // namespace rnn

#endif  // RNN_SERVER_METRICS_PROCESS_COLLECTOR_H_
