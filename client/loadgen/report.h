// The load test's reports, written from the steps' results: a table for the
// terminal, JSON, CSV (perf_analyzer-like columns) and, in report_html.h, a
// self-contained HTML page.
//
// The JSON schema is documented in the README (section rnn-loadgen). Every
// latency is in microseconds.
//
// Example:
//   RunInfo run;
//   run.targets = {"localhost:8001"};
//   std::vector<StepResult> steps(1);  // LoadRunner::RunStep's results
//   std::string table = TextTable(run.mode, steps);  // for the terminal
//   absl::Status written = WriteFile("report.json", JsonReport(run, steps));
//   if (!written.ok()) return written;
#ifndef RNN_CLIENT_LOADGEN_REPORT_H_
#define RNN_CLIENT_LOADGEN_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/loadgen/step_result.h"

namespace rnn::loadgen {

// A fixed-width table: a header line, then one line per step.
std::string TextTable(LoadMode mode, const std::vector<StepResult>& steps);
// The table's header line, and one step's line, for printing as steps end.
std::string TextTableHeader(LoadMode mode);
std::string TextTableRow(const StepResult& step);

// One step's details beyond the table: errors by code, wrong answers and
// their first examples, schedule keeping, per-target counts, the server's
// breakdown. Empty when there is nothing to add.
std::string TextDetails(const StepResult& step);

// The whole run as one JSON document (pretty-printed).
std::string JsonReport(const RunInfo& run,
                       const std::vector<StepResult>& steps);

// One header line and one row per step.
std::string CsvReport(const RunInfo& run, const std::vector<StepResult>& steps);

// Writes `contents` to `path`, replacing it.
absl::Status WriteFile(const std::string& path, const std::string& contents);

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_REPORT_H_
