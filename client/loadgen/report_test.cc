#include "client/loadgen/report.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace rnn::loadgen {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

StepResult OpenStep() {
  StepResult s;
  s.mode = LoadMode::kOpen;
  s.rate = 2000;
  s.batch = 4;
  s.duration_s = 5;
  s.requests = 10'002;
  s.ok = 10'000;
  s.wrong = 1;
  s.errors["UNAVAILABLE"] = 2;
  s.throughput_rps = 2000;
  s.sequences_per_s = 8000;
  for (int i = 1; i <= 100; ++i) s.latency.Record(i * 10'000);  // 10..1000 us
  s.latency_us = LatencySummary::Of(s.latency);
  ScheduleResult sched;
  sched.requested_rps = 2000;
  sched.sent_rps = 1500;
  sched.kept = false;
  sched.behind_us.max_us = 80'000;
  s.schedule = sched;
  s.per_target["127.0.0.1:1"] = {6000, 5999, 1, 1};
  s.per_target["127.0.0.1:2"] = {4002, 4001, 1, 0};
  s.server = ServerBreakdown{120, 300, 500, 3.5, 10'000, 40'000};
  s.wrong_examples = {"request id 0.7: sequence 1 (input row 5): bad"};
  return s;
}

RunInfo MakeRun(LoadMode mode) {
  RunInfo run;
  run.targets = {"127.0.0.1:1", "127.0.0.1:2"};
  run.model = "rnn";
  run.mode = mode;
  run.transport = "stream";
  run.arrivals = "poisson";
  run.batch = 4;
  run.command_line = "rnn-loadgen --rate=2000";
  return run;
}

TEST(JsonReportTest, HoldsEveryDocumentedField) {
  const auto j =
      nlohmann::json::parse(JsonReport(MakeRun(LoadMode::kOpen), {OpenStep()}));
  EXPECT_EQ(j["target"], "127.0.0.1:1,127.0.0.1:2");
  EXPECT_EQ(j["mode"], "open");
  EXPECT_EQ(j["transport"], "stream");
  EXPECT_EQ(j["arrivals"], "poisson");
  ASSERT_EQ(j["results"].size(), 1u);
  const auto& r = j["results"][0];
  EXPECT_EQ(r["rate"], 2000);
  EXPECT_FALSE(r.contains("concurrency"));
  EXPECT_EQ(r["requests"], 10'002);
  EXPECT_EQ(r["ok"], 10'000);
  EXPECT_EQ(r["throughput_rps"], 2000);
  EXPECT_EQ(r["sequences_per_s"], 8000);
  for (const char* k : {"mean", "p50", "p90", "p95", "p99", "p999", "max"}) {
    EXPECT_TRUE(r["latency_us"][k].is_number()) << k;
  }
  EXPECT_NEAR(r["latency_us"]["p50"].get<double>(), 500, 5);
  EXPECT_EQ(r["latency_us"]["max"], 1000);
  EXPECT_EQ(r["errors"]["UNAVAILABLE"], 2);
  EXPECT_EQ(r["wrong"], 1);
  EXPECT_EQ(r["behind_schedule_us"]["max"], 80'000);
  EXPECT_EQ(r["rate_kept"], false);
  EXPECT_EQ(r["sent_rps"], 1500);
  EXPECT_EQ(r["per_target"]["127.0.0.1:1"]["wrong"], 1);
  EXPECT_EQ(r["per_target"]["127.0.0.1:2"]["requests"], 4002);
  EXPECT_EQ(r["server"]["queue_us"], 120);
  EXPECT_EQ(r["server"]["batch_size"], 3.5);
  EXPECT_EQ(r["wrong_examples"].size(), 1u);
}

TEST(JsonReportTest, CleanClosedStepHasEmptyErrorsAndNulls) {
  StepResult s;
  s.concurrency = 8;
  const auto j =
      nlohmann::json::parse(JsonReport(MakeRun(LoadMode::kClosed), {s}));
  const auto& r = j["results"][0];
  EXPECT_EQ(r["concurrency"], 8);
  EXPECT_TRUE(r["errors"].is_object());
  EXPECT_TRUE(r["errors"].empty());
  EXPECT_EQ(r["wrong"], 0);
  EXPECT_TRUE(r["behind_schedule_us"].is_null());
  EXPECT_TRUE(r["server"].is_null());
  EXPECT_FALSE(j.contains("arrivals"));
}

TEST(CsvReportTest, OneRowPerStepWithTheHeadersColumns) {
  StepResult closed;
  closed.concurrency = 16;
  const std::string csv =
      CsvReport(MakeRun(LoadMode::kOpen), {OpenStep(), OpenStep()});
  std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  const std::vector<std::string> row = absl::StrSplit(lines[1], ',');
  EXPECT_EQ(header.size(), row.size());
  EXPECT_EQ(header[3], "Inferences/Second");
  EXPECT_EQ(row[1], "2000");
  EXPECT_EQ(row[3], "2000.0");
  EXPECT_THAT(lines[1], HasSubstr(",no,"));  // rate not kept
  EXPECT_THAT(lines[1], HasSubstr("UNAVAILABLE=2"));
}

TEST(TextReportTest, TableAndDetailsSayWhatWentWrong) {
  const StepResult s = OpenStep();
  const std::string table = TextTable(LoadMode::kOpen, {s});
  EXPECT_THAT(table, HasSubstr("RATE NOT KEPT"));
  EXPECT_THAT(table, HasSubstr("10002"));
  const std::string details = TextDetails(s);
  EXPECT_THAT(details, HasSubstr("UNAVAILABLE=2"));
  EXPECT_THAT(details, HasSubstr("request id 0.7"));
  EXPECT_THAT(details,
              HasSubstr("could not keep the rate: sent 1500/s of 2000/s"));
  EXPECT_THAT(details, HasSubstr("127.0.0.1:2: 4002 requests"));
  EXPECT_THAT(details, HasSubstr("batch 3.5 rows"));

  StepResult clean;
  clean.concurrency = 1;
  EXPECT_EQ(TextDetails(clean), "");
  EXPECT_THAT(TextTable(LoadMode::kClosed, {clean}), Not(HasSubstr("behind")));
}

}  // namespace
}  // namespace rnn::loadgen
