// A self-contained SVG line plot (no plotting library): axes with ticks, optional log-scale x,
// one polyline with markers per series, a legend, and optional dashed reference lines.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kvt::sim {

struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), x > 0 when log_x
};

struct PlotRefLine {
  std::string label;
  double y;
};

struct PlotSpec {
  std::string title, x_label, y_label;
  bool log_x = true;
  double y_min = 0, y_max = 1;
  std::vector<PlotSeries> series;
  std::vector<PlotRefLine> ref_lines;
};

std::string RenderSvg(const PlotSpec& p);

}  // namespace kvt::sim
