#include "experiments/analysis.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "harness/power_law.h"

namespace saelab {
namespace {

// A group's value of `key`: its hyperparameter, else its metric's mean.
bool GroupValue(const SaeGroupSummary& group, const std::string& key, double* value) {
  if (auto it = group.hyperparameters().find(key); it != group.hyperparameters().end()) {
    *value = it->second;
    return true;
  }
  if (auto it = group.metrics().find(key); it != group.metrics().end()) {
    *value = it->second.mean();
    return true;
  }
  return false;
}

// The points no point of smaller or equal x beats, by increasing x.
std::vector<std::pair<double, double>> LowerEnvelope(std::vector<std::pair<double, double>> p) {
  std::sort(p.begin(), p.end());
  std::vector<std::pair<double, double>> kept;
  double best = INFINITY;
  for (const auto& [x, y] : p) {
    if (y < best) {
      kept.emplace_back(x, y);
      best = y;
    }
  }
  return kept;
}

// (x, metric) of a sweep's groups by increasing x (L0 unless said).
std::vector<std::pair<double, double>> SweepCurve(const ExperimentResult& result,
                                                  const std::string& sweep,
                                                  const std::string& hook,
                                                  const std::string& metric,
                                                  const std::string& x_key) {
  std::vector<std::pair<double, double>> curve;
  for (const SaeGroupSummary& g : result.groups()) {
    if (g.sweep() != sweep || (!hook.empty() && g.hook_name() != hook)) continue;
    double x = 0;
    auto y = g.metrics().find(metric);
    if (!GroupValue(g, x_key, &x) || y == g.metrics().end()) continue;
    curve.emplace_back(x, y->second.mean());
  }
  std::sort(curve.begin(), curve.end());
  return curve;
}

// Linear interpolation in log L0 on a sorted curve; l0 inside its range.
double Interpolate(const std::vector<std::pair<double, double>>& curve, double l0) {
  if (curve.size() == 1) return curve[0].second;
  for (size_t i = 1; i < curve.size(); ++i) {
    if (l0 <= curve[i].first || i + 1 == curve.size()) {
      const auto& [x0, y0] = curve[i - 1];
      const auto& [x1, y1] = curve[i];
      if (x1 == x0) return y1;
      const double t = (std::log(l0) - std::log(x0)) / (std::log(x1) - std::log(x0));
      return y0 + std::clamp(t, 0.0, 1.0) * (y1 - y0);
    }
  }
  return curve.back().second;
}

void CheckOrdering(const SweepOrdering& check, ClaimOutcome* outcome,
                   const ExperimentResult& result) {
  const auto better =
      SweepCurve(result, check.better(), check.better_hook(), check.metric(), check.x());
  const auto worse = SweepCurve(result, check.worse(), check.worse_hook(), check.metric(), check.x());
  const std::string x_name = check.x() == "l0" ? "L0" : check.x();
  if (better.empty() || worse.empty()) {
    outcome->set_held(false);
    outcome->set_saelab_value(absl::StrCat("not measured: no groups with ", check.metric(),
                                           " in sweep '",
                                           better.empty() ? check.better() : check.worse(), "'"));
    return;
  }
  // Matched L0 counts as overlap within 5% (the search's default tolerance).
  const double lo = std::max(better.front().first, worse.front().first);
  const double hi = std::min(better.back().first, worse.back().first);
  if (lo > hi * 1.05) {
    outcome->set_held(false);
    outcome->set_saelab_value(absl::StrFormat(
        "not measured: %s ranges do not overlap (%s %.3g-%.3g, %s %.3g-%.3g)", x_name, check.better(),
        better.front().first, better.back().first, check.worse(), worse.front().first,
        worse.back().first));
    return;
  }
  const int points = lo >= hi ? 1 : std::max(1, check.points());
  bool held = true;
  std::vector<std::string> parts;
  for (int i = 0; i < points; ++i) {
    const double l0 = points == 1 ? std::sqrt(lo * std::min(hi, lo * 1.05))
                                  : std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * i /
                                                                (points - 1));
    const double b = Interpolate(better, l0), w = Interpolate(worse, l0);
    held = held && (check.higher_is_better() ? b > w : b < w);
    parts.push_back(absl::StrFormat("%s %.3g: %.4g vs %.4g", x_name, l0, b, w));
  }
  outcome->set_held(held);
  auto side = [](const std::string& sweep, const std::string& hook) {
    return hook.empty() ? sweep : absl::StrCat(sweep, " at ", hook);
  };
  outcome->set_saelab_value(absl::StrCat(check.metric(), " ", side(check.better(), check.better_hook()),
                                         " vs ", side(check.worse(), check.worse_hook()), ": ",
                                         absl::StrJoin(parts, "; ")));
}

void CheckFitParameter(const FitParameterRange& check, ClaimOutcome* outcome,
                       const ExperimentResult& result) {
  for (const PowerLawFit& fit : result.fits()) {
    if (fit.name() != check.fit()) continue;
    const MetricStats* stats = check.parameter() == "a"       ? &fit.a()
                               : check.parameter() == "alpha" ? &fit.alpha()
                               : check.parameter() == "c"     ? &fit.c()
                                                              : nullptr;
    if (stats == nullptr) break;
    outcome->set_held(stats->mean() >= check.low() && stats->mean() <= check.high());
    outcome->set_saelab_value(absl::StrFormat("%s = %.3g [95%%: %.3g, %.3g] (%s vs %s)",
                                              check.parameter(), stats->mean(),
                                              stats->ci95_low(), stats->ci95_high(), fit.y(),
                                              fit.x()));
    return;
  }
  outcome->set_held(false);
  outcome->set_saelab_value(
      absl::StrCat("not measured: no fit '", check.fit(), "' with parameter '",
                   check.parameter(), "'"));
}

// Ranks 1..n (ties share their mean rank).
std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < v.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t t = i; t <= j; ++t) ranks[order[t]] = (i + j) / 2.0 + 1;
    i = j + 1;
  }
  return ranks;
}

// Spearman's rho: the Pearson correlation of the ranks; NaN when either
// side is constant.
double SpearmanCorrelation(const std::vector<double>& x, const std::vector<double>& y) {
  const std::vector<double> rx = Ranks(x), ry = Ranks(y);
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += rx[i] / n, my += ry[i] / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  return sxy / std::sqrt(sxx * syy);
}

void CheckTrend(const SweepTrend& check, ClaimOutcome* outcome, const ExperimentResult& result) {
  std::vector<std::pair<double, double>> points;
  for (const SaeGroupSummary& g : result.groups()) {
    if (g.sweep() != check.sweep() || (!check.hook().empty() && g.hook_name() != check.hook())) {
      continue;
    }
    double x = 0, y = 0;
    if (GroupValue(g, check.x(), &x) && GroupValue(g, check.metric(), &y) && std::isfinite(y)) {
      points.emplace_back(x, y);
    }
  }
  if (points.size() < 3) {
    outcome->set_held(false);
    outcome->set_saelab_value(absl::StrCat("not measured: fewer than 3 groups of sweep '",
                                           check.sweep(), "' have ", check.x(), " and a finite ",
                                           check.metric()));
    return;
  }
  std::sort(points.begin(), points.end());
  std::vector<double> xs, ys;
  std::vector<std::string> parts;
  for (const auto& [x, y] : points) {
    xs.push_back(x), ys.push_back(y);
    parts.push_back(absl::StrFormat("%.3g: %.4g", x, y));
  }
  const double rho = SpearmanCorrelation(xs, ys);
  outcome->set_held(check.increasing() ? rho >= check.min_correlation()
                                       : rho <= -check.min_correlation());
  outcome->set_saelab_value(absl::StrFormat("%s vs %s in %s: Spearman rho %.2f (%s)",
                                            check.metric(), check.x(), check.sweep(), rho,
                                            absl::StrJoin(parts, ", ")));
}

void CheckComparison(const GroupComparison& check, ClaimOutcome* outcome,
                     const ExperimentResult& result) {
  bool held = true;
  std::vector<std::string> parts;
  for (const SaeGroupSummary& g : result.groups()) {
    if (!check.sweep().empty() && g.sweep() != check.sweep()) continue;
    double a = 0, b = check.value();
    if (!GroupValue(g, check.metric(), &a) ||
        (!check.other_metric().empty() && !GroupValue(g, check.other_metric(), &b))) {
      continue;
    }
    held = held && (check.higher_is_better() ? a > b + check.margin() : a < b - check.margin());
    parts.push_back(absl::StrFormat("%s %.4g vs %.4g", g.group(), a, b));
  }
  if (parts.empty()) {
    outcome->set_held(false);
    outcome->set_saelab_value(absl::StrCat("not measured: no group", 
                                           check.sweep().empty() ? "" : " of sweep '" + check.sweep() + "'",
                                           " has ", check.metric(),
                                           check.other_metric().empty() ? "" : " and " + check.other_metric()));
    return;
  }
  outcome->set_held(held);
  outcome->set_saelab_value(absl::StrCat(check.metric(), " vs ",
                                         check.other_metric().empty()
                                             ? absl::StrFormat("%g", check.value())
                                             : check.other_metric(),
                                         ": ",
                                         absl::StrJoin(parts, "; ")));
}

}  // namespace

absl::Status FitPowerLaws(const google::protobuf::RepeatedPtrField<PowerLawFitConfig>& fits,
                          uint64_t seed, ExperimentResult* result) {
  for (const PowerLawFitConfig& config : fits) {
    std::vector<std::pair<double, double>> points;
    for (const SaeGroupSummary& g : result->groups()) {
      if (!config.sweep().empty() && g.sweep() != config.sweep()) continue;
      double filter = 0;
      if (!config.where_key().empty() &&
          !(GroupValue(g, config.where_key(), &filter) && filter == config.where_value())) {
        continue;
      }
      double x = 0, y = 0;
      if (!GroupValue(g, config.x(), &x) || !GroupValue(g, config.y(), &y)) {
        return absl::InvalidArgumentError(absl::StrCat("fit '", config.name(), "': group '",
                                                       g.group(), "' has no '", config.x(),
                                                       "' or '", config.y(), "'"));
      }
      points.emplace_back(x, y);
    }
    if (config.envelope()) points = LowerEnvelope(std::move(points));
    std::vector<double> xs, ys;
    for (const auto& [x, y] : points) xs.push_back(x), ys.push_back(y);
    absl::StatusOr<PowerLawFit> fit = FitPowerLaw(xs, ys, config.bootstrap_samples(), seed);
    if (!fit.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("fit '", config.name(), "': ", fit.status().message()));
    }
    fit->set_name(config.name());
    fit->set_x(config.x());
    fit->set_y(config.y());
    *result->add_fits() = *std::move(fit);
  }
  return absl::OkStatus();
}

void CheckClaims(const google::protobuf::RepeatedPtrField<PaperClaim>& claims,
                 ExperimentResult* result) {
  for (const PaperClaim& claim : claims) {
    ClaimOutcome* outcome = result->add_claims();
    outcome->set_id(claim.id());
    outcome->set_statement(claim.statement());
    outcome->set_paper(claim.paper());
    outcome->set_paper_value(claim.paper_value());
    switch (claim.check_case()) {
      case PaperClaim::kOrdering:
        CheckOrdering(claim.ordering(), outcome, *result);
        break;
      case PaperClaim::kFitParameter:
        CheckFitParameter(claim.fit_parameter(), outcome, *result);
        break;
      case PaperClaim::kTrend:
        CheckTrend(claim.trend(), outcome, *result);
        break;
      case PaperClaim::kComparison:
        CheckComparison(claim.comparison(), outcome, *result);
        break;
      case PaperClaim::CHECK_NOT_SET:
        outcome->set_held(false);
        outcome->set_saelab_value("not measured: the claim names no check");
        break;
    }
  }
}

}  // namespace saelab
