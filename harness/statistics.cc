#include "harness/statistics.h"

#include <cmath>

namespace saelab {
namespace {

// t_{0.975, df} for df = 1..30 (standard tables, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2).
constexpr double kT975[30] = {
    12.7062047, 4.30265273, 3.18244631, 2.77644511, 2.57058184, 2.44691185, 2.36462425,
    2.30600414, 2.26215716, 2.22813885, 2.20098516, 2.17881283, 2.16036866, 2.14478669,
    2.13144955, 2.11990530, 2.10981558, 2.10092204, 2.09302405, 2.08596345, 2.07961384,
    2.07387307, 2.06865761, 2.06389856, 2.05953855, 2.05552944, 2.05183052, 2.04840714,
    2.04522964, 2.04227246};

struct Knot {
  double df;
  double t;
};
constexpr Knot kTail[] = {{30, 2.04227246}, {40, 2.02107539}, {60, 2.00029782},
                          {120, 1.97993050}, {INFINITY, 1.95996398}};

}  // namespace

double StudentT975(int df) {
  if (df < 1) return NAN;
  if (df <= 30) return kT975[df - 1];
  double x = 1.0 / df;
  for (int i = 0; i + 1 < 5; ++i) {
    double x0 = 1.0 / kTail[i].df;
    double x1 = std::isinf(kTail[i + 1].df) ? 0.0 : 1.0 / kTail[i + 1].df;
    if (x <= x0 && x >= x1) {
      double w = (x0 - x) / (x0 - x1);
      return kTail[i].t + w * (kTail[i + 1].t - kTail[i].t);
    }
  }
  return kTail[4].t;
}

MetricStats Summarize(const std::vector<double>& values) {
  MetricStats stats;
  const int n = static_cast<int>(values.size());
  stats.set_n(n);
  if (n == 0) {
    stats.set_mean(0);
    stats.set_sd(0);
    stats.set_ci95_low(0);
    stats.set_ci95_high(0);
    return stats;
  }
  double mean = 0;
  for (double v : values) mean += v;
  mean /= n;
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  double sd = n > 1 ? std::sqrt(squares / (n - 1)) : 0.0;
  double half_width = n > 1 ? StudentT975(n - 1) * sd / std::sqrt(static_cast<double>(n)) : 0.0;
  stats.set_mean(mean);
  stats.set_sd(sd);
  stats.set_ci95_low(mean - half_width);
  stats.set_ci95_high(mean + half_width);
  return stats;
}

}  // namespace saelab
