#include "results/result_comparison.h"

#include <gtest/gtest.h>

#include <cmath>

#include "harness/textproto.h"

namespace saelab {
namespace {

ExperimentResult Result(const std::string& text) {
  ExperimentResult result;
  EXPECT_TRUE(ParseTextProto(text, "result", &result).ok());
  return result;
}

RegressionGate Gate() {
  RegressionGate gate;
  EXPECT_TRUE(ParseTextProto(R"pb(baseline: "b"
                                  tolerances { metric: "nmse" rel: 0.01 }
                                  tolerances { metric: "delta_loss" abs: 0.005 rel: 0.1 }
                                  tolerances { metric: "probe_loss" abs: 0.01 })pb",
                             "gate", &gate)
                  .ok());
  return gate;
}

TEST(CompareMetricsTest, GateAllowsAbsPlusRelTimesBaseline) {
  ExperimentResult baseline = Result(R"pb(
    saes { name: "a" metrics { key: "nmse" value: 0.1 } metrics { key: "delta_loss" value: 0.2 } }
  )pb");
  // nmse may move 0.001, delta_loss 0.005 + 0.02 = 0.025.
  ExperimentResult inside = Result(R"pb(
    saes { name: "a" metrics { key: "nmse" value: 0.1009 } metrics { key: "delta_loss" value: 0.224 } }
  )pb");
  ExperimentResult outside = Result(R"pb(
    saes { name: "a" metrics { key: "nmse" value: 0.1011 } metrics { key: "delta_loss" value: 0.174 } }
  )pb");
  const RegressionGate gate = Gate();
  std::vector<MetricComparison> rows = CompareMetrics(baseline, inside, &gate);
  ASSERT_EQ(rows.size(), 2u);  // probe_loss: not in the baseline, not gated
  EXPECT_NEAR(*rows[0].allowed, 0.001, 1e-15);
  EXPECT_NEAR(*rows[1].allowed, 0.025, 1e-15);
  EXPECT_TRUE(AllWithinTolerance(rows));
  rows = CompareMetrics(baseline, outside, &gate);
  EXPECT_FALSE(rows[0].within);
  EXPECT_FALSE(rows[1].within);
}

TEST(CompareMetricsTest, MissingSaesAndMetricsFailAndShowInTheTable) {
  ExperimentResult baseline = Result(R"pb(
    saes { name: "a" metrics { key: "nmse" value: 0.1 } metrics { key: "probe_loss" value: 0.3 } }
    saes { name: "b" metrics { key: "nmse" value: 0.2 } }
  )pb");
  ExperimentResult now = Result(R"pb(
    saes { name: "a" metrics { key: "nmse" value: 0.1 } }
    saes { name: "c" metrics { key: "nmse" value: 0.3 } }
  )pb");
  const RegressionGate gate = Gate();
  std::vector<MetricComparison> rows = CompareMetrics(baseline, now, &gate);
  // a.nmse ok, a.probe_loss missing, b.nmse missing, c (new) nmse: no baseline.
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows[0].within);
  EXPECT_FALSE(rows[1].within);
  EXPECT_FALSE(rows[2].within);
  EXPECT_EQ(rows[3].sae, "c");
  EXPECT_FALSE(rows[3].within);
  const std::string table = FormatComparisonTable(rows, "baseline", "now");
  EXPECT_NE(table.find("a    probe_loss"), std::string::npos) << table;
  EXPECT_NE(table.find("(missing)"), std::string::npos);
  EXPECT_NE(table.find("FAIL"), std::string::npos);
  EXPECT_NE(table.find("ok"), std::string::npos);
}

TEST(CompareMetricsTest, NanEqualsNanAndNothingElse) {
  ExperimentResult baseline, same, number;
  (*baseline.add_saes()->mutable_metrics())["nmse"] = std::nan("");
  baseline.mutable_saes(0)->set_name("a");
  same = baseline;
  number = baseline;
  (*number.mutable_saes(0)->mutable_metrics())["nmse"] = 0.1;
  const RegressionGate gate = Gate();
  EXPECT_TRUE(AllWithinTolerance(CompareMetrics(baseline, same, &gate)));
  EXPECT_FALSE(AllWithinTolerance(CompareMetrics(baseline, number, &gate)));
}

TEST(CompareMetricsTest, WithoutAGateEveryMetricOfEitherSideIsListed) {
  ExperimentResult a = Result(R"pb(saes { name: "x" metrics { key: "nmse" value: 1 } })pb");
  ExperimentResult b = Result(R"pb(saes { name: "x" metrics { key: "l0" value: 2 } })pb");
  std::vector<MetricComparison> rows = CompareMetrics(a, b, nullptr);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].metric, "l0");
  EXPECT_FALSE(rows[0].first.has_value());
  EXPECT_EQ(*rows[0].second, 2);
  EXPECT_EQ(rows[1].metric, "nmse");
  EXPECT_FALSE(rows[0].allowed.has_value());
}

}  // namespace
}  // namespace saelab
