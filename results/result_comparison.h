// Two experiment results side by side: per SAE and metric, both values and
// the difference, against declared tolerances for the regression gates, or
// all metrics for //results:compare.
//
//   ASSIGN_OR_RETURN(ExperimentResult baseline, ReadRunResult("results/baselines/quickstart"));
//   std::vector<MetricComparison> rows = CompareMetrics(baseline, now, &gate);
//   std::cout << FormatComparisonTable(rows, "baseline", "now");
//   bool ok = AllWithinTolerance(rows);
#ifndef SAELAB_RESULTS_RESULT_COMPARISON_H_
#define SAELAB_RESULTS_RESULT_COMPARISON_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "experiments/experiment_config.pb.h"
#include "harness/result.pb.h"
#include "results/regression_gates.pb.h"

namespace saelab {

// The result of a run directory or a baseline folder: result.pb if present,
// else result.textproto. NotFound naming the folder when it has neither.
absl::StatusOr<ExperimentResult> ReadRunResult(const std::string& dir);

// Its as-run config (config.textproto).
absl::StatusOr<ExperimentConfig> ReadRunConfig(const std::string& dir);

struct MetricComparison {
  std::string sae;
  std::string metric;
  std::optional<double> first, second;
  // Gated rows only: the allowed |second - first| and whether it holds
  // (a missing value never does; NaN equals NaN).
  std::optional<double> allowed;
  bool within = true;
};

// Rows for every SAE of either result (by name, first's order, then
// second's extras) and every metric: those of `gate` when given, else the
// union of both results' metric names, sorted.
std::vector<MetricComparison> CompareMetrics(const ExperimentResult& first,
                                             const ExperimentResult& second,
                                             const RegressionGate* gate);

bool AllWithinTolerance(const std::vector<MetricComparison>& rows);

// A fixed-width table: sae, metric, first, second, difference (and, for
// gated rows, the allowed difference and "ok" / "FAIL").
std::string FormatComparisonTable(const std::vector<MetricComparison>& rows,
                                  const std::string& first_label,
                                  const std::string& second_label);

}  // namespace saelab

#endif  // SAELAB_RESULTS_RESULT_COMPARISON_H_
