#include "client/loadgen/report_html.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace rnn::loadgen {
namespace {

// ---------------------------------------------------------------------------
// Text.

constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at the start of `text` that
// encodes a character XML allows, or 0. XML 1.0 excludes surrogates, U+FFFE
// and U+FFFF, and a strict parser rejects the whole page for one bad byte.
int XmlCharLength(absl::string_view text) {
  const auto byte = [&](size_t i) {
    return static_cast<unsigned char>(text[i]);
  };
  const unsigned char lead = byte(0);
  int length;
  uint32_t code;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < static_cast<size_t>(length)) return 0;
  for (int i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3F);
  }
  static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kSmallest[length] || code > 0x10FFFF) return 0;  // Overlong.
  if (code >= 0xD800 && code <= 0xDFFF) return 0;
  if (code == 0xFFFE || code == 0xFFFF) return 0;
  return length;
}

void AppendEscaped(std::string& out, absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const int length = XmlCharLength(text.substr(i));
      if (length == 0) {
        out.append(kReplacementChar);
        ++i;
      } else {
        out.append(text.data() + i, length);
        i += length;
      }
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '\t':
      case '\n':
      case '\r':
        out += static_cast<char>(c);
        break;
      default:
        if (c < 0x20) {
          out.append(kReplacementChar);  // Not allowed in XML 1.0 at all.
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

std::string Escape(absl::string_view text) {
  std::string out;
  AppendEscaped(out, text);
  return out;
}

// Shown in a cell whose figure is missing or not a number.
constexpr char kNoValue[] = "-";

// `value` with `decimals` digits after the point; kNoValue when not finite.
std::string Fixed(double value, int decimals) {
  if (!std::isfinite(value)) return std::string(kNoValue);
  const int length = std::snprintf(nullptr, 0, "%.*f", decimals, value);
  std::string text(length, '\0');
  std::snprintf(text.data(), length + 1, "%.*f", decimals, value);
  return text;
}

// A figure to at most two decimals, without trailing zeros: "100", "12.5".
std::string Compact(double value) {
  std::string text = Fixed(value, 2);
  if (text.find('.') == std::string::npos) return text;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

// A duration given in microseconds, in the unit that suits it: "250 ns",
// "120 &#181;s", "1.5 ms", "2 s". Markup (a character reference).
std::string Duration(double us) {
  if (!std::isfinite(us)) return kNoValue;
  char buffer[64];
  if (us >= 1e6) {
    std::snprintf(buffer, sizeof(buffer), "%.4g s", us / 1e6);
  } else if (us >= 1e3) {
    std::snprintf(buffer, sizeof(buffer), "%.4g ms", us / 1e3);
  } else if (us >= 1) {
    std::snprintf(buffer, sizeof(buffer), "%.4g &#181;s", us);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.4g ns", us * 1e3);
  }
  return buffer;
}

// A pixel coordinate. Scales clamp to the plot area; the guard here keeps a
// stray non-finite value out of the markup all the same.
std::string Px(double value) {
  return Fixed(std::isfinite(value) ? value : 0, 1);
}

// ---------------------------------------------------------------------------
// Steps.

bool AllMode(const std::vector<StepResult>& steps, LoadMode mode) {
  return std::all_of(steps.begin(), steps.end(),
                     [&](const StepResult& s) { return s.mode == mode; });
}

// Short label for a chart point: "8" (concurrency) or "100/s" (rate).
std::string PointLabel(const StepResult& step) {
  if (step.mode == LoadMode::kClosed) return absl::StrCat(step.concurrency);
  return absl::StrCat(Compact(step.rate), "/s");
}

// Full name of a step: "concurrency 8" or "rate 100 req/s".
std::string StepName(const StepResult& step) {
  if (step.mode == LoadMode::kClosed) {
    return absl::StrCat("concurrency ", step.concurrency);
  }
  return absl::StrCat("rate ", Compact(step.rate), " req/s");
}

bool HasLatency(const StepResult& step) { return step.latency.count() > 0; }

// Ten colours distinct on white (matplotlib's tab10).
constexpr const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                    "#bcbd22", "#17becf"};
constexpr int kColourCount = sizeof(kColours) / sizeof(kColours[0]);

// Colour and dash pattern of series `i`: past ten series the colours come
// round again, dashed.
std::string SeriesStroke(int i) {
  static constexpr const char* kDashes[] = {"", "6 3", "2 2", "8 3 2 3"};
  const char* dash = kDashes[(i / kColourCount) % 4];
  std::string stroke =
      absl::StrCat("stroke=\"", kColours[i % kColourCount], "\"");
  if (*dash != '\0') {
    absl::StrAppend(&stroke, " stroke-dasharray=\"", dash, "\"");
  }
  return stroke;
}

// ---------------------------------------------------------------------------
// Chart geometry.

// Smallest latency a log axis shows, microseconds (1 ns): the histogram's
// resolution, and a floor for zero values, which a log scale cannot place.
constexpr double kFloorUs = 1e-3;

// Maps [lo, hi] (or [log10 lo, log10 hi]) onto pixels [px_lo, px_hi],
// clamping values outside the range to its ends.
class Scale {
 public:
  static Scale Linear(double lo, double hi, double px_lo, double px_hi) {
    return Scale(lo, hi, px_lo, px_hi, false);
  }
  static Scale Log(double lo, double hi, double px_lo, double px_hi) {
    return Scale(std::log10(lo), std::log10(hi), px_lo, px_hi, true);
  }

  double operator()(double value) const {
    if (log_) value = std::log10(std::max(value, kFloorUs));
    double t = (value - lo_) / (hi_ - lo_);
    if (!std::isfinite(t)) t = 0;
    t = std::clamp(t, 0.0, 1.0);
    return px_lo_ + t * (px_hi_ - px_lo_);
  }

 private:
  Scale(double lo, double hi, double px_lo, double px_hi, bool log)
      : lo_(lo), hi_(hi), px_lo_(px_lo), px_hi_(px_hi), log_(log) {
    if (!std::isfinite(lo_)) lo_ = 0;
    if (!std::isfinite(hi_) || hi_ <= lo_) hi_ = lo_ + 1;
  }

  double lo_, hi_, px_lo_, px_hi_;
  bool log_;
};

// A linear axis from 0: its top and tick step, 1, 2 or 5 times a power of
// ten, about five ticks.
struct LinearAxis {
  double hi = 1;
  double step = 0.2;
  int decimals = 1;  // Of the tick labels.
};

LinearAxis NiceLinearAxis(double max_value) {
  if (!std::isfinite(max_value) || max_value <= 0) max_value = 1;
  const double target = max_value * 1.05;  // Headroom over the last point.
  const double raw = target / 5;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double multiple = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
  LinearAxis axis;
  axis.step = multiple * magnitude;
  axis.hi = std::ceil(target / axis.step - 1e-9) * axis.step;
  axis.decimals =
      std::max(0, -static_cast<int>(std::floor(std::log10(axis.step) + 1e-9)));
  return axis;
}

// Nearest value 1, 2 or 5 times a power of ten at or below (at or above)
// `value`, for the ends of a log axis.
double NiceBelow(double value) {
  const double decade = std::pow(10, std::floor(std::log10(value) + 1e-9));
  for (double m : {5.0, 2.0, 1.0}) {
    if (m * decade <= value * (1 + 1e-9)) return m * decade;
  }
  return decade;
}

double NiceAbove(double value) {
  const double decade = std::pow(10, std::floor(std::log10(value) + 1e-9));
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * decade >= value * (1 - 1e-9)) return m * decade;
  }
  return 10 * decade;
}

// The ends of a log latency axis holding [min_us, max_us]; never empty.
std::pair<double, double> LogRange(double min_us, double max_us) {
  if (!std::isfinite(min_us) || min_us < kFloorUs) min_us = kFloorUs;
  if (!std::isfinite(max_us) || max_us < min_us) max_us = min_us;
  const double lo = NiceBelow(min_us);
  double hi = NiceAbove(max_us);
  if (hi <= lo * (1 + 1e-9)) hi = NiceAbove(lo * 1.5);
  return {lo, hi};
}

// Tick values of a log axis over [lo, hi]: denser the narrower it is.
std::vector<double> LogTicks(double lo, double hi) {
  const double ratio = hi / lo;
  std::vector<double> multiples;
  if (ratio <= 3) {
    multiples = {1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8};
  } else if (ratio <= 30) {
    multiples = {1, 2, 3, 5};
  } else if (ratio <= 1e4) {
    multiples = {1, 2, 5};
  } else {
    multiples = {1};
  }
  std::vector<double> ticks;
  const int first = static_cast<int>(std::floor(std::log10(lo))) - 1;
  const int last = static_cast<int>(std::ceil(std::log10(hi)));
  for (int e = first; e <= last; ++e) {
    for (double m : multiples) {
      const double value = m * std::pow(10, e);
      if (value >= lo * (1 - 1e-9) && value <= hi * (1 + 1e-9)) {
        ticks.push_back(value);
      }
    }
  }
  return ticks;
}

struct PlotArea {
  double left, top, right, bottom;
};

void AppendSvgOpen(std::string& out, double width, double height,
                   absl::string_view label) {
  absl::StrAppend(&out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"",
                  Px(width), "\" height=\"", Px(height), "\" viewBox=\"0 0 ",
                  Px(width), " ", Px(height),
                  "\" font-family=\"system-ui, Helvetica, Arial, sans-serif\" "
                  "font-size=\"12\" role=\"img\" aria-label=\"",
                  label, "\">\n");
  absl::StrAppend(
      &out,
      "<rect class=\"background\" fill=\"#ffffff\" x=\"0\" y=\"0\" width=\"",
      Px(width), "\" height=\"", Px(height), "\"/>\n");
}

// A horizontal grid line and label at latency `us` on the y axis.
void AppendLatencyTicks(std::string& out, const Scale& y, double lo, double hi,
                        const PlotArea& area) {
  for (double us : LogTicks(lo, hi)) {
    const std::string py = Px(y(us));
    absl::StrAppend(
        &out, "<line class=\"grid\" stroke=\"#e6e6e6\" x1=\"", Px(area.left),
        "\" y1=\"", py, "\" x2=\"", Px(area.right), "\" y2=\"", py,
        "\"/>\n<text class=\"tick\" fill=\"#333333\" x=\"", Px(area.left - 6),
        "\" y=\"", py, "\" dy=\"4\" text-anchor=\"end\">", Duration(us),
        "</text>\n");
  }
}

void AppendFrame(std::string& out, const PlotArea& area,
                 absl::string_view x_title, absl::string_view y_title) {
  absl::StrAppend(&out,
                  "<rect class=\"frame\" fill=\"none\" stroke=\"#888888\" x=\"",
                  Px(area.left), "\" y=\"", Px(area.top), "\" width=\"",
                  Px(area.right - area.left), "\" height=\"",
                  Px(area.bottom - area.top), "\"/>\n");
  const double mid_x = (area.left + area.right) / 2;
  const double mid_y = (area.top + area.bottom) / 2;
  absl::StrAppend(&out, "<text class=\"axis-title\" font-size=\"13\" x=\"",
                  Px(mid_x), "\" y=\"", Px(area.bottom + 40),
                  "\" text-anchor=\"middle\">", x_title, "</text>\n");
  absl::StrAppend(
      &out, "<text class=\"axis-title\" font-size=\"13\" x=\"18\" y=\"",
      Px(mid_y), "\" text-anchor=\"middle\" transform=\"rotate(-90 18 ",
      Px(mid_y), ")\">", y_title, "</text>\n");
}

void AppendCentredNote(std::string& out, const PlotArea& area,
                       absl::string_view text) {
  absl::StrAppend(
      &out, "<text class=\"empty\" font-size=\"14\" fill=\"#888888\" x=\"",
      Px((area.left + area.right) / 2), "\" y=\"",
      Px((area.top + area.bottom) / 2), "\" text-anchor=\"middle\">", text,
      "</text>\n");
}

// "x,y x,y ...".
std::string Points(const std::vector<std::pair<double, double>>& points) {
  std::vector<std::string> parts;
  parts.reserve(points.size());
  for (const auto& [x, y] : points) {
    parts.push_back(absl::StrCat(Px(x), ",", Px(y)));
  }
  return absl::StrJoin(parts, " ");
}

// ---------------------------------------------------------------------------
// Chart 1: p50 and p99 latency against throughput.

void AppendThroughputChart(std::string& out,
                           const std::vector<StepResult>& steps) {
  constexpr double kWidth = 820, kHeight = 440;
  const PlotArea area{80, 40, kWidth - 30, kHeight - 60};

  std::vector<const StepResult*> plotted;
  double max_rps = 0;
  double min_us = std::numeric_limits<double>::infinity(), max_us = 0;
  for (const StepResult& step : steps) {
    if (!HasLatency(step)) continue;
    plotted.push_back(&step);
    if (std::isfinite(step.throughput_rps)) {
      max_rps = std::max(max_rps, step.throughput_rps);
    }
    for (double us : {step.latency_us.p50_us, step.latency_us.p99_us}) {
      if (!std::isfinite(us)) continue;
      min_us = std::min(min_us, us);
      max_us = std::max(max_us, us);
    }
  }
  const LinearAxis x_axis = NiceLinearAxis(max_rps);
  const auto [lo_us, hi_us] = LogRange(min_us, max_us);
  const Scale x = Scale::Linear(0, x_axis.hi, area.left, area.right);
  const Scale y = Scale::Log(lo_us, hi_us, area.bottom, area.top);

  AppendSvgOpen(out, kWidth, kHeight, "latency against throughput");
  for (int k = 0; k * x_axis.step <= x_axis.hi * (1 + 1e-9); ++k) {
    const double rps = k * x_axis.step;
    const std::string px = Px(x(rps));
    absl::StrAppend(
        &out, "<line class=\"grid\" stroke=\"#e6e6e6\" x1=\"", px, "\" y1=\"",
        Px(area.top), "\" x2=\"", px, "\" y2=\"", Px(area.bottom),
        "\"/>\n<text class=\"tick\" fill=\"#333333\" x=\"", px, "\" y=\"",
        Px(area.bottom + 18), "\" text-anchor=\"middle\">",
        Fixed(rps, x_axis.decimals), "</text>\n");
  }
  AppendLatencyTicks(out, y, lo_us, hi_us, area);
  AppendFrame(out, area, "throughput (OK answers/s)", "latency (log scale)");

  struct Series {
    const char* name;
    double LatencySummary::*field;
    const char* colour;
    double label_dy;  // Labels above p99's points, below p50's.
  };
  const Series series[] = {{"p50", &LatencySummary::p50_us, kColours[0], 16},
                           {"p99", &LatencySummary::p99_us, kColours[3], -8}};
  for (int s = 0; s < 2; ++s) {
    const double lx = area.left + 10 + s * 80;
    absl::StrAppend(&out, "<line x1=\"", Px(lx), "\" y1=\"20\" x2=\"",
                    Px(lx + 24), "\" y2=\"20\" stroke=\"", series[s].colour,
                    "\" stroke-width=\"2\"/>\n<circle cx=\"", Px(lx + 12),
                    "\" cy=\"20\" r=\"3.5\" fill=\"", series[s].colour,
                    "\"/>\n<text class=\"legend\" x=\"", Px(lx + 30),
                    "\" y=\"24\">", series[s].name, "</text>\n");
  }

  if (plotted.empty()) {
    AppendCentredNote(out, area, "No step had OK answers: nothing to plot.");
  }
  for (const Series& s : series) {
    std::vector<std::pair<double, double>> points;
    for (const StepResult* step : plotted) {
      points.emplace_back(x(step->throughput_rps),
                          y(step->latency_us.*s.field));
    }
    if (points.empty()) continue;
    absl::StrAppend(&out, "<polyline class=\"series ", s.name, "\" points=\"",
                    Points(points), "\" fill=\"none\" stroke=\"", s.colour,
                    "\" stroke-width=\"2\"/>\n");
    for (size_t i = 0; i < points.size(); ++i) {
      const StepResult& step = *plotted[i];
      absl::StrAppend(
          &out, "<circle cx=\"", Px(points[i].first), "\" cy=\"",
          Px(points[i].second), "\" r=\"3.5\" fill=\"", s.colour, "\"><title>",
          StepName(step), ": ", Fixed(step.throughput_rps, 1), " req/s, ",
          s.name, " ", Duration(step.latency_us.*s.field),
          "</title></circle>\n<text class=\"point-label\" font-size=\"11\" "
          "fill=\"#444444\" x=\"",
          Px(points[i].first + 5), "\" y=\"", Px(points[i].second + s.label_dy),
          "\">", PointLabel(step), "</text>\n");
    }
  }
  out += "</svg>\n";
}

// ---------------------------------------------------------------------------
// Chart 2: latency by percentile.

// The value a histogram reports for bucket `i`, as Percentile() does: the
// bucket's midpoint, never above the maximum recorded.
double BucketValueNs(const LatencyHistogram& h, int i) {
  const double mid =
      (LatencyHistogram::BucketLow(i) + LatencyHistogram::BucketHigh(i) - 1) /
      2.0;
  return std::min(mid, static_cast<double>(h.max_ns()));
}

// Percentile p as log10(1 / (1 - p)) when `seen` of `n` values are at or
// below: 0 at 0%, 1 at 90%, 2 at 99%. 100% is infinitely far; it is drawn
// at `x_max`, the axis end, where every curve reaches its maximum.
double Nines(int64_t seen, int64_t n, double x_max) {
  if (seen >= n) return x_max;
  return std::min(x_max, std::log10(static_cast<double>(n) / (n - seen)));
}

// The step function "latency at percentile", as (nines, microseconds)
// points: each bucket holds the percentiles from the count below it to the
// count through it.
std::vector<std::pair<double, double>> PercentileCurve(
    const LatencyHistogram& h, double x_max) {
  std::vector<std::pair<double, double>> curve;
  const int64_t n = h.count();
  if (n <= 0) return curve;
  int64_t seen = 0;
  for (int i = 0; i < LatencyHistogram::kBucketCount && seen < n; ++i) {
    const int64_t count = h.bucket_count(i);
    if (count <= 0) continue;
    const double us = BucketValueNs(h, i) / 1e3;
    curve.emplace_back(Nines(seen, n, x_max), us);
    seen += count;
    curve.emplace_back(Nines(seen, n, x_max), us);
  }
  return curve;
}

// Pixel points without repeats and without the middle of three points on
// one horizontal or vertical line: a step curve of thousands of buckets
// becomes a few hundred points.
std::vector<std::pair<double, double>> Simplify(
    const std::vector<std::pair<double, double>>& points) {
  std::vector<std::pair<double, double>> out;
  for (auto [x, y] : points) {
    x = std::round(x * 10) / 10;
    y = std::round(y * 10) / 10;
    if (!out.empty() && out.back() == std::make_pair(x, y)) continue;
    if (out.size() >= 2) {
      const auto& a = out[out.size() - 2];
      const auto& b = out.back();
      if ((a.second == b.second && b.second == y) ||
          (a.first == b.first && b.first == x)) {
        out.back() = {x, y};
        continue;
      }
    }
    out.emplace_back(x, y);
  }
  return out;
}

// "0%", "90%", "99%", "99.9%", ... for log10(1 / (1 - p)) = nines.
std::string NinesLabel(int nines) {
  if (nines == 0) return "0%";
  if (nines == 1) return "90%";
  if (nines == 2) return "99%";
  return absl::StrCat("99.", std::string(nines - 2, '9'), "%");
}

void AppendPercentileChart(std::string& out,
                           const std::vector<StepResult>& steps) {
  constexpr double kWidth = 880;
  constexpr double kLegendRow = 18;
  const double height =
      std::max(440.0, 50 + kLegendRow * static_cast<double>(steps.size()));
  const PlotArea area{80, 40, 580, height - 60};

  // To 99.99% at least; further when there are enough values to say
  // anything there, up to 99.99999%.
  int64_t max_count = 0;
  double min_us = std::numeric_limits<double>::infinity(), max_us = 0;
  for (const StepResult& step : steps) {
    if (!HasLatency(step)) continue;
    max_count = std::max(max_count, step.latency.count());
    for (int i = 0; i < LatencyHistogram::kBucketCount; ++i) {
      if (step.latency.bucket_count(i) > 0) {
        min_us = std::min(min_us, BucketValueNs(step.latency, i) / 1e3);
        break;
      }
    }
    max_us = std::max(max_us, step.latency.max_ns() / 1e3);
  }
  const int x_max = std::clamp(
      static_cast<int>(std::ceil(std::log10(std::max<int64_t>(max_count, 1)))),
      4, 7);
  const auto [lo_us, hi_us] = LogRange(min_us, max_us);
  const Scale x = Scale::Linear(0, x_max, area.left, area.right);
  const Scale y = Scale::Log(lo_us, hi_us, area.bottom, area.top);

  AppendSvgOpen(out, kWidth, height, "latency by percentile");
  std::vector<std::pair<double, std::string>> x_ticks = {
      {std::log10(2.0), "50%"}};
  for (int nines = 0; nines <= x_max; ++nines) {
    x_ticks.emplace_back(nines, NinesLabel(nines));
  }
  for (const auto& [nines, label] : x_ticks) {
    const std::string px = Px(x(nines));
    absl::StrAppend(
        &out, "<line class=\"grid\" stroke=\"#e6e6e6\" x1=\"", px, "\" y1=\"",
        Px(area.top), "\" x2=\"", px, "\" y2=\"", Px(area.bottom),
        "\"/>\n<text class=\"tick\" fill=\"#333333\" x=\"", px, "\" y=\"",
        Px(area.bottom + 18), "\" text-anchor=\"middle\">", label, "</text>\n");
  }
  AppendLatencyTicks(out, y, lo_us, hi_us, area);
  AppendFrame(out, area, "percentile (log scale of 1/(1 - p))",
              "latency (log scale)");

  bool any_curve = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepResult& step = steps[i];
    const int index = static_cast<int>(i);
    const double ly = area.top + 8 + kLegendRow * index;
    const double lx = area.right + 20;
    const bool has_latency = HasLatency(step);
    absl::StrAppend(&out, "<line x1=\"", Px(lx), "\" y1=\"", Px(ly), "\" x2=\"",
                    Px(lx + 24), "\" y2=\"", Px(ly), "\" ", SeriesStroke(index),
                    " stroke-width=\"2\"/>\n", "<text class=\"legend\" x=\"",
                    Px(lx + 30), "\" y=\"", Px(ly + 4), "\">", StepName(step),
                    has_latency ? "" : " (no OK answers)", "</text>\n");
    if (!has_latency) continue;
    std::vector<std::pair<double, double>> pixels;
    for (const auto& [nines, us] : PercentileCurve(step.latency, x_max)) {
      pixels.emplace_back(x(nines), y(us));
    }
    any_curve = true;
    absl::StrAppend(&out, "<polyline class=\"curve\" points=\"",
                    Points(Simplify(pixels)), "\" fill=\"none\" ",
                    SeriesStroke(index), " stroke-width=\"1.5\"><title>",
                    StepName(step), "</title></polyline>\n");
  }
  if (!any_curve) {
    AppendCentredNote(out, area, "No step had OK answers: nothing to plot.");
  }
  out += "</svg>\n";
}

// ---------------------------------------------------------------------------
// Tables.

void AppendInfoRow(std::string& out, absl::string_view name,
                   absl::string_view escaped_value) {
  absl::StrAppend(&out, "<tr><th>", name, "</th><td>", escaped_value,
                  "</td></tr>\n");
}

void AppendRunInfo(std::string& out, const RunInfo& run, size_t step_count) {
  out += "<table class=\"info\">\n";
  std::vector<std::string> targets;
  for (const std::string& target : run.targets) {
    targets.push_back(Escape(target));
  }
  AppendInfoRow(
      out, run.targets.size() == 1 ? "target" : "targets",
      targets.empty() ? std::string(kNoValue) : absl::StrJoin(targets, ", "));
  std::string model = Escape(run.model);
  if (!run.model_version.empty()) {
    absl::StrAppend(&model, " version ", Escape(run.model_version));
  }
  AppendInfoRow(out, "model", model);
  AppendInfoRow(out, "mode",
                absl::StrCat(LoadModeName(run.mode), " loop, ", step_count,
                             step_count == 1 ? " step" : " steps"));
  if (!run.transport.empty()) {
    AppendInfoRow(out, "transport", Escape(run.transport));
  }
  if (run.mode == LoadMode::kOpen || !run.arrivals.empty()) {
    AppendInfoRow(out, "arrivals", Escape(run.arrivals));
  }
  AppendInfoRow(
      out, "batch",
      absl::StrCat(run.batch, run.batch == 1 ? " sequence" : " sequences",
                   " per request"));
  AppendInfoRow(out, "inputs", Escape(run.inputs));
  AppendInfoRow(out, "verify", Escape(run.verify));
  AppendInfoRow(out, "started at", Escape(run.started_at));
  AppendInfoRow(out, "command line",
                absl::StrCat("<code>", Escape(run.command_line), "</code>"));
  out += "</table>\n";
}

// One summary latency column: a field of LatencySummary.
struct LatencyColumn {
  const char* name;
  double LatencySummary::*field;
};
constexpr LatencyColumn kLatencyColumns[] = {
    {"mean", &LatencySummary::mean_us}, {"p50", &LatencySummary::p50_us},
    {"p90", &LatencySummary::p90_us},   {"p95", &LatencySummary::p95_us},
    {"p99", &LatencySummary::p99_us},   {"p99.9", &LatencySummary::p999_us},
    {"max", &LatencySummary::max_us}};

// A latency column turns to milliseconds when its largest figure reaches
// this, so that figures stay short (to three decimals: whole microseconds).
constexpr double kMillisecondColumnUs = 10'000;

void AppendCell(std::string& out, absl::string_view text,
                absl::string_view cls = "n") {
  absl::StrAppend(&out, "<td class=\"", cls, "\">", text, "</td>");
}

void AppendSummary(std::string& out, const std::vector<StepResult>& steps) {
  const auto any = [&](auto predicate) {
    return std::any_of(steps.begin(), steps.end(), predicate);
  };
  const bool open_columns =
      any([](const StepResult& s) { return s.schedule.has_value(); });
  const bool accuracy_column =
      any([](const StepResult& s) { return s.accuracy.has_value(); });
  const bool windows_column =
      any([](const StepResult& s) { return s.windows > 1 || !s.stable; });
  const bool server_columns =
      any([](const StepResult& s) { return s.server.has_value(); });
  bool in_ms[std::size(kLatencyColumns)] = {};
  for (size_t c = 0; c < std::size(kLatencyColumns); ++c) {
    for (const StepResult& step : steps) {
      const double us = step.latency_us.*kLatencyColumns[c].field;
      if (HasLatency(step) && std::isfinite(us) && us >= kMillisecondColumnUs) {
        in_ms[c] = true;
      }
    }
  }

  out += "<div class=\"wide\">\n<table class=\"summary\">\n<thead><tr>";
  const char* first = AllMode(steps, LoadMode::kClosed) ? "concurrency"
                      : AllMode(steps, LoadMode::kOpen) ? "rate (req/s)"
                                                        : "step";
  absl::StrAppend(&out, "<th>", first,
                  "</th><th>time (s)</th><th>requests</th><th>ok</th>"
                  "<th>throughput (req/s)</th><th>sequences/s</th>");
  for (size_t c = 0; c < std::size(kLatencyColumns); ++c) {
    absl::StrAppend(&out, "<th>", kLatencyColumns[c].name, " (",
                    in_ms[c] ? "ms" : "&#181;s", ")</th>");
  }
  out += "<th>errors</th><th>wrong</th>";
  if (accuracy_column) out += "<th>accuracy</th>";
  if (open_columns) {
    out += "<th>sent (req/s)</th><th>rate kept</th><th>late p99 (&#181;s)</th>";
  }
  if (windows_column) out += "<th>windows</th>";
  if (server_columns) {
    out +=
        "<th>server queue (&#181;s)</th><th>server compute (&#181;s)</th>"
        "<th>mean batch</th>";
  }
  out += "</tr></thead>\n<tbody>\n";

  const bool mixed =
      !AllMode(steps, LoadMode::kClosed) && !AllMode(steps, LoadMode::kOpen);
  for (const StepResult& step : steps) {
    const int64_t errors = step.error_count();
    const bool rate_missed = step.schedule.has_value() && !step.schedule->kept;
    const bool flagged = errors > 0 || step.wrong > 0 || rate_missed;
    out += flagged ? "<tr class=\"step flagged\">" : "<tr class=\"step\">";
    const std::string label = mixed ? StepName(step)
                              : step.mode == LoadMode::kClosed
                                  ? absl::StrCat(step.concurrency)
                                  : Compact(step.rate);
    absl::StrAppend(&out, "<th class=\"n\">", label, "</th>");
    AppendCell(out, Fixed(step.duration_s, 1));
    AppendCell(out, absl::StrCat(step.requests));
    AppendCell(out, absl::StrCat(step.ok));
    AppendCell(out, Fixed(step.throughput_rps, 1));
    AppendCell(out, Fixed(step.sequences_per_s, 1));
    for (size_t c = 0; c < std::size(kLatencyColumns); ++c) {
      const double us = step.latency_us.*kLatencyColumns[c].field;
      AppendCell(out, !HasLatency(step) ? std::string(kNoValue)
                      : in_ms[c]        ? Fixed(us / 1e3, 3)
                                        : Fixed(us, 1));
    }
    if (errors == 0) {
      AppendCell(out, "0");
    } else {
      std::vector<std::string> codes;
      for (const auto& [code, count] : step.errors) {
        codes.push_back(absl::StrCat(Escape(code), " ", count));
      }
      AppendCell(out,
                 absl::StrCat(errors, " <span class=\"codes\">(",
                              absl::StrJoin(codes, ", "), ")</span>"),
                 "n alert");
    }
    AppendCell(out, absl::StrCat(step.wrong), step.wrong > 0 ? "n alert" : "n");
    if (accuracy_column) {
      AppendCell(out, step.accuracy.has_value()
                          ? absl::StrCat(Fixed(*step.accuracy * 100, 2), "%")
                          : std::string(kNoValue));
    }
    if (open_columns) {
      if (step.schedule.has_value()) {
        AppendCell(out, Fixed(step.schedule->sent_rps, 1));
        AppendCell(out, step.schedule->kept ? "yes" : "no",
                   step.schedule->kept ? "c" : "c alert");
        AppendCell(out, Fixed(step.schedule->behind_us.p99_us, 1));
      } else {
        for (int i = 0; i < 3; ++i) AppendCell(out, kNoValue);
      }
    }
    if (windows_column) {
      AppendCell(out,
                 absl::StrCat(step.windows, step.stable ? "" : " (unstable)"),
                 step.stable ? "n" : "n caution");
    }
    if (server_columns) {
      if (step.server.has_value()) {
        AppendCell(out, Fixed(step.server->queue_us, 1));
        AppendCell(out, Fixed(step.server->compute_us, 1));
        AppendCell(out, Fixed(step.server->batch_size, 2));
      } else {
        for (int i = 0; i < 3; ++i) AppendCell(out, kNoValue);
      }
    }
    out += "</tr>\n";
  }
  out += "</tbody>\n</table>\n</div>\n";
  out +=
      "<p class=\"note\">Highlighted rows had errors, wrong answers or an "
      "open-loop rate not kept. Latencies are of OK answers";
  if (open_columns) {
    out +=
        "; an open-loop request's latency runs from its intended send time, "
        "so a sender that falls behind does not hide queueing. Late p99: how "
        "far behind its schedule the sender was, at the 99th percentile";
  }
  out += ".</p>\n";
}

bool ShowPerTarget(const RunInfo& run, const std::vector<StepResult>& steps) {
  if (run.targets.size() > 1) return true;
  return std::any_of(steps.begin(), steps.end(), [](const StepResult& s) {
    return s.per_target.size() > 1;
  });
}

void AppendPerTarget(std::string& out, const std::vector<StepResult>& steps) {
  out +=
      "<table class=\"targets\">\n<thead><tr><th>step</th><th>target</th>"
      "<th>requests</th><th>ok</th><th>errors</th><th>wrong</th></tr>"
      "</thead>\n<tbody>\n";
  for (const StepResult& step : steps) {
    bool first = true;
    for (const auto& [target, counts] : step.per_target) {
      const bool flagged = counts.errors > 0 || counts.wrong > 0;
      out += flagged ? "<tr class=\"flagged\">" : "<tr>";
      if (first) {
        absl::StrAppend(&out, "<th rowspan=\"", step.per_target.size(), "\">",
                        StepName(step), "</th>");
        first = false;
      }
      AppendCell(out, Escape(target), "t");
      AppendCell(out, absl::StrCat(counts.requests));
      AppendCell(out, absl::StrCat(counts.ok));
      AppendCell(out, absl::StrCat(counts.errors),
                 counts.errors > 0 ? "n alert" : "n");
      AppendCell(out, absl::StrCat(counts.wrong),
                 counts.wrong > 0 ? "n alert" : "n");
      out += "</tr>\n";
    }
  }
  out += "</tbody>\n</table>\n";
}

void AppendWrongExamples(std::string& out,
                         const std::vector<StepResult>& steps) {
  for (const StepResult& step : steps) {
    if (step.wrong_examples.empty()) continue;
    absl::StrAppend(&out, "<h3>", StepName(step), ": ", step.wrong,
                    " wrong</h3>\n<ul class=\"wrong\">\n");
    for (const std::string& example : step.wrong_examples) {
      absl::StrAppend(&out, "<li><code>", Escape(example), "</code></li>\n");
    }
    out += "</ul>\n";
  }
}

// Small, print-friendly, no web fonts. Kept free of '<' and '&', which
// would need escaping in XML. The charts carry their own presentation
// attributes instead, so one copied out of the page looks the same.
constexpr absl::string_view kStyle = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  color: #222; margin: 24px auto; max-width: 1800px; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; }
th, td { padding: 4px 6px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
thead th { background: #f3f5f8; text-align: right; border-bottom: 2px solid #ccd; white-space: nowrap; }
table.info th { text-align: left; color: #555; font-weight: normal; padding-right: 16px; }
table.info td { word-break: break-all; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.c { text-align: center; }
td.t { text-align: left; font-family: ui-monospace, Menlo, Consolas, monospace; }
tbody tr:hover { background: #f7f9fc; }
tr.flagged { background: #fdecea; }
tr.flagged:hover { background: #fbdcd8; }
td.alert { color: #b00020; font-weight: bold; }
td.caution { color: #8a5a00; }
span.codes { font-weight: normal; font-size: 0.85em; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
p.note { color: #555; font-size: 0.85em; max-width: 900px; }
div.wide { overflow-x: auto; }
svg { max-width: 100%; height: auto; display: block; margin: 8px 0; }
ul.wrong li { margin: 2px 0; }
footer { margin-top: 2em; color: #888; font-size: 0.8em; }
)css";

}  // namespace

std::string RenderHtmlReport(const RunInfo& run,
                             const std::vector<StepResult>& steps) {
  std::string out;
  out.reserve(64 << 10);
  absl::StrAppend(
      &out,
      "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" "
      "lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta "
      "name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
      "<title>rnn-loadgen report</title>\n<style>",
      kStyle, "</style>\n</head>\n<body>\n<h1>rnn-loadgen report</h1>\n");
  AppendRunInfo(out, run, steps.size());

  out += "<h2>Summary</h2>\n";
  AppendSummary(out, steps);

  out += "<h2>Latency against throughput</h2>\n";
  AppendThroughputChart(out, steps);
  out +=
      "<p class=\"note\">One point per step, joined in sweep order and "
      "labelled with the step's concurrency or rate. Steps without OK answers "
      "are not plotted.</p>\n";

  out += "<h2>Latency by percentile</h2>\n";
  AppendPercentileChart(out, steps);
  out +=
      "<p class=\"note\">Each step's latency at every percentile, from its "
      "histogram (values within 0.4%). The x axis is log10(1/(1 - p)), so "
      "each tick adds a nine; a curve reaches its step's maximum at the right "
      "edge.";
  const int64_t empty =
      std::count_if(steps.begin(), steps.end(),
                    [](const StepResult& s) { return !HasLatency(s); });
  if (empty > 0) {
    absl::StrAppend(&out, " ", empty, empty == 1 ? " step has" : " steps have",
                    " no OK answers and no curve.");
  }
  out += "</p>\n";

  if (ShowPerTarget(run, steps)) {
    out += "<h2>Per target</h2>\n";
    AppendPerTarget(out, steps);
  }
  if (std::any_of(steps.begin(), steps.end(), [](const StepResult& s) {
        return !s.wrong_examples.empty();
      })) {
    out += "<h2>Wrong answers</h2>\n";
    AppendWrongExamples(out, steps);
  }
  out += "<footer>Written by rnn-loadgen.</footer>\n</body>\n</html>\n";
  return out;
}

}  // namespace rnn::loadgen
