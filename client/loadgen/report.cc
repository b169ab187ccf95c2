#include "client/loadgen/report.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace rnn::loadgen {
namespace {

using Json = nlohmann::ordered_json;

Json LatencyJson(const LatencySummary& s) {
  return Json{{"mean", s.mean_us}, {"p50", s.p50_us}, {"p90", s.p90_us},
              {"p95", s.p95_us},   {"p99", s.p99_us}, {"p999", s.p999_us},
              {"max", s.max_us}};
}

Json StepJson(const StepResult& step) {
  Json j;
  if (step.mode == LoadMode::kClosed) {
    j["concurrency"] = step.concurrency;
  } else {
    j["rate"] = step.rate;
  }
  j["batch"] = step.batch;
  j["duration_s"] = step.duration_s;
  j["windows"] = step.windows;
  j["stable"] = step.stable;
  j["interrupted"] = step.interrupted;
  j["requests"] = step.requests;
  j["ok"] = step.ok;
  j["throughput_rps"] = step.throughput_rps;
  j["sequences_per_s"] = step.sequences_per_s;
  j["latency_us"] = LatencyJson(step.latency_us);
  j["errors"] = Json::object();
  for (const auto& [code, n] : step.errors) j["errors"][code] = n;
  j["wrong"] = step.wrong;
  j["wrong_examples"] = step.wrong_examples;
  j["accuracy"] = step.accuracy.has_value() ? Json(*step.accuracy) : Json();
  if (step.schedule.has_value()) {
    j["behind_schedule_us"] = LatencyJson(step.schedule->behind_us);
    j["sent_rps"] = step.schedule->sent_rps;
    j["rate_kept"] = step.schedule->kept;
  } else {
    j["behind_schedule_us"] = nullptr;
  }
  j["per_target"] = Json::object();
  for (const auto& [target, c] : step.per_target) {
    j["per_target"][target] = Json{{"requests", c.requests},
                                   {"ok", c.ok},
                                   {"errors", c.errors},
                                   {"wrong", c.wrong}};
  }
  if (step.server.has_value()) {
    const ServerBreakdown& s = *step.server;
    j["server"] =
        Json{{"queue_us", s.queue_us},       {"compute_us", s.compute_us},
             {"request_us", s.request_us},   {"batch_size", s.batch_size},
             {"requests_ok", s.requests_ok}, {"sequences", s.sequences}};
  } else {
    j["server"] = nullptr;
  }
  return j;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string ErrorsText(const StepResult& step) {
  return absl::StrJoin(step.errors, " ", [](std::string* out, const auto& e) {
    absl::StrAppend(out, e.first, "=", e.second);
  });
}

}  // namespace

std::string TextTableHeader(LoadMode mode) {
  return absl::StrFormat("%11s %9s %10s %10s %9s %9s %9s %9s %9s %7s %6s%s\n",
                         mode == LoadMode::kClosed ? "concurrency" : "rate/s",
                         "requests", "req/s", "seq/s", "mean_us", "p50_us",
                         "p90_us", "p99_us", "max_us", "errors", "wrong",
                         mode == LoadMode::kOpen ? "  behind_p99_us" : "");
}

std::string TextTableRow(const StepResult& s) {
  const std::string load = s.mode == LoadMode::kClosed
                               ? absl::StrCat(s.concurrency)
                               : absl::StrFormat("%.0f", s.rate);
  std::string behind;
  if (s.schedule.has_value()) {
    behind = absl::StrFormat("  %13.0f%s", s.schedule->behind_us.p99_us,
                             s.schedule->kept ? "" : " RATE NOT KEPT");
  }
  return absl::StrFormat(
      "%11s %9d %10.0f %10.0f %9.0f %9.0f %9.0f %9.0f %9.0f %7d %6d%s\n", load,
      s.requests, s.throughput_rps, s.sequences_per_s, s.latency_us.mean_us,
      s.latency_us.p50_us, s.latency_us.p90_us, s.latency_us.p99_us,
      s.latency_us.max_us, s.error_count(), s.wrong, behind);
}

std::string TextTable(LoadMode mode, const std::vector<StepResult>& steps) {
  std::string out = TextTableHeader(mode);
  for (const StepResult& s : steps) out += TextTableRow(s);
  return out;
}

std::string TextDetails(const StepResult& s) {
  std::string out;
  if (!s.errors.empty())
    absl::StrAppend(&out, "  errors: ", ErrorsText(s), "\n");
  if (s.wrong > 0) {
    absl::StrAppend(&out, "  wrong answers: ", s.wrong, "\n");
    for (const std::string& e : s.wrong_examples) {
      absl::StrAppend(&out, "    ", e, "\n");
    }
  }
  if (s.accuracy.has_value()) {
    absl::StrAppendFormat(&out, "  accuracy against labels: %.4f\n",
                          *s.accuracy);
  }
  if (s.schedule.has_value() && !s.schedule->kept) {
    absl::StrAppendFormat(
        &out,
        "  could not keep the rate: sent %.0f/s of %.0f/s asked; sends were up "
        "to %.1f ms behind schedule (p99 %.1f ms)\n",
        s.schedule->sent_rps, s.schedule->requested_rps,
        s.schedule->behind_us.max_us / 1e3, s.schedule->behind_us.p99_us / 1e3);
  }
  if (s.interrupted) absl::StrAppend(&out, "  interrupted: measured so far\n");
  if (!s.stable) {
    absl::StrAppend(&out, "  not stable after ", s.windows,
                    " windows (the last three are reported)\n");
  }
  if (s.per_target.size() > 1) {
    for (const auto& [target, c] : s.per_target) {
      absl::StrAppendFormat(&out,
                            "  %s: %d requests, %d ok, %d errors, %d wrong\n",
                            target, c.requests, c.ok, c.errors, c.wrong);
    }
  }
  if (s.server.has_value()) {
    absl::StrAppendFormat(
        &out,
        "  server: queue %.0f us, compute %.0f us per batch, request %.0f us, "
        "batch %.1f rows, %d sequences\n",
        s.server->queue_us, s.server->compute_us, s.server->request_us,
        s.server->batch_size, s.server->sequences);
  }
  return out;
}

std::string JsonReport(const RunInfo& run,
                       const std::vector<StepResult>& steps) {
  Json j;
  j["target"] = absl::StrJoin(run.targets, ",");
  j["targets"] = run.targets;
  j["model"] = run.model;
  j["model_version"] = run.model_version;
  j["mode"] = LoadModeName(run.mode);
  j["transport"] = run.transport;
  if (run.mode == LoadMode::kOpen) j["arrivals"] = run.arrivals;
  j["batch"] = run.batch;
  j["inputs"] = run.inputs;
  j["verify"] = run.verify;
  j["started_at"] = run.started_at;
  j["command"] = run.command_line;
  j["results"] = Json::array();
  for (const StepResult& s : steps) j["results"].push_back(StepJson(s));
  return j.dump(2) + "\n";
}

std::string CsvReport(const RunInfo& run,
                      const std::vector<StepResult>& steps) {
  std::string out =
      "Concurrency,Request Rate,Batch,Inferences/Second,Sequences/Second,"
      "Requests,OK,Errors,Wrong,Avg latency,p50 latency,p90 latency,"
      "p95 latency,p99 latency,p99.9 latency,Max latency,Sent Rate,"
      "Behind Schedule Avg,Behind Schedule p99,Rate Kept,Server Queue,"
      "Server Compute Infer,Server Request,Server Batch Size,Error Codes\n";
  for (const StepResult& s : steps) {
    const bool open = run.mode == LoadMode::kOpen;
    const ScheduleResult sched = s.schedule.value_or(ScheduleResult());
    const ServerBreakdown server = s.server.value_or(ServerBreakdown());
    auto num = [](double v) { return absl::StrFormat("%.1f", v); };
    std::vector<std::string> row = {
        open ? "" : absl::StrCat(s.concurrency),
        open ? absl::StrFormat("%g", s.rate) : "",
        absl::StrCat(s.batch),
        num(s.throughput_rps),
        num(s.sequences_per_s),
        absl::StrCat(s.requests),
        absl::StrCat(s.ok),
        absl::StrCat(s.error_count()),
        absl::StrCat(s.wrong),
        num(s.latency_us.mean_us),
        num(s.latency_us.p50_us),
        num(s.latency_us.p90_us),
        num(s.latency_us.p95_us),
        num(s.latency_us.p99_us),
        num(s.latency_us.p999_us),
        num(s.latency_us.max_us),
        open ? num(sched.sent_rps) : "",
        open ? num(sched.behind_us.mean_us) : "",
        open ? num(sched.behind_us.p99_us) : "",
        open ? (sched.kept ? "yes" : "no") : "",
        s.server ? num(server.queue_us) : "",
        s.server ? num(server.compute_us) : "",
        s.server ? num(server.request_us) : "",
        s.server ? absl::StrFormat("%.2f", server.batch_size) : "",
        CsvField(ErrorsText(s)),
    };
    absl::StrAppend(&out, absl::StrJoin(row, ","), "\n");
  }
  return out;
}

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  file << contents;
  file.close();
  if (!file)
    return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace rnn::loadgen
