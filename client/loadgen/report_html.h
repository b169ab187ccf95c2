// The HTML report of a load test: one self-contained page to open in a
// browser or attach to a ticket, in the spirit of ghz's HTML report and
// HdrHistogram's percentile plots, but static.
//
// The page holds:
//   - the run: targets, model and version, mode, arrivals, batch, inputs,
//     verification, start time and command line;
//   - a summary table, one row per step: concurrency or rate, requests, OK
//     answers, throughput, sequences/s, latency mean/p50/p90/p95/p99/p99.9/
//     max, errors by code, wrong answers, accuracy (label checks), the
//     open-loop schedule (rate sent, whether it was kept, how late sends
//     were), stability windows and the server's breakdown (queue, compute,
//     mean batch) when measured. Rows with errors, wrong answers or a rate
//     not kept are highlighted;
//   - a chart of latency (p50 and p99, log scale) against throughput, one
//     point per step in sweep order, each labelled with its concurrency or
//     rate;
//   - a chart of each step's latency by percentile (HdrHistogram style: the
//     x axis is log10(1 / (1 - p)), ticks at 0%, 90%, 99%, 99.9%, ...),
//     drawn from the step's histogram;
//   - per-target counts when there is more than one target, and the wrong
//     answers' examples.
//
// The page has no scripts and loads nothing: CSS and SVG are inline. It is
// well-formed XML (XHTML syntax: every element closed, attributes quoted,
// text escaped, only numeric character references, invalid UTF-8 replaced
// by U+FFFD), so strict XML parsers accept it as well as browsers. Every
// number in the charts is finite whatever the input (empty steps, a single
// step, equal values, NaN or infinite figures).
//
// Example:
//   RunInfo run;
//   run.targets = {"localhost:8001"};
//   std::vector<StepResult> steps(1);  // LoadRunner::RunStep's results
//   std::string html = RenderHtmlReport(run, steps);  // WriteFile (report.h)
//
// Thread-safety: a pure function of its arguments.
#ifndef RNN_CLIENT_LOADGEN_REPORT_HTML_H_
#define RNN_CLIENT_LOADGEN_REPORT_HTML_H_

#include <string>
#include <vector>

#include "client/loadgen/step_result.h"

namespace rnn::loadgen {

// The whole page, UTF-8. `steps` in sweep order; steps without OK answers
// are listed in the tables and left out of the charts, with a note.
std::string RenderHtmlReport(const RunInfo& run,
                             const std::vector<StepResult>& steps);

}  // namespace rnn::loadgen

#endif  // RNN_CLIENT_LOADGEN_REPORT_HTML_H_
