// The metric regression gates: each gate of results/regression_gates.textproto
// reruns its committed baseline from the baseline's own as-run config and
// fails, printing a baseline-vs-now table, when a gated metric moved beyond
// its tolerance. Then the gate is shown to catch two deliberately worsened
// SAEs: one trained on an eighth of the tokens, one whose decoder was
// scaled off its unit norm after training.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "experiments/runner.h"
#include "harness/file_io.h"
#include "harness/runtime_env.h"
#include "harness/safetensors.h"
#include "harness/textproto.h"
#include "results/result_comparison.h"

namespace saelab {
namespace {

class RegressionTest : public ::testing::Test {
 protected:
  // Reductions split by thread count, so a rerun uses the intra-op thread
  // count the baseline recorded (LibTorch's default here was 1 on 2 cores;
  // another machine's default would give other bits).
  static void UseBaselineThreads(const std::string& baseline) {
    absl::StatusOr<ExperimentResult> result =
        ReadRunResult(absl::StrCat("results/baselines/", baseline));
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_GT(result->provenance().torch_threads(), 0);
    at::set_num_threads(result->provenance().torch_threads());
  }

  static RegressionGates Gates() {
    RegressionGates gates;
    absl::Status status = ParseTextProtoFile("results/regression_gates.textproto", &gates);
    EXPECT_TRUE(status.ok()) << status;
    return gates;
  }

  // The baseline's as-run config with the cache in the test's own folder,
  // written for the runner; returns its path.
  static std::string ConfigFor(const std::string& baseline, const std::string& tag,
                               const std::function<void(ExperimentConfig&)>& edit = {}) {
    absl::StatusOr<ExperimentConfig> config =
        ReadRunConfig(absl::StrCat("results/baselines/", baseline));
    EXPECT_TRUE(config.ok()) << config.status();
    const std::string tmp = std::getenv("TEST_TMPDIR");
    if (config->has_subject_sae()) {
      config->mutable_subject_sae()->mutable_activations()->set_cache_dir(tmp + "/cache");
    }
    if (edit) edit(*config);
    const std::string path = absl::StrCat(tmp, "/", baseline, "_", tag, ".textproto");
    EXPECT_TRUE(WriteTextProtoFile(path, *config).ok());
    return path;
  }

  static ExperimentResult Run(const std::string& config_path, const std::string& run_dir) {
    RunnerOptions options;
    options.config_path = config_path;
    options.run_dir = run_dir;
    options.plot = false;
    absl::StatusOr<RunnerOutcome> outcome = RunExperiment(options);
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    return outcome.ok() ? outcome->result : ExperimentResult();
  }

  static std::vector<MetricComparison> Gate(const RegressionGate& gate,
                                            const ExperimentResult& now) {
    absl::StatusOr<ExperimentResult> baseline =
        ReadRunResult(absl::StrCat("results/baselines/", gate.baseline()));
    EXPECT_TRUE(baseline.ok()) << baseline.status();
    std::vector<MetricComparison> rows = CompareMetrics(*baseline, now, &gate);
    std::cout << "gate " << gate.baseline() << ":\n"
              << FormatComparisonTable(rows, "baseline", "now") << std::endl;
    return rows;
  }

  static const MetricComparison& Row(const std::vector<MetricComparison>& rows,
                                     const std::string& sae, const std::string& metric) {
    for (const MetricComparison& row : rows) {
      if (row.sae == sae && row.metric == metric) return row;
    }
    ADD_FAILURE() << "no row " << sae << " " << metric;
    return rows.front();
  }
};

TEST_F(RegressionTest, EveryBaselineReproducesWithinItsTolerances) {
  const RegressionGates gates = Gates();
  ASSERT_GT(gates.gates_size(), 0);
  for (const RegressionGate& gate : gates.gates()) {
    UseBaselineThreads(gate.baseline());
    const std::string tmp = std::getenv("TEST_TMPDIR");
    ExperimentResult now = Run(ConfigFor(gate.baseline(), "rerun"),
                               absl::StrCat(tmp, "/", gate.baseline(), "_rerun"));
    std::vector<MetricComparison> rows = Gate(gate, now);
    EXPECT_GT(rows.size(), 10u);
    EXPECT_TRUE(AllWithinTolerance(rows))
        << "a gated metric moved; if on purpose, refresh the baseline with "
           "results/refresh_baseline.sh (see results/README.md)";
  }
}

TEST_F(RegressionTest, WorsenedSaesFailTheGateWithAReadableTable) {
  const RegressionGate gate = Gates().gates(0);
  ASSERT_EQ(gate.baseline(), "quickstart");
  UseBaselineThreads(gate.baseline());
  const std::string tmp = std::getenv("TEST_TMPDIR");
  // 1. An eighth of the training tokens, the probes off (faster).
  auto shorten = [](ExperimentConfig& config) {
    SubjectSaeConfig& s = *config.mutable_subject_sae();
    for (SaeSweep& sweep : *s.mutable_sweeps()) {
      TrainerConfig& t = *sweep.mutable_base()->mutable_trainer();
      t.set_total_tokens(t.total_tokens() / 8);
    }
    s.clear_probe_eval();
    s.clear_dashboard();
  };
  const std::string short_config = ConfigFor(gate.baseline(), "short", shorten);
  const std::string short_dir = tmp + "/quickstart_short";
  ExperimentResult short_run = Run(short_config, short_dir);
  std::vector<MetricComparison> rows = Gate(gate, short_run);
  EXPECT_FALSE(AllWithinTolerance(rows));
  EXPECT_FALSE(Row(rows, "topk_k16", "nmse").within);
  EXPECT_GT(*Row(rows, "topk_k16", "nmse").second, *Row(rows, "topk_k16", "nmse").first);
  EXPECT_FALSE(Row(rows, "relu_l1", "delta_loss").within);
  // Metrics the run lacks are listed as missing, and fail.
  EXPECT_FALSE(Row(rows, "topk_k16", "probe_loss").second.has_value());
  EXPECT_FALSE(Row(rows, "topk_k16", "probe_loss").within);
  const std::string table = FormatComparisonTable(rows, "baseline", "now");
  EXPECT_NE(table.find("FAIL"), std::string::npos);
  EXPECT_NE(table.find("(missing)"), std::string::npos);

  // 2. The short run's TopK SAE with its decoder scaled by 1.2 (off the
  // unit norm the architecture keeps), evaluated again from the same run
  // directory (a finished SAE is loaded, not retrained), against the short
  // run as baseline: only that SAE's metrics move.
  const std::string weights = short_dir + "/saes/topk_k16/sae.safetensors";
  ASSERT_TRUE(PathExists(weights)) << weights;
  absl::StatusOr<SafetensorsContents> file = ReadSafetensors(weights);
  ASSERT_TRUE(file.ok()) << file.status();
  TensorMap tensors = file->tensors;
  tensors.at("W_dec") = tensors.at("W_dec") * 1.2;
  ASSERT_TRUE(WriteSafetensors(weights, tensors, file->metadata).ok());
  std::remove((short_dir + "/result.pb").c_str());
  ExperimentResult broken = Run(short_config, short_dir);
  RegressionGate core = gate;
  core.clear_tolerances();
  for (const MetricTolerance& t : gate.tolerances()) {
    if (t.metric() != "probe_loss" && t.metric() != "sparse_probe_top1_accuracy") {
      *core.add_tolerances() = t;
    }
  }
  std::vector<MetricComparison> broken_rows = CompareMetrics(short_run, broken, &core);
  std::cout << "decoder scaled by 1.2:\n"
            << FormatComparisonTable(broken_rows, "short", "scaled") << std::endl;
  EXPECT_FALSE(Row(broken_rows, "topk_k16", "nmse").within);
  EXPECT_FALSE(Row(broken_rows, "topk_k16", "delta_loss").within);
  EXPECT_TRUE(Row(broken_rows, "relu_l1", "nmse").within);
  EXPECT_TRUE(Row(broken_rows, "relu_l1", "delta_loss").within);
}

}  // namespace
}  // namespace saelab

// The experiment binaries' own process settings (BLAS kernel, allocator),
// so a rerun here is the run a user gets.
int main(int argc, char** argv) {
  saelab::PinRuntimeEnvironment(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
