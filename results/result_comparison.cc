#include "results/result_comparison.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

std::string Value(const std::optional<double>& v) {
  return v.has_value() ? absl::StrFormat("%.6g", *v) : "(missing)";
}

std::map<std::string, const SaeResult*> ByName(const ExperimentResult& result) {
  std::map<std::string, const SaeResult*> out;
  for (const SaeResult& sae : result.saes()) out[sae.name()] = &sae;
  return out;
}

std::optional<double> Metric(const SaeResult* sae, const std::string& metric) {
  if (sae == nullptr) return std::nullopt;
  auto it = sae->metrics().find(metric);
  if (it == sae->metrics().end()) return std::nullopt;
  return it->second;
}

}  // namespace

absl::StatusOr<ExperimentResult> ReadRunResult(const std::string& dir) {
  ExperimentResult result;
  if (PathExists(dir + "/result.pb")) {
    RETURN_IF_ERROR(ReadBinaryProtoFile(dir + "/result.pb", &result));
    return result;
  }
  if (PathExists(dir + "/result.textproto")) {
    RETURN_IF_ERROR(ParseTextProtoFile(dir + "/result.textproto", &result));
    return result;
  }
  return absl::NotFoundError(
      absl::StrCat(dir, ": no result.pb or result.textproto (not a run directory?)"));
}

absl::StatusOr<ExperimentConfig> ReadRunConfig(const std::string& dir) {
  ExperimentConfig config;
  RETURN_IF_ERROR(ParseTextProtoFile(dir + "/config.textproto", &config));
  return config;
}

std::vector<MetricComparison> CompareMetrics(const ExperimentResult& first,
                                             const ExperimentResult& second,
                                             const RegressionGate* gate) {
  const auto first_by_name = ByName(first), second_by_name = ByName(second);
  std::vector<std::string> names;
  for (const SaeResult& sae : first.saes()) names.push_back(sae.name());
  for (const SaeResult& sae : second.saes()) {
    if (!first_by_name.count(sae.name())) names.push_back(sae.name());
  }
  std::vector<MetricComparison> rows;
  for (const std::string& name : names) {
    const SaeResult* a = first_by_name.count(name) ? first_by_name.at(name) : nullptr;
    const SaeResult* b = second_by_name.count(name) ? second_by_name.at(name) : nullptr;
    if (gate != nullptr) {
      for (const MetricTolerance& tolerance : gate->tolerances()) {
        MetricComparison row{name, tolerance.metric(), Metric(a, tolerance.metric()),
                             Metric(b, tolerance.metric())};
        // A baseline without the metric is not gated (e.g. probes off).
        if (!row.first.has_value() && (a != nullptr || !row.second.has_value())) continue;
        const double base = row.first.value_or(0);
        row.allowed = tolerance.abs() + tolerance.rel() * std::fabs(base);
        if (!row.first.has_value() || !row.second.has_value()) {
          row.within = false;
        } else if (std::isnan(*row.first) || std::isnan(*row.second)) {
          row.within = std::isnan(*row.first) && std::isnan(*row.second);
        } else {
          row.within = std::fabs(*row.second - *row.first) <= *row.allowed;
        }
        rows.push_back(row);
      }
      continue;
    }
    std::set<std::string> metrics;
    if (a != nullptr) for (const auto& [m, v] : a->metrics()) metrics.insert(m);
    if (b != nullptr) for (const auto& [m, v] : b->metrics()) metrics.insert(m);
    for (const std::string& metric : metrics) {
      rows.push_back(MetricComparison{name, metric, Metric(a, metric), Metric(b, metric)});
    }
  }
  return rows;
}

bool AllWithinTolerance(const std::vector<MetricComparison>& rows) {
  return std::all_of(rows.begin(), rows.end(),
                     [](const MetricComparison& row) { return row.within; });
}

std::string FormatComparisonTable(const std::vector<MetricComparison>& rows,
                                  const std::string& first_label,
                                  const std::string& second_label) {
  size_t sae_width = 3, metric_width = 6;
  bool gated = false;
  for (const MetricComparison& row : rows) {
    sae_width = std::max(sae_width, row.sae.size());
    metric_width = std::max(metric_width, row.metric.size());
    gated = gated || row.allowed.has_value();
  }
  const int sw = static_cast<int>(sae_width), mw = static_cast<int>(metric_width);
  std::string out = absl::StrFormat("%-*s  %-*s  %14s  %14s  %12s", sw, "sae", mw, "metric",
                                    first_label, second_label, "difference");
  if (gated) absl::StrAppend(&out, absl::StrFormat("  %12s  %s", "allowed", "gate"));
  absl::StrAppend(&out, "\n");
  for (const MetricComparison& row : rows) {
    std::string diff = "";
    if (row.first.has_value() && row.second.has_value()) {
      diff = absl::StrFormat("%+.3g", *row.second - *row.first);
    }
    absl::StrAppend(&out, absl::StrFormat("%-*s  %-*s  %14s  %14s  %12s", sw, row.sae, mw,
                                          row.metric, Value(row.first), Value(row.second), diff));
    if (row.allowed.has_value()) {
      absl::StrAppend(&out,
                      absl::StrFormat("  %12.3g  %s", *row.allowed, row.within ? "ok" : "FAIL"));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace saelab
