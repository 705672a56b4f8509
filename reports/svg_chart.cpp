#include "reports/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace qb::reports {

namespace {

// Canvas in SVG user units; the <svg> scales to the page width through its viewBox.
constexpr double kWidth = 960, kHeight = 420;
constexpr double kLeft = 78, kRight = 280, kTop = 36, kBottom = 56;  // right margin holds the legend
const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
constexpr size_t kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

std::string tick_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

double forward(Scale s, double v) {
  switch (s) {
    case Scale::log2: return std::log2(v);
    case Scale::log10: return std::log10(v);
    default: return v;
  }
}

bool plottable(Scale s, double v) { return std::isfinite(v) && (s == Scale::linear || v > 0); }

// Maps data values to pixels along one axis and chooses its ticks.
struct AxisMap {
  Scale scale;
  double lo, hi;          // in transformed units (log2/log10 of the value on log axes)
  double pixel_lo, pixel_hi;
  std::vector<double> ticks;  // in data units

  double operator()(double v) const { return pixel_lo + (forward(scale, v) - lo) / (hi - lo) * (pixel_hi - pixel_lo); }
};

AxisMap make_axis(const Axis& axis, double data_min, double data_max, double pixel_lo, double pixel_hi) {
  AxisMap map{axis.scale, 0, 1, pixel_lo, pixel_hi, {}};
  if (!(data_min <= data_max)) data_min = data_max = axis.scale == Scale::linear ? 0 : 1;
  if (axis.scale == Scale::linear) {
    if (axis.include_zero) data_min = std::min(data_min, 0.0), data_max = std::max(data_max, 0.0);
    double span = data_max - data_min;
    if (span <= 0) span = std::max(std::fabs(data_max), 1.0) * 0.1;
    const double lo = data_min - (axis.include_zero && data_min == 0 ? 0 : span * 0.08);
    const double hi = data_max + span * 0.08;
    // A 1-2-5 step giving about six ticks.
    const double raw = (hi - lo) / 6, mag = std::pow(10, std::floor(std::log10(raw)));
    const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
    map.lo = std::floor(lo / step) * step;
    map.hi = std::ceil(hi / step) * step;
    for (double t = map.lo; t <= map.hi + step * 1e-9; t += step) map.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
    return map;
  }
  const double base = axis.scale == Scale::log2 ? 2 : 10;
  map.lo = std::floor(forward(axis.scale, data_min) - 1e-9);
  map.hi = std::ceil(forward(axis.scale, data_max) + 1e-9);
  if (map.hi <= map.lo) map.hi = map.lo + 1;
  for (double e = map.lo; e <= map.hi; ++e) {
    map.ticks.push_back(std::pow(base, e));
    // Within one or two decades the powers of ten alone leave the axis unreadable.
    if (axis.scale == Scale::log10 && map.hi - map.lo <= 2 && e < map.hi)
      for (double m : {2.0, 5.0}) map.ticks.push_back(m * std::pow(base, e));
  }
  return map;
}

std::string frame(const std::string& id, const std::string& title) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"" + escape_html(id) + "\" class=\"chart\" viewBox=\"0 0 " +
         num(kWidth) + " " + num(kHeight) + "\" role=\"img\" aria-label=\"" + escape_html(title) + "\">" +
         "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>" + "<text x=\"" + num(kLeft) + "\" y=\"22\" class=\"chart-title\">" +
         escape_html(title) + "</text>";
}

std::string axes(const AxisMap& x, const AxisMap& y, const std::string& x_title, const std::string& y_title) {
  std::string s;
  const double x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom, y1 = kTop;
  for (double t : x.ticks) {
    const double px = x(t);
    s += "<line x1=\"" + num(px) + "\" y1=\"" + num(y0) + "\" x2=\"" + num(px) + "\" y2=\"" + num(y1) + "\" class=\"grid\"/>";
    s += "<text x=\"" + num(px) + "\" y=\"" + num(y0 + 16) + "\" text-anchor=\"middle\" class=\"tick\">" + tick_text(t) + "</text>";
  }
  for (double t : y.ticks) {
    const double py = y(t);
    s += "<line x1=\"" + num(x0) + "\" y1=\"" + num(py) + "\" x2=\"" + num(x1) + "\" y2=\"" + num(py) + "\" class=\"grid\"/>";
    s += "<text x=\"" + num(x0 - 6) + "\" y=\"" + num(py + 4) + "\" text-anchor=\"end\" class=\"tick\">" + tick_text(t) + "</text>";
  }
  s += "<rect x=\"" + num(x0) + "\" y=\"" + num(y1) + "\" width=\"" + num(x1 - x0) + "\" height=\"" + num(y0 - y1) +
       "\" class=\"plot-frame\"/>";
  s += "<text x=\"" + num((x0 + x1) / 2) + "\" y=\"" + num(kHeight - 14) + "\" text-anchor=\"middle\" class=\"axis-title\">" +
       escape_html(x_title) + "</text>";
  s += "<text transform=\"translate(18," + num((y0 + y1) / 2) + ") rotate(-90)\" text-anchor=\"middle\" class=\"axis-title\">" +
       escape_html(y_title) + "</text>";
  return s;
}

std::string legend_entry(size_t row, const std::string& color, const std::string& name, bool dashed) {
  const double lx = kWidth - kRight + 16, ly = kTop + 8 + 18 * static_cast<double>(row);
  return "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly) + "\" x2=\"" + num(lx + 22) + "\" y2=\"" + num(ly) + "\" stroke=\"" +
         color + "\" stroke-width=\"" + (dashed ? "1.5\" stroke-dasharray=\"6 4\"" : "6\"") + "/>" + "<text x=\"" +
         num(lx + 28) + "\" y=\"" + num(ly + 4) + "\" class=\"legend\">" + escape_html(name) + "</text>";
}

}  // namespace

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const XYChart& chart) {
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min, y_min = x_min, y_max = -x_min;
  for (auto& s : chart.series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (plottable(chart.x.scale, s.x[i]) && plottable(chart.y.scale, s.y[i])) {
        x_min = std::min(x_min, s.x[i]), x_max = std::max(x_max, s.x[i]);
        y_min = std::min(y_min, s.y[i]), y_max = std::max(y_max, s.y[i]);
      }
  const AxisMap x = make_axis(chart.x, x_min, x_max, kLeft, kWidth - kRight);
  const AxisMap y = make_axis(chart.y, y_min, y_max, kHeight - kBottom, kTop);
  std::string svg = frame(chart.id, chart.title) + axes(x, y, chart.x.title, chart.y.title);
  size_t colour = 0;
  for (size_t si = 0; si < chart.series.size(); ++si) {
    const Series& s = chart.series[si];
    const bool reference = s.style == SeriesStyle::reference_line;
    // Reference lines are drawn in dark grey shades so measured series keep the palette.
    const std::string color = reference ? (si % 2 ? "#555" : "#222") : kPalette[colour++ % kPaletteSize];
    std::string points, markers;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!plottable(chart.x.scale, s.x[i]) || !plottable(chart.y.scale, s.y[i])) continue;
      const double px = x(s.x[i]), py = y(s.y[i]);
      points += num(px) + "," + num(py) + " ";
      if (reference) continue;
      markers += "<circle cx=\"" + num(px) + "\" cy=\"" + num(py) + "\" r=\"4.5\" fill=\"" + color + "\"><title>" +
                 escape_html(s.name) + ": (" + tick_text(s.x[i]) + ", " + tick_text(s.y[i]) + ")" +
                 (i < s.labels.size() ? " " + escape_html(s.labels[i]) : "") + "</title></circle>";
      if (i < s.labels.size() && !s.labels[i].empty())
        markers += "<text x=\"" + num(px + 7) + "\" y=\"" + num(py - 7) + "\" class=\"point-label\" fill=\"" + color + "\">" +
                   escape_html(s.labels[i]) + "</text>";
    }
    svg += "<g class=\"series\" data-name=\"" + escape_html(s.name) + "\">";
    if (s.style != SeriesStyle::markers && !points.empty())
      svg += "<polyline points=\"" + points + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"" +
             (reference ? "1.5\" stroke-dasharray=\"6 4\"" : "2\"") + "/>";
    svg += markers + "</g>";
    svg += legend_entry(si, color, s.name, reference);
  }
  return svg + "</svg>";
}

std::string render_svg(const BarChart& chart) {
  double y_max = 0;
  for (auto& group : chart.values)
    for (double v : group)
      if (std::isfinite(v)) y_max = std::max(y_max, v);
  const Axis y_axis{chart.y_title, Scale::linear, true};
  const AxisMap y = make_axis(y_axis, 0, y_max, kHeight - kBottom, kTop);
  std::string svg = frame(chart.id, chart.title);
  const double x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom;
  for (double t : y.ticks) {
    svg += "<line x1=\"" + num(x0) + "\" y1=\"" + num(y(t)) + "\" x2=\"" + num(x1) + "\" y2=\"" + num(y(t)) + "\" class=\"grid\"/>";
    svg += "<text x=\"" + num(x0 - 6) + "\" y=\"" + num(y(t) + 4) + "\" text-anchor=\"end\" class=\"tick\">" + tick_text(t) + "</text>";
  }
  svg += "<text transform=\"translate(18," + num((y0 + kTop) / 2) + ") rotate(-90)\" text-anchor=\"middle\" class=\"axis-title\">" +
         escape_html(chart.y_title) + "</text>";
  const double group_width = (x1 - x0) / std::max<size_t>(chart.group_names.size(), 1);
  const double bar_width = group_width * 0.8 / std::max<size_t>(chart.bar_names.size(), 1);
  for (size_t g = 0; g < chart.group_names.size(); ++g) {
    const double gx = x0 + group_width * static_cast<double>(g);
    for (size_t b = 0; b < chart.bar_names.size() && b < chart.values[g].size(); ++b) {
      const double v = chart.values[g][b];
      if (!std::isfinite(v)) continue;
      svg += "<rect x=\"" + num(gx + group_width * 0.1 + bar_width * static_cast<double>(b)) + "\" y=\"" + num(y(v)) +
             "\" width=\"" + num(bar_width * 0.92) + "\" height=\"" + num(y0 - y(v)) + "\" fill=\"" +
             kPalette[b % kPaletteSize] + "\"><title>" + escape_html(chart.group_names[g] + ", " + chart.bar_names[b]) +
             ": " + tick_text(v) + "</title></rect>";
    }
    svg += "<text x=\"" + num(gx + group_width / 2) + "\" y=\"" + num(y0 + 18) + "\" text-anchor=\"middle\" class=\"tick\">" +
           escape_html(chart.group_names[g]) + "</text>";
  }
  svg += "<line x1=\"" + num(x0) + "\" y1=\"" + num(y0) + "\" x2=\"" + num(x1) + "\" y2=\"" + num(y0) + "\" class=\"axis\"/>";
  for (size_t b = 0; b < chart.bar_names.size(); ++b) svg += legend_entry(b, kPalette[b % kPaletteSize], chart.bar_names[b], false);
  return svg + "</svg>";
}

}  // namespace qb::reports
