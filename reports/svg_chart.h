#pragma once
// Inline SVG charts for the self-contained HTML report: no script, no external resource, so the
// file opens anywhere (and in a headless browser for the tests). Tooltips are SVG <title>s.
#include <string>
#include <vector>

namespace qb::reports {

enum class Scale { linear, log2, log10 };

struct Axis {
  std::string title;
  Scale scale = Scale::linear;
  bool include_zero = false;  // linear axes only: start at 0 so bars and ratios are not exaggerated
};

enum class SeriesStyle {
  markers,         // measured points
  line_markers,    // measured points joined in the given order (e.g. one method over bit widths)
  reference_line,  // a dashed line without markers (a measured peak, a roofline)
};

struct Series {
  std::string name;  // legend text
  SeriesStyle style = SeriesStyle::markers;
  std::vector<double> x, y;         // same length; points with a non-finite or (log axis) non-positive coordinate are dropped
  std::vector<std::string> labels;  // empty, or one text per point drawn beside it
};

struct XYChart {
  std::string id;  // HTML id of the <svg>, e.g. "chart-quality-size-0"
  std::string title;
  Axis x, y;
  std::vector<Series> series;
};

// Grouped bars: groups along x (e.g. models), one bar per name in each group (e.g. methods).
struct BarChart {
  std::string id;
  std::string title;
  std::string y_title;
  std::vector<std::string> bar_names;  // legend, one per bar of a group
  std::vector<std::string> group_names;
  std::vector<std::vector<double>> values;  // [group][bar]; NaN = no bar
};

std::string render_svg(const XYChart& chart);
std::string render_svg(const BarChart& chart);

// Escapes &, <, >, " for HTML/SVG text and attributes.
std::string escape_html(const std::string& text);

}  // namespace qb::reports
