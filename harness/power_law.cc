#include "harness/power_law.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "harness/statistics.h"

namespace saelab {
namespace {

struct Fit {
  double a = 0, c = 0, loss = 0;
};

// For a fixed alpha: the (a, c) minimising sum ((a u + c - y) / y)^2 with
// u = x^-alpha, under a >= 0, c >= 0, and the loss.
Fit FitLinear(const std::vector<double>& x, const std::vector<double>& y, double alpha) {
  double suu = 0, su = 0, s1 = 0, suy = 0, sy = 0;
  std::vector<double> u(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    u[i] = std::pow(x[i], -alpha);
    const double w = 1.0 / (y[i] * y[i]);
    suu += w * u[i] * u[i];
    su += w * u[i];
    s1 += w;
    suy += w * u[i] * y[i];
    sy += w * y[i];
  }
  Fit fit;
  const double det = suu * s1 - su * su;
  if (det > 0) {
    fit.a = (suy * s1 - su * sy) / det;
    fit.c = (suu * sy - su * suy) / det;
  }
  if (det <= 0 || fit.c < 0) {  // the boundary c = 0
    fit.c = 0;
    fit.a = suy / suu;
  }
  if (fit.a < 0) {  // the boundary a = 0: a constant
    fit.a = 0;
    fit.c = sy / s1;
  }
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = (fit.a * u[i] + fit.c - y[i]) / y[i];
    fit.loss += r * r;
  }
  return fit;
}

}  // namespace

absl::StatusOr<PowerLawParameters> FitPowerLawPoints(const std::vector<double>& x,
                                                     const std::vector<double>& y) {
  if (x.size() != y.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("power-law fit: ", x.size(), " x values but ", y.size(), " y values"));
  }
  std::set<double> distinct;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(std::isfinite(x[i]) && x[i] > 0 && std::isfinite(y[i]) && y[i] > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "power-law fit: point ", i, " (", x[i], ", ", y[i], ") is not finite and positive"));
    }
    distinct.insert(x[i]);
  }
  if (distinct.size() < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "power-law fit: needs 3 distinct x values, has ", distinct.size()));
  }
  // Log grid over alpha, then golden section inside the best cell.
  constexpr double kLow = 1e-3, kHigh = 8.0;
  constexpr int kGrid = 400;
  auto alpha_at = [&](int i) { return kLow * std::pow(kHigh / kLow, i / double(kGrid - 1)); };
  int best = 0;
  double best_loss = INFINITY;
  for (int i = 0; i < kGrid; ++i) {
    const double loss = FitLinear(x, y, alpha_at(i)).loss;
    if (loss < best_loss) best_loss = loss, best = i;
  }
  double lo = alpha_at(std::max(best - 1, 0)), hi = alpha_at(std::min(best + 1, kGrid - 1));
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double m1 = hi - phi * (hi - lo), m2 = lo + phi * (hi - lo);
  double f1 = FitLinear(x, y, m1).loss, f2 = FitLinear(x, y, m2).loss;
  for (int iter = 0; iter < 200 && hi - lo > 1e-12 * hi; ++iter) {
    if (f1 < f2) {
      hi = m2, m2 = m1, f2 = f1;
      m1 = hi - phi * (hi - lo), f1 = FitLinear(x, y, m1).loss;
    } else {
      lo = m1, m1 = m2, f1 = f2;
      m2 = lo + phi * (hi - lo), f2 = FitLinear(x, y, m2).loss;
    }
  }
  PowerLawParameters out;
  out.alpha = (lo + hi) / 2;
  const Fit fit = FitLinear(x, y, out.alpha);
  out.a = fit.a;
  out.c = fit.c;
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = std::log(out.a * std::pow(x[i], -out.alpha) + out.c) - std::log(y[i]);
    sum += r * r;
  }
  out.rms_log_residual = std::sqrt(sum / x.size());
  return out;
}

absl::StatusOr<PowerLawFit> FitPowerLaw(const std::vector<double>& x,
                                        const std::vector<double>& y, int bootstrap_samples,
                                        uint64_t seed) {
  absl::StatusOr<PowerLawParameters> full = FitPowerLawPoints(x, y);
  if (!full.ok()) return full.status();
  std::vector<double> as, alphas, cs;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, x.size() - 1);
  for (int b = 0; b < bootstrap_samples; ++b) {
    std::vector<double> bx(x.size()), by(y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t j = pick(rng);
      bx[i] = x[j];
      by[i] = y[j];
    }
    absl::StatusOr<PowerLawParameters> fit = FitPowerLawPoints(bx, by);
    if (!fit.ok()) continue;  // fewer than 3 distinct x drawn
    as.push_back(fit->a);
    alphas.push_back(fit->alpha);
    cs.push_back(fit->c);
  }
  auto stats = [](double estimate, std::vector<double> draws, MetricStats* out) {
    out->set_mean(estimate);
    out->set_n(static_cast<int>(draws.size()));
    if (draws.empty()) {
      out->set_ci95_low(estimate);
      out->set_ci95_high(estimate);
      return;
    }
    std::sort(draws.begin(), draws.end());
    out->set_sd(Summarize(draws).sd());
    // Percentiles by the nearest rank.
    auto at = [&](double q) {
      size_t i = static_cast<size_t>(std::ceil(q * draws.size()));
      return draws[std::min(draws.size() - 1, i == 0 ? 0 : i - 1)];
    };
    out->set_ci95_low(at(0.025));
    out->set_ci95_high(at(0.975));
  };
  PowerLawFit out;
  stats(full->a, as, out.mutable_a());
  stats(full->alpha, alphas, out.mutable_alpha());
  stats(full->c, cs, out.mutable_c());
  for (size_t i = 0; i < x.size(); ++i) {
    out.add_points_x(x[i]);
    out.add_points_y(y[i]);
  }
  out.set_rms_log_residual(full->rms_log_residual);
  return out;
}

}  // namespace saelab
