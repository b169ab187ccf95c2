#include "client/loadgen/report_html.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "client/loadgen/latency_histogram.h"
#include "client/loadgen/step_result.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn::loadgen {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

RunInfo TestRun() {
  RunInfo run;
  run.targets = {"127.0.0.1:8001"};
  run.model = "rnn";
  run.model_version = "1";
  run.batch = 1;
  run.inputs = "random (seed 1)";
  run.verify = "off";
  run.started_at = "2024-05-01T12:00:00Z";
  run.command_line = "rnn-loadgen --concurrency=1,2,4";
  return run;
}

TargetCounts Counts(int64_t requests, int64_t ok, int64_t errors = 0) {
  TargetCounts counts;
  counts.requests = requests;
  counts.ok = ok;
  counts.errors = errors;
  return counts;
}

// A closed-loop step whose histogram holds `count` values of `us` each. The
// summary figures are set by hand, so the test reads back exactly what it
// put in.
StepResult Closed(int concurrency, int64_t us, int count) {
  StepResult step;
  step.mode = LoadMode::kClosed;
  step.concurrency = concurrency;
  step.duration_s = 2;
  step.requests = count;
  step.ok = count;
  step.throughput_rps = count / 2.0;
  step.sequences_per_s = count / 2.0;
  for (int i = 0; i < count; ++i) step.latency.Record(us * 1000);
  step.latency_us.mean_us = us + 0.2;
  step.latency_us.p50_us = us + 0.5;
  step.latency_us.p90_us = us + 1.0;
  step.latency_us.p95_us = us + 1.5;
  step.latency_us.p99_us = us + 2.0;
  step.latency_us.p999_us = us + 2.5;
  step.latency_us.max_us = us + 3.0;
  return step;
}

StepResult Open(double rate, int64_t us, int count) {
  StepResult step = Closed(0, us, count);
  step.mode = LoadMode::kOpen;
  step.rate = rate;
  step.schedule.emplace();
  step.schedule->requested_rps = rate;
  step.schedule->sent_rps = rate;
  step.schedule->behind_us.p99_us = 12.5;
  return step;
}

// A step that got no OK answer: the histogram is empty, and figures derived
// by division may be anything.
StepResult Empty(int concurrency) {
  StepResult step;
  step.concurrency = concurrency;
  step.requests = 5;
  step.errors = {{"UNAVAILABLE", 5}};
  step.throughput_rps = std::numeric_limits<double>::quiet_NaN();
  step.sequences_per_s = std::numeric_limits<double>::infinity();
  step.latency_us.mean_us = std::numeric_limits<double>::quiet_NaN();
  return step;
}

// The text between the first `begin` and the next `end` after it.
std::string Between(const std::string& text, const std::string& begin,
                    const std::string& end) {
  const size_t start = text.find(begin);
  if (start == std::string::npos) return "";
  const size_t stop = text.find(end, start + begin.size());
  if (stop == std::string::npos) return "";
  return text.substr(start + begin.size(), stop - start - begin.size());
}

// For each occurrence of `prefix` in `text`, the text after it up to the
// next double quote: with prefix ` x="`, the values of every x attribute.
std::vector<std::string> ValuesAfter(const std::string& text,
                                     const std::string& prefix) {
  std::vector<std::string> out;
  for (size_t at = text.find(prefix); at != std::string::npos;
       at = text.find(prefix, at + 1)) {
    const size_t begin = at + prefix.size();
    out.push_back(text.substr(begin, text.find('"', begin) - begin));
  }
  return out;
}

// The contents of the th and td cells of a table row, in order.
std::vector<std::string> Cells(const std::string& row) {
  std::vector<std::string> cells;
  for (size_t at = row.find("<t"); at != std::string::npos;
       at = row.find("<t", at + 1)) {
    const char kind = row[at + 2];
    if ((kind != 'h' && kind != 'd') ||
        (row[at + 3] != ' ' && row[at + 3] != '>')) {
      continue;
    }
    const size_t begin = row.find('>', at) + 1;
    const size_t end = row.find(std::string("</t") + kind + ">", begin);
    cells.push_back(row.substr(begin, end - begin));
    at = end;
  }
  return cells;
}

// The contents of each element opened by `start` (e.g. "<tr") in `text`, up
// to the next `end`. Elements must not nest.
std::vector<std::string> Contents(const std::string& text,
                                  const std::string& start,
                                  const std::string& end) {
  std::vector<std::string> out;
  for (size_t at = text.find(start); at != std::string::npos;
       at = text.find(start, at + 1)) {
    const size_t begin = text.find('>', at) + 1;
    const size_t stop = text.find(end, begin);
    out.push_back(text.substr(begin, stop - begin));
  }
  return out;
}

// The cells of each body row of the summary table, the step label first.
std::vector<std::vector<std::string>> SummaryRows(const std::string& html) {
  const std::string table =
      Between(html, "<table class=\"summary\">", "</table>");
  std::vector<std::vector<std::string>> rows;
  for (const std::string& row :
       Contents(Between(table, "<tbody>", "</tbody>"), "<tr", "</tr>")) {
    rows.push_back(Cells(row));
  }
  return rows;
}

std::vector<std::string> SummaryHeaders(const std::string& html) {
  return Contents(Between(html, "<table class=\"summary\">", "</thead>"),
                  "<th>", "</th>");
}

// The text of chart `index` (0 or 1), from "<svg" to "</svg>".
std::string Chart(const std::string& html, int index) {
  size_t start = html.find("<svg");
  for (int i = 0; i < index; ++i) start = html.find("<svg", start + 1);
  if (start == std::string::npos) return "";
  return html.substr(start, html.find("</svg>", start) - start);
}

// The polylines of chart `index` whose class attribute is `cls`, each as
// its list of points.
std::vector<std::vector<std::pair<double, double>>> Polylines(
    const std::string& html, int index, const std::string& cls) {
  std::vector<std::vector<std::pair<double, double>>> lines;
  for (const std::string& points : ValuesAfter(
           Chart(html, index), "<polyline class=\"" + cls + "\" points=\"")) {
    std::vector<std::pair<double, double>> line;
    for (absl::string_view xy :
         absl::StrSplit(points, ' ', absl::SkipEmpty())) {
      const std::string pair(xy);
      const size_t comma = pair.find(',');
      line.emplace_back(std::strtod(pair.substr(0, comma).c_str(), nullptr),
                        std::strtod(pair.substr(comma + 1).c_str(), nullptr));
    }
    lines.push_back(line);
  }
  return lines;
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// The first '&' of `text` that does not start a reference XML knows without
// a DTD (&amp; &lt; &gt; &quot; &#N;), with what follows; "" when none.
std::string BadReference(const std::string& text) {
  for (size_t at = text.find('&'); at != std::string::npos;
       at = text.find('&', at + 1)) {
    bool known = false;
    for (const char* entity : {"&amp;", "&lt;", "&gt;", "&quot;"}) {
      known = known || text.compare(at, std::strlen(entity), entity) == 0;
    }
    if (!known && at + 1 < text.size() && text[at + 1] == '#') {
      size_t end = at + 2;
      while (end < text.size() && std::isdigit(text[end])) ++end;
      known = end > at + 2 && end < text.size() && text[end] == ';';
    }
    if (!known) return text.substr(at, 40);
  }
  return "";
}

// Checks what a strict XML parser needs: every element closed in order,
// attributes quoted, '&' only in the references XML knows without a DTD,
// no markup characters in text. Returns the first problem, or "" when the
// page is well-formed.
std::string XmlProblem(const std::string& html) {
  const std::string doctype = "<!DOCTYPE html>\n";
  if (html.compare(0, doctype.size(), doctype) != 0) return "no doctype";
  const auto is_name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
           c == ':' || c == '_' || c == '.';
  };
  std::vector<std::string> open;
  size_t at = doctype.size();
  while (true) {
    const size_t lt = html.find('<', at);
    const std::string text = html.substr(at, lt - at);
    if (const std::string bad = BadReference(text); !bad.empty()) {
      return "bad reference: " + bad;
    }
    if (text.find('>') != std::string::npos &&
        (open.empty() || open.back() != "style")) {
      return "stray '>' in: " + text.substr(0, 80);
    }
    if (lt == std::string::npos) break;
    const std::string context = html.substr(lt, 80);
    size_t i = lt + 1;
    const bool closing = html[i] == '/';
    if (closing) ++i;
    const size_t name_start = i;
    while (i < html.size() && is_name_char(html[i])) ++i;
    const std::string name = html.substr(name_start, i - name_start);
    if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) {
      return "malformed tag: " + context;
    }
    bool self_closing = false;
    while (true) {
      const size_t space_start = i;
      while (i < html.size() && std::isspace(html[i])) ++i;
      if (html.compare(i, 2, "/>") == 0 && !closing) {
        self_closing = true;
        i += 2;
        break;
      }
      if (i < html.size() && html[i] == '>') {
        ++i;
        break;
      }
      if (closing || i == space_start) return "malformed tag: " + context;
      const size_t attribute_start = i;
      while (i < html.size() && is_name_char(html[i])) ++i;
      if (i == attribute_start || html.compare(i, 2, "=\"") != 0) {
        return "unquoted or malformed attribute: " + context;
      }
      const size_t value_start = i + 2;
      const size_t value_end = html.find('"', value_start);
      if (value_end == std::string::npos) return "unterminated: " + context;
      const std::string value =
          html.substr(value_start, value_end - value_start);
      if (value.find('<') != std::string::npos) return "'<' in: " + context;
      if (const std::string bad = BadReference(value); !bad.empty()) {
        return "bad reference: " + bad;
      }
      i = value_end + 1;
    }
    if (closing) {
      if (open.empty() || open.back() != name) return "unbalanced: " + context;
      open.pop_back();
    } else if (!self_closing) {
      open.push_back(name);
    }
    at = i;
  }
  if (!open.empty()) return "unclosed: " + open.back();
  return "";
}

TEST(RenderHtmlReportTest, SummaryHasOneRowPerStepWithItsFigures) {
  std::vector<StepResult> steps = {Closed(1, 100, 200), Closed(2, 150, 300),
                                   Closed(4, 400, 320)};
  steps[2].wrong = 2;
  steps[2].ok = 318;
  steps[2].requests = 321;
  steps[2].errors = {{"UNAVAILABLE", 2}, {"DEADLINE_EXCEEDED", 1}};
  const std::string html = RenderHtmlReport(TestRun(), steps);

  EXPECT_THAT(SummaryHeaders(html),
              ElementsAre("concurrency", "time (s)", "requests", "ok",
                          "throughput (req/s)", "sequences/s", "mean (&#181;s)",
                          "p50 (&#181;s)", "p90 (&#181;s)", "p95 (&#181;s)",
                          "p99 (&#181;s)", "p99.9 (&#181;s)", "max (&#181;s)",
                          "errors", "wrong"));
  const auto rows = SummaryRows(html);
  ASSERT_THAT(rows, SizeIs(3));
  EXPECT_THAT(rows[0], ElementsAre("1", "2.0", "200", "200", "100.0", "100.0",
                                   "100.2", "100.5", "101.0", "101.5", "102.0",
                                   "102.5", "103.0", "0", "0"));
  EXPECT_THAT(rows[1], ElementsAre("2", "2.0", "300", "300", "150.0", "150.0",
                                   "150.2", "150.5", "151.0", "151.5", "152.0",
                                   "152.5", "153.0", "0", "0"));
  EXPECT_THAT(rows[2],
              ElementsAre("4", "2.0", "321", "318", "160.0", "160.0", "400.2",
                          "400.5", "401.0", "401.5", "402.0", "402.5", "403.0",
                          "3 <span class=\"codes\">(DEADLINE_EXCEEDED 1, "
                          "UNAVAILABLE 2)</span>",
                          "2"));
  // Only the step with errors and wrong answers stands out.
  EXPECT_EQ(Count(html, "<tr class=\"step flagged\">"), 1);
  EXPECT_EQ(Count(html, "<tr class=\"step\">"), 2);
}

TEST(RenderHtmlReportTest, LargeLatencyColumnsSwitchToMilliseconds) {
  std::vector<StepResult> steps = {Closed(1, 100, 10), Closed(8, 100, 10)};
  steps[1].latency_us.p99_us = 12'345.6;
  steps[1].latency_us.max_us = 250'000;
  const std::string html = RenderHtmlReport(TestRun(), steps);

  const auto headers = SummaryHeaders(html);
  EXPECT_THAT(headers, testing::Contains("p50 (&#181;s)"));
  EXPECT_THAT(headers, testing::Contains("p99 (ms)"));
  EXPECT_THAT(headers, testing::Contains("max (ms)"));
  const auto rows = SummaryRows(html);
  ASSERT_THAT(rows, SizeIs(2));
  EXPECT_EQ(rows[0][10], "0.102");  // p99 of step 1: 102 us.
  EXPECT_EQ(rows[1][10], "12.346");
  EXPECT_EQ(rows[1][12], "250.000");
  EXPECT_EQ(rows[1][7], "100.5");  // p50 stays in microseconds.
}

TEST(RenderHtmlReportTest, OpenLoopShowsTheScheduleAndFlagsAMissedRate) {
  RunInfo run = TestRun();
  run.mode = LoadMode::kOpen;
  run.transport = "stream";
  run.arrivals = "poisson";
  std::vector<StepResult> steps = {Open(100, 200, 200), Open(250.5, 300, 200),
                                   Open(1000, 900, 200)};
  steps[2].schedule->sent_rps = 812.34;
  steps[2].schedule->kept = false;
  const std::string html = RenderHtmlReport(run, steps);

  const auto headers = SummaryHeaders(html);
  EXPECT_EQ(headers.front(), "rate (req/s)");
  EXPECT_THAT(headers, testing::IsSupersetOf({"sent (req/s)", "rate kept",
                                              "late p99 (&#181;s)"}));
  const auto rows = SummaryRows(html);
  ASSERT_THAT(rows, SizeIs(3));
  EXPECT_EQ(rows[0][0], "100");
  EXPECT_EQ(rows[1][0], "250.5");
  EXPECT_THAT(rows[0], testing::IsSupersetOf({"100.0", "yes", "12.5"}));
  EXPECT_THAT(rows[2], testing::IsSupersetOf({"812.3", "no"}));
  EXPECT_THAT(html, HasSubstr("<td class=\"c alert\">no</td>"));
  EXPECT_EQ(Count(html, "<tr class=\"step flagged\">"), 1);
  EXPECT_THAT(html, HasSubstr("<th>arrivals</th><td>poisson</td>"));
  EXPECT_THAT(html, HasSubstr("<th>transport</th><td>stream</td>"));
  EXPECT_THAT(html, HasSubstr("intended send time"));
  // Chart points name the rate.
  EXPECT_THAT(html, HasSubstr(">250.5/s</text>"));
}

TEST(RenderHtmlReportTest, OptionalColumnsAppearOnlyWhenMeasured) {
  std::vector<StepResult> steps = {Closed(1, 100, 10), Closed(2, 100, 10)};
  std::string html = RenderHtmlReport(TestRun(), steps);
  EXPECT_THAT(html, Not(HasSubstr("server queue")));
  EXPECT_THAT(html, Not(HasSubstr("rate kept")));
  EXPECT_THAT(html, Not(HasSubstr("<th>accuracy</th>")));
  EXPECT_THAT(html, Not(HasSubstr("<th>windows</th>")));

  steps[1].server.emplace();
  steps[1].server->queue_us = 42.26;
  steps[1].server->compute_us = 310.5;
  steps[1].server->batch_size = 3.127;
  steps[1].accuracy = 0.9875;
  steps[1].windows = 3;
  steps[1].stable = false;
  html = RenderHtmlReport(TestRun(), steps);
  const auto headers = SummaryHeaders(html);
  EXPECT_THAT(headers,
              testing::IsSupersetOf({"server queue (&#181;s)",
                                     "server compute (&#181;s)", "mean batch",
                                     "accuracy", "windows"}));
  const auto rows = SummaryRows(html);
  ASSERT_THAT(rows, SizeIs(2));
  EXPECT_THAT(rows[1], testing::IsSupersetOf({"42.3", "310.5", "3.13", "98.75%",
                                              "3 (unstable)"}));
  // The step without a breakdown gets placeholders, not zeros.
  EXPECT_EQ(rows[0].back(), "-");
  EXPECT_EQ(rows[0].size(), rows[1].size());
  EXPECT_EQ(rows[0].size(), headers.size());
}

TEST(RenderHtmlReportTest, SelfContained) {
  const std::string html = RenderHtmlReport(
      TestRun(), {Closed(1, 100, 10), Closed(2, 200, 10), Empty(4)});
  EXPECT_EQ(Count(html, "<svg"), 2);
  EXPECT_EQ(Count(html, "</svg>"), 2);
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("<link")));
  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, Not(HasSubstr("url(")));
  EXPECT_THAT(html, Not(HasSubstr("@import")));
  EXPECT_THAT(html, Not(HasSubstr("href")));
  // The only URLs are the XHTML and SVG namespace names, never fetched.
  EXPECT_THAT(ValuesAfter(html, "http"),
              ElementsAre("://www.w3.org/1999/xhtml", "://www.w3.org/2000/svg",
                          "://www.w3.org/2000/svg"));
}

TEST(RenderHtmlReportTest, EscapesEverythingTheRunSupplies) {
  RunInfo run = TestRun();
  run.targets = {"<b>&1:8001", "host\"2':8001"};
  run.model = "rnn<b>&";
  run.model_version = "v<2>";
  run.inputs = "eval set /tmp/<b>&.safetensors";
  run.verify = "weights /tmp/a&b (1e-4)";
  run.started_at = "2024<b>&";
  run.command_line = "rnn-loadgen --label='<b>&' \x01 \xff tail";
  std::vector<StepResult> steps = {Closed(1, 100, 10)};
  steps[0].wrong = 1;
  steps[0].wrong_examples = {"request 7: expected <b>&, got </li>"};
  steps[0].errors = {{"<b>&", 1}};
  steps[0].per_target = {{"<b>&1:8001", Counts(5, 5)},
                         {"host\"2':8001", Counts(6, 5)}};
  const std::string html = RenderHtmlReport(run, steps);

  EXPECT_THAT(html, Not(HasSubstr("<b>")));
  EXPECT_THAT(html, Not(HasSubstr("</li>,")));
  EXPECT_THAT(html, HasSubstr("--label=&#39;&lt;b&gt;&amp;&#39;"));
  EXPECT_THAT(html, HasSubstr("&lt;b&gt;&amp;1:8001, host&quot;2&#39;:8001"));
  EXPECT_THAT(html, HasSubstr("rnn&lt;b&gt;&amp; version v&lt;2&gt;"));
  EXPECT_THAT(html, HasSubstr("/tmp/&lt;b&gt;&amp;.safetensors"));
  EXPECT_THAT(html, HasSubstr("/tmp/a&amp;b"));
  EXPECT_THAT(html, HasSubstr("2024&lt;b&gt;&amp;"));
  EXPECT_THAT(html,
              HasSubstr("<li><code>request 7: expected &lt;b&gt;&amp;, got "
                        "&lt;/li&gt;</code></li>"));
  EXPECT_THAT(html, HasSubstr("(&lt;b&gt;&amp; 1)"));  // Error code.
  // The per-target table names both targets, escaped.
  EXPECT_THAT(html, HasSubstr("<td class=\"t\">&lt;b&gt;&amp;1:8001</td>"));
  // A control character and a byte that is not UTF-8 would make the page
  // unreadable to an XML parser: both become U+FFFD.
  EXPECT_THAT(html, HasSubstr("&#39; \xEF\xBF\xBD \xEF\xBF\xBD tail"));
  EXPECT_EQ(XmlProblem(html), "");
}

TEST(RenderHtmlReportTest, KeepsValidUtf8) {
  RunInfo run = TestRun();
  run.command_line = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";
  const std::string html = RenderHtmlReport(run, {Closed(1, 100, 10)});
  EXPECT_THAT(html, HasSubstr("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  // Overlong forms and surrogates are not UTF-8 XML accepts.
  run.command_line = "a\xC0\xAF b\xED\xA0\x80 c\xEF\xBF\xBF";
  const std::string bad = RenderHtmlReport(run, {Closed(1, 100, 10)});
  EXPECT_THAT(bad, Not(HasSubstr("\xC0\xAF")));
  EXPECT_THAT(bad, Not(HasSubstr("\xED\xA0\x80")));
  EXPECT_THAT(bad, Not(HasSubstr("\xEF\xBF\xBF")));
}

TEST(RenderHtmlReportTest, ThroughputChartHasOnePointPerStepInSweepOrder) {
  // Throughput falls at the last step (an overloaded server): the line must
  // follow the sweep, not sort by throughput.
  std::vector<StepResult> steps = {Closed(1, 100, 100), Closed(2, 150, 300),
                                   Closed(4, 900, 200)};
  const std::string html = RenderHtmlReport(TestRun(), steps);

  const auto p50 = Polylines(html, 0, "series p50");
  const auto p99 = Polylines(html, 0, "series p99");
  ASSERT_THAT(p50, SizeIs(1));
  ASSERT_THAT(p99, SizeIs(1));
  ASSERT_THAT(p50[0], SizeIs(3));
  ASSERT_THAT(p99[0], SizeIs(3));
  EXPECT_LT(p50[0][0].first, p50[0][2].first);
  EXPECT_LT(p50[0][2].first, p50[0][1].first);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(p50[0][i].first, p99[0][i].first);
    EXPECT_GT(p50[0][i].second, p99[0][i].second);  // p99 drawn higher.
  }
  EXPECT_GT(p50[0][0].second, p50[0][2].second);  // Slower is higher.
  const std::string chart = Between(html, "<svg", "</svg>");
  EXPECT_EQ(Count(chart, "<circle"), 2 * 3 + 2);  // Points and legend.
  for (const char* label : {">1</text>", ">2</text>", ">4</text>"}) {
    EXPECT_EQ(Count(chart, label), 2) << label;
  }
}

TEST(RenderHtmlReportTest, PercentileCurveStepsUpAtTheRightPercentile) {
  // 99 answers at 100 us and one at 10 ms: flat to the 99th percentile,
  // then the maximum.
  StepResult step = Closed(1, 100, 99);
  step.latency.Record(10'000'000);
  const std::string html = RenderHtmlReport(TestRun(), {step});

  const auto curves = Polylines(html, 1, "curve");
  ASSERT_THAT(curves, SizeIs(1));
  const auto& curve = curves[0];
  ASSERT_THAT(curve, SizeIs(4));
  // The x of the tick labelled `label`, which must be there once.
  const std::string chart = Chart(html, 1);
  const auto tick_x = [&](const std::string& label) {
    const std::string text = ">" + label + "</text>";
    EXPECT_EQ(Count(chart, text), 1) << label;
    const size_t end = chart.find(text);
    if (end == std::string::npos) return -1.0;
    const size_t start = chart.rfind("<text class=\"tick\"", end);
    const auto xs = ValuesAfter(chart.substr(start, end - start), " x=\"");
    return xs.empty() ? -1.0 : std::strtod(xs[0].c_str(), nullptr);
  };
  EXPECT_EQ(curve[0].first, tick_x("0%"));
  EXPECT_EQ(curve[1].first, tick_x("99%"));
  EXPECT_EQ(curve[2].first, tick_x("99%"));
  EXPECT_EQ(curve[3].first, tick_x("99.99%"));  // 100% at the right edge.
  EXPECT_EQ(curve[0].second, curve[1].second);
  EXPECT_GT(curve[1].second, curve[2].second);
  EXPECT_EQ(curve[2].second, curve[3].second);
  for (const char* label : {"90%", "99.9%", "50%"}) tick_x(label);
}

TEST(RenderHtmlReportTest, PercentileChartHasOneCurvePerStepWithAnswers) {
  std::vector<StepResult> steps;
  for (int i = 0; i < 12; ++i) steps.push_back(Closed(i + 1, 100 + 50 * i, 50));
  steps.push_back(Empty(13));
  const std::string html = RenderHtmlReport(TestRun(), steps);

  EXPECT_THAT(Polylines(html, 1, "curve"), SizeIs(12));
  // Past ten series the colours repeat, dashed.
  EXPECT_THAT(html, HasSubstr("stroke-dasharray=\"6 3\""));
  // Every step is in the legend, the empty one marked.
  EXPECT_THAT(html, HasSubstr(">concurrency 12</text>"));
  EXPECT_THAT(html, HasSubstr(">concurrency 13 (no OK answers)</text>"));
  EXPECT_THAT(html, HasSubstr("1 step has no OK answers and no curve."));
}

TEST(RenderHtmlReportTest, EmptyStepRendersWithoutNonFiniteNumbers) {
  std::vector<StepResult> steps = {Closed(1, 100, 10), Empty(2),
                                   Closed(4, 300, 10)};
  const std::string html = RenderHtmlReport(TestRun(), steps);

  EXPECT_THAT(html, Not(testing::ContainsRegex("[Nn]a[Nn]|[Ii]nf\\b")));
  const auto rows = SummaryRows(html);
  ASSERT_THAT(rows, SizeIs(3));
  EXPECT_THAT(rows[1], ElementsAre("2", "0.0", "5", "0", "-", "-", "-", "-",
                                   "-", "-", "-", "-", "-",
                                   "5 <span class=\"codes\">(UNAVAILABLE "
                                   "5)</span>",
                                   "0"));
  // The empty step is left out of both charts.
  EXPECT_THAT(Polylines(html, 0, "series p50")[0], SizeIs(2));
  EXPECT_THAT(Polylines(html, 1, "curve"), SizeIs(2));
  EXPECT_EQ(XmlProblem(html), "");
}

// Every coordinate, in any chart, for inputs that invite division by zero.
void ExpectFiniteCoordinates(const std::string& html) {
  for (const char* name :
       {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height"}) {
    for (const std::string& value :
         ValuesAfter(html, absl::StrCat(" ", name, "=\""))) {
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      EXPECT_TRUE(*end == '\0' && std::isfinite(v) && v >= 0 && v <= 2000)
          << name << "=" << value;
    }
  }
  for (const std::string& points : ValuesAfter(html, " points=\"")) {
    EXPECT_THAT(points, testing::MatchesRegex("[0-9., ]+")) << points;
  }
}

TEST(RenderHtmlReportTest, DegenerateInputsStayFinite) {
  // No steps at all.
  std::string html = RenderHtmlReport(TestRun(), {});
  EXPECT_EQ(Count(html, "<svg"), 2);
  EXPECT_THAT(html, HasSubstr("nothing to plot"));
  EXPECT_THAT(SummaryRows(html), SizeIs(0));
  EXPECT_EQ(XmlProblem(html), "");
  ExpectFiniteCoordinates(html);

  // Only empty steps.
  html = RenderHtmlReport(TestRun(), {Empty(1), Empty(2)});
  EXPECT_EQ(Count(html, "nothing to plot"), 2);
  EXPECT_THAT(html, Not(HasSubstr("<polyline")));
  EXPECT_EQ(XmlProblem(html), "");
  ExpectFiniteCoordinates(html);

  // A single step whose values are all equal, and zero throughput.
  StepResult one = Closed(1, 100, 10);
  one.throughput_rps = 0;
  html = RenderHtmlReport(TestRun(), {one});
  EXPECT_THAT(Polylines(html, 0, "series p99")[0], SizeIs(1));
  EXPECT_EQ(XmlProblem(html), "");
  ExpectFiniteCoordinates(html);

  // Zero latencies (a log scale cannot place 0) and non-finite figures.
  StepResult zero;
  zero.concurrency = 1;
  zero.requests = zero.ok = 3;
  for (int i = 0; i < 3; ++i) zero.latency.Record(0);
  zero.throughput_rps = std::numeric_limits<double>::infinity();
  zero.latency_us.p99_us = std::numeric_limits<double>::quiet_NaN();
  html = RenderHtmlReport(TestRun(), {zero, Closed(2, 5, 1)});
  EXPECT_THAT(html, Not(testing::ContainsRegex("[Nn]a[Nn]|[Ii]nf\\b")));
  EXPECT_EQ(XmlProblem(html), "");
  ExpectFiniteCoordinates(html);
}

TEST(RenderHtmlReportTest, PerTargetTableOnlyWithSeveralTargets) {
  std::vector<StepResult> steps = {Closed(1, 100, 10)};
  steps[0].per_target = {{"127.0.0.1:8001", Counts(10, 10)}};
  EXPECT_THAT(RenderHtmlReport(TestRun(), steps),
              Not(HasSubstr("<table class=\"targets\">")));

  RunInfo run = TestRun();
  run.targets = {"127.0.0.1:8001", "127.0.0.1:8002"};
  steps[0].per_target = {{"127.0.0.1:8001", Counts(6, 6)},
                         {"127.0.0.1:8002", Counts(4, 3, 1)}};
  const std::string html = RenderHtmlReport(run, steps);
  const std::string table =
      Between(html, "<table class=\"targets\">", "</table>");
  EXPECT_THAT(
      table,
      HasSubstr("<tr><th rowspan=\"2\">concurrency 1</th><td "
                "class=\"t\">127.0.0.1:8001</td><td class=\"n\">6</td><td "
                "class=\"n\">6</td><td class=\"n\">0</td><td "
                "class=\"n\">0</td></tr>"));
  EXPECT_THAT(table, HasSubstr("<tr class=\"flagged\"><td "
                               "class=\"t\">127.0.0.1:8002</td><td "
                               "class=\"n\">4</td><td class=\"n\">3</td><td "
                               "class=\"n alert\">1</td>"));
}

TEST(RenderHtmlReportTest, RichReportIsWellFormed) {
  RunInfo run = TestRun();
  run.mode = LoadMode::kOpen;
  run.arrivals = "constant";
  run.targets = {"a:1", "b:2"};
  std::vector<StepResult> steps = {Open(10, 50, 100), Open(20, 60, 100),
                                   Empty(0)};
  steps[1].server.emplace();
  steps[1].server->queue_us = 1;
  steps[1].server->compute_us = 2;
  steps[1].wrong = 1;
  steps[1].wrong_examples = {"id 3: class 1 != 2"};
  steps[1].per_target = {{"a:1", Counts(50, 0)}, {"b:2", Counts(50, 0)}};
  steps[1].accuracy = 0.5;
  const std::string html = RenderHtmlReport(run, steps);
  EXPECT_EQ(XmlProblem(html), "");
  ExpectFiniteCoordinates(html);
  EXPECT_THAT(html, HasSubstr("<title>rnn-loadgen report</title>"));
  EXPECT_THAT(html, HasSubstr("<h1>rnn-loadgen report</h1>"));
  EXPECT_THAT(html, HasSubstr("<h2>Wrong answers</h2>"));
  EXPECT_THAT(html, HasSubstr("<h2>Per target</h2>"));
}

TEST(XmlProblemTest, CatchesWhatAStrictParserRejects) {
  const std::string head = "<!DOCTYPE html>\n<html>";
  EXPECT_EQ(XmlProblem(head + "<p>a &amp; b</p></html>"), "");
  EXPECT_NE(XmlProblem(head + "<p>a & b</p></html>"), "");
  EXPECT_NE(XmlProblem(head + "<p><b>a</p></b></html>"), "");
  EXPECT_NE(XmlProblem(head + "<p>a</html>"), "");
  EXPECT_NE(XmlProblem(head + "<br></html>"), "");
  EXPECT_NE(XmlProblem(head + "<p class=a>x</p></html>"), "");
  EXPECT_NE(XmlProblem(head + "<p>&nbsp;</p></html>"), "");
}

}  // namespace
}  // namespace rnn::loadgen
