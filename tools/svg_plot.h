// A minimal SVG line chart for training curves (one panel per series, shared x axis), so a loss
// plot needs no plotting library. Values <= 0 are skipped on log-scale panels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace glassbox::cli {

struct PlotSeries {
  std::string title;
  std::vector<double> y;
  bool log_scale = false;
};

inline std::string svg_line_chart(const std::string& x_label, const std::vector<double>& x,
                                  const std::vector<PlotSeries>& series) {
  constexpr double kW = 640, kH = 180, kLeft = 70, kRight = 20, kTop = 28, kBottom = 36;
  const double height = kH * static_cast<double>(series.size());
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" "
                "height=\"100%%\" fill=\"white\"/>\n",
                kW, height);
  out += buf;
  const double x0 = x.empty() ? 0 : x.front(), x1 = x.empty() ? 1 : std::max(x.back(), x0 + 1e-12);
  for (size_t p = 0; p < series.size(); ++p) {
    const PlotSeries& s = series[p];
    const double top = kH * static_cast<double>(p) + kTop, bottom = kH * (p + 1.0) - kBottom;
    const auto val = [&](double v) { return s.log_scale ? std::log10(v) : v; };
    double lo = 1e300, hi = -1e300;
    for (double v : s.y) {
      if (s.log_scale && !(v > 0)) continue;
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, val(v));
      hi = std::max(hi, val(v));
    }
    if (lo > hi) lo = 0, hi = 1;
    if (hi - lo < 1e-12) hi = lo + 1;
    std::snprintf(buf, sizeof(buf),
                  "<text x=\"%.0f\" y=\"%.0f\" font-weight=\"bold\">%s%s</text>\n"
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                  "stroke=\"#888\"/>\n",
                  kLeft, top - 8, s.title.c_str(), s.log_scale ? " (log scale)" : "", kLeft, top,
                  kW - kLeft - kRight, bottom - top);
    out += buf;
    for (double f : {0.0, 1.0}) {  // axis labels: min and max
      const double v = lo + f * (hi - lo);
      std::snprintf(buf, sizeof(buf),
                    "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%.4g</text>\n", kLeft - 4,
                    bottom - f * (bottom - top) + 4, s.log_scale ? std::pow(10, v) : v);
      out += buf;
    }
    out += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < s.y.size() && i < x.size(); ++i) {
      if ((s.log_scale && !(s.y[i] > 0)) || !std::isfinite(s.y[i])) continue;
      const double px = kLeft + (x[i] - x0) / (x1 - x0) * (kW - kLeft - kRight);
      const double py = bottom - (val(s.y[i]) - lo) / (hi - lo) * (bottom - top);
      std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", px, py);
      out += buf;
    }
    out += "\"/>\n";
  }
  std::snprintf(
      buf, sizeof(buf),
      "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s (%.4g to %.4g)</text>\n</svg>\n",
      kW / 2, height - 8, x_label.c_str(), x0, x1);
  out += buf;
  return out;
}

}  // namespace glassbox::cli
