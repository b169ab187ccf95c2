#include "server/metrics/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_type.h"

namespace rnn {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::Pair;

// Each family's one value, by name; families must hold exactly one metric
// without labels, and a counter must be named *_total.
std::map<std::string, double> Values(const ProcessCollector& collector) {
  std::map<std::string, double> values;
  for (const prometheus::MetricFamily& family : collector.Collect()) {
    EXPECT_FALSE(family.help.empty()) << family.name;
    EXPECT_EQ(family.metric.size(), 1u) << family.name;
    if (family.metric.empty()) continue;
    EXPECT_TRUE(family.metric[0].label.empty()) << family.name;
    const bool counter = family.type == prometheus::MetricType::Counter;
    EXPECT_EQ(counter, absl::EndsWith(family.name, "_total")) << family.name;
    values[family.name] =
        counter ? family.metric[0].counter.value : family.metric[0].gauge.value;
  }
  return values;
}

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

TEST(ProcessCollectorTest, ReportsThisProcess) {
  std::map<std::string, double> values = Values(ProcessCollector());
  EXPECT_EQ(values.size(), 6u);
  EXPECT_GT(values["process_resident_memory_bytes"], 0);
  EXPECT_GE(values["process_virtual_memory_bytes"],
            values["process_resident_memory_bytes"]);
  EXPECT_GE(values["process_open_fds"], 3);  // stdin, stdout, stderr.
  EXPECT_GE(values["process_max_fds"], values["process_open_fds"]);
  EXPECT_GE(values["process_cpu_seconds_total"], 0);
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_LE(values["process_start_time_seconds"], now + 1);
  EXPECT_GT(values["process_start_time_seconds"], now - 24 * 3600);
}

TEST(ProcessCollectorTest, CpuSecondsGrowWithWork) {
  ProcessCollector collector;
  const double before = Values(collector)["process_cpu_seconds_total"];
  // Spin until the kernel's own clock shows 0.2 s of CPU: 20 ticks at the
  // usual 100 Hz, so /proc/self/stat must have moved too.
  const double start = CpuSeconds();
  volatile uint64_t sink = 0;
  while (CpuSeconds() - start < 0.2) {
    for (int i = 0; i < 100'000; ++i) sink = sink + i;
  }
  EXPECT_GT(Values(collector)["process_cpu_seconds_total"], before + 0.1);
}

TEST(ProcessCollectorTest, MaxFdsIsTheSoftLimit) {
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(Values(ProcessCollector())["process_max_fds"],
            static_cast<double>(limit.rlim_cur));
}

class FakeProcTest : public testing::Test {
 protected:
  void SetUp() override {
    proc_ = fs::path(testing::TempDir()) /
            ("fake_proc_" + std::to_string(getpid()));
    fs::remove_all(proc_);
    fs::create_directories(proc_ / "self" / "fd");
  }
  void TearDown() override { fs::remove_all(proc_); }

  void Write(const fs::path& relative, const std::string& contents) {
    std::ofstream(proc_ / relative) << contents;
  }

  fs::path proc_;
};

TEST_F(FakeProcTest, ParsesStatFilesExactly) {
  // proc(5) fields 1-25; the command name holds spaces and parentheses.
  Write("self/stat",
        "1234 (rnn (server) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 "
        "250 130 0 0 20 0 5 0 4200 123456789 2048 18446744073709551615\n");
  Write("stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 99\n");
  for (const char* fd : {"0", "1", "2", "7"})
    Write(fs::path("self/fd") / fd, "");

  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::map<std::string, double> values = Values(ProcessCollector(proc_));
  EXPECT_DOUBLE_EQ(values["process_cpu_seconds_total"], 380 / ticks);
  EXPECT_EQ(values["process_open_fds"], 4);
  EXPECT_EQ(values["process_virtual_memory_bytes"], 123456789);
  EXPECT_EQ(values["process_resident_memory_bytes"],
            2048.0 * static_cast<double>(sysconf(_SC_PAGESIZE)));
  EXPECT_DOUBLE_EQ(values["process_start_time_seconds"],
                   1700000000 + 4200 / ticks);
}

TEST_F(FakeProcTest, LeavesOutWhatCannotBeRead) {
  fs::remove_all(proc_ / "self" / "fd");
  Write("self/stat", "1234 (truncated) S 1 2 3\n");
  Write("stat", "btime 1700000000\n");

  std::map<std::string, double> values = Values(ProcessCollector(proc_));
  EXPECT_THAT(values, ElementsAre(Pair("process_max_fds", testing::_)));
}

}  // namespace
}  // namespace rnn
