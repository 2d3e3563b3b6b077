#include "tools/sim/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tools/sim/model.h"

namespace kvt::sim {

namespace {

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string F(const char* fmt, double a) {
  char b[64];
  std::snprintf(b, sizeof b, fmt, a);
  return b;
}

}  // namespace

std::string RenderSvg(const PlotSpec& p) {
  const double W = 820, H = 520, L = 80, R = 190, T = 50, B = 70;
  const double pw = W - L - R, ph = H - T - B;
  double x_lo = INFINITY, x_hi = -INFINITY;
  for (const auto& s : p.series) {
    for (const auto& [x, y] : s.points) {
      if (p.log_x && x <= 0) continue;
      x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
    }
  }
  if (!std::isfinite(x_lo)) x_lo = 1, x_hi = 10;
  if (x_hi <= x_lo) x_hi = x_lo * (p.log_x ? 10 : 1) + (p.log_x ? 0 : 1);
  auto fx = [&](double x) {
    const double f = p.log_x ? (std::log10(x) - std::log10(x_lo)) / (std::log10(x_hi) - std::log10(x_lo))
                             : (x - x_lo) / (x_hi - x_lo);
    return L + f * pw;
  };
  const double y_span = p.y_max > p.y_min ? p.y_max - p.y_min : 1;
  auto fy = [&](double y) { return T + ph - (y - p.y_min) / y_span * ph; };

  std::string o;
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + F("%.0f", W) + "\" height=\"" +
       F("%.0f", H) + "\" viewBox=\"0 0 " + F("%.0f", W) + " " + F("%.0f", H) +
       "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += "<text x=\"" + F("%.1f", L + pw / 2) + "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" +
       Esc(p.title) + "</text>\n";
  // Grid and ticks.
  for (int i = 0; i <= 10; ++i) {
    const double y = p.y_min + y_span * i / 10.0;
    const double py = fy(y);
    o += "<line x1=\"" + F("%.1f", L) + "\" x2=\"" + F("%.1f", L + pw) + "\" y1=\"" +
         F("%.1f", py) + "\" y2=\"" + F("%.1f", py) + "\" stroke=\"#e4e4e4\"/>\n";
    o += "<text x=\"" + F("%.1f", L - 6) + "\" y=\"" + F("%.1f", py + 4) +
         "\" text-anchor=\"end\">" + F("%.2f", y) + "</text>\n";
  }
  std::vector<double> xt;
  if (p.log_x) {
    for (double d = std::pow(10, std::floor(std::log10(x_lo))); d <= x_hi * 1.0001; d *= 10) {
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = d * m;
        if (v >= x_lo * 0.9999 && v <= x_hi * 1.0001) xt.push_back(v);
      }
    }
  } else {
    for (int i = 0; i <= 8; ++i) xt.push_back(x_lo + (x_hi - x_lo) * i / 8.0);
  }
  for (double v : xt) {
    const double px = fx(v);
    o += "<line x1=\"" + F("%.1f", px) + "\" x2=\"" + F("%.1f", px) + "\" y1=\"" + F("%.1f", T) +
         "\" y2=\"" + F("%.1f", T + ph) + "\" stroke=\"#e4e4e4\"/>\n";
    o += "<text x=\"" + F("%.1f", px) + "\" y=\"" + F("%.1f", T + ph + 18) +
         "\" text-anchor=\"middle\">" + Esc(FormatCount(v)) + "</text>\n";
  }
  o += "<rect x=\"" + F("%.1f", L) + "\" y=\"" + F("%.1f", T) + "\" width=\"" + F("%.1f", pw) +
       "\" height=\"" + F("%.1f", ph) + "\" fill=\"none\" stroke=\"#333\"/>\n";
  o += "<text x=\"" + F("%.1f", L + pw / 2) + "\" y=\"" + F("%.1f", H - 22) +
       "\" text-anchor=\"middle\">" + Esc(p.x_label) + "</text>\n";
  o += "<text transform=\"translate(22," + F("%.1f", T + ph / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + Esc(p.y_label) + "</text>\n";
  // Reference lines.
  for (const auto& rl : p.ref_lines) {
    const double py = fy(rl.y);
    o += "<line x1=\"" + F("%.1f", L) + "\" x2=\"" + F("%.1f", L + pw) + "\" y1=\"" +
         F("%.1f", py) + "\" y2=\"" + F("%.1f", py) +
         "\" stroke=\"#777\" stroke-dasharray=\"6,4\"/>\n";
    o += "<text x=\"" + F("%.1f", L + 6) + "\" y=\"" + F("%.1f", py - 5) + "\" fill=\"#555\">" +
         Esc(rl.label) + "</text>\n";
  }
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                  "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  for (size_t i = 0; i < p.series.size(); ++i) {
    const auto& s = p.series[i];
    const char* col = kColors[i % 8];
    std::string pts;
    for (const auto& [x, y] : s.points) {
      if (p.log_x && x <= 0) continue;
      pts += F("%.1f", fx(x)) + "," + F("%.1f", fy(y)) + " ";
    }
    o += "<polyline fill=\"none\" stroke=\"" + std::string(col) +
         "\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
    for (const auto& [x, y] : s.points) {
      if (p.log_x && x <= 0) continue;
      o += "<circle cx=\"" + F("%.1f", fx(x)) + "\" cy=\"" + F("%.1f", fy(y)) + "\" r=\"3\" fill=\"" +
           col + "\"><title>" + Esc(s.name) + ": " + Esc(FormatCount(x)) + " -> " +
           F("%.4f", y) + "</title></circle>\n";
    }
    const double ly = T + 14 + 20.0 * i;
    o += "<line x1=\"" + F("%.1f", L + pw + 14) + "\" x2=\"" + F("%.1f", L + pw + 40) + "\" y1=\"" +
         F("%.1f", ly) + "\" y2=\"" + F("%.1f", ly) + "\" stroke=\"" + col +
         "\" stroke-width=\"2\"/>\n";
    o += "<text x=\"" + F("%.1f", L + pw + 46) + "\" y=\"" + F("%.1f", ly + 4) + "\">" +
         Esc(s.name) + "</text>\n";
  }
  o += "</svg>\n";
  return o;
}

}  // namespace kvt::sim
