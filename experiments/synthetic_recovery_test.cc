#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "experiments/runner.h"
#include "gtest/gtest.h"
#include "experiments/experiment_config.pb.h"
#include "harness/file_io.h"
#include "harness/result.pb.h"
#include "harness/textproto.h"
#include "re2/re2.h"

namespace saelab {
namespace {

using ::testing::TempDir;

RunnerOptions Options(const std::string& config, const std::string& run_dir) {
  RunnerOptions options;
  options.config_path = config;
  options.run_dir = run_dir;
  return options;
}

std::map<std::string, SaeResult> ByName(const ExperimentResult& result) {
  std::map<std::string, SaeResult> saes;
  for (const SaeResult& sae : result.saes()) saes[sae.name()] = sae;
  return saes;
}

class SyntheticRecoveryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run_dir_ = new std::string(TempDir() + "/small_run");
    auto outcome = RunExperiment(Options("experiments/testdata/synthetic_recovery_small.textproto", *run_dir_));
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    result_ = new ExperimentResult(outcome->result);
  }
  static std::string* run_dir_;
  static ExperimentResult* result_;
};
std::string* SyntheticRecoveryTest::run_dir_ = nullptr;
ExperimentResult* SyntheticRecoveryTest::result_ = nullptr;

TEST_F(SyntheticRecoveryTest, TopKAtTheTrueL0RecoversTheFeatures) {
  ASSERT_NE(result_, nullptr);
  auto saes = ByName(*result_);
  ASSERT_EQ(saes.count("topk_k2"), 1u);
  const auto& topk = saes["topk_k2"].metrics();
  // ReLU after TopK: a token with fewer than k positive pre-activations has
  // fewer than k active latents (L0 <= 2 holds by construction). A trained
  // SAE keeps both of a token's picks positive nearly always.
  EXPECT_GT(topk.at("l0"), 1.5);
  EXPECT_NEAR(topk.at("true_l0"), 2.0, 0.1);
  EXPECT_GT(topk.at("mmcs"), 0.95);
  EXPECT_LT(topk.at("nmse"), 0.5);
  const auto& relu = saes["relu_l1_l1_3"].metrics();
  EXPECT_GT(relu.at("l0"), 0.0);
  for (const char* metric : {"mse", "nmse", "fvu", "explained_variance", "l0", "dead_fraction", "mmcs"}) {
    EXPECT_EQ(relu.count(metric), 1u) << metric;
  }
}

TEST_F(SyntheticRecoveryTest, RunDirectoryHoldsConfigResultsPlotAndProvenance) {
  ASSERT_NE(result_, nullptr);
  for (const char* file : {"config.textproto", "result.pb", "result.textproto", "synthetic_recovery.png",
                           "saes/topk_k2/sae.safetensors", "saes/relu_l1_l1_3/sae_config.textproto"}) {
    EXPECT_TRUE(PathExists(*run_dir_ + "/" + file)) << file;
  }
  ExperimentResult from_disk;
  ASSERT_TRUE(ReadBinaryProtoFile(*run_dir_ + "/result.pb", &from_disk).ok());
  const Provenance& p = from_disk.provenance();
  EXPECT_EQ(p.config_sha256().size(), 64u);
  EXPECT_EQ(p.root_seed(), 3u);
  // The commit stamped into the build (tools/workspace_status.sh): a full
  // hash, not the "unknown" of an unstamped build.
  EXPECT_TRUE(RE2::FullMatch(p.git_commit(), "[0-9a-f]{40}")) << p.git_commit();
  EXPECT_FALSE(p.libtorch_version().empty());
  EXPECT_FALSE(p.cpu_model().empty());
  EXPECT_GE(p.seeds_size(), 3);  // data + two SAEs
  EXPECT_EQ(p.inputs_size(), 1);
  EXPECT_GE(p.timings_size(), 5);
  // The as-run config has the defaults filled in.
  std::string as_run = *ReadFile(*run_dir_ + "/config.textproto");
  EXPECT_NE(as_run.find("adam_beta1: 0.9"), std::string::npos) << as_run;
  EXPECT_EQ(from_disk.series_size(), 4);
}

TEST_F(SyntheticRecoveryTest, RerunInTheSameDirectoryLoadsAndReproducesTheMetrics) {
  ASSERT_NE(result_, nullptr);
  RunnerOptions options = Options("experiments/testdata/synthetic_recovery_small.textproto", *run_dir_);
  options.plot = false;
  auto again = RunExperiment(options);
  ASSERT_TRUE(again.ok()) << again.status();
  auto before = ByName(*result_);
  for (const auto& [name, sae] : ByName(again->result)) {
    for (const auto& [metric, value] : sae.metrics()) {
      EXPECT_EQ(value, before[name].metrics().at(metric)) << name << " " << metric;
    }
  }
}

// train_together trains both sweeps' SAEs in one loop over the stream:
// the same SAE bytes and the same metrics as training them one by one.
TEST_F(SyntheticRecoveryTest, TrainingTogetherGivesTheSameSaesAndMetrics) {
  ASSERT_NE(result_, nullptr);
  ExperimentConfig config;
  ASSERT_TRUE(ParseTextProtoFile("experiments/testdata/synthetic_recovery_small.textproto", &config)
                  .ok());
  config.mutable_synthetic_recovery()->set_train_together(true);
  config.mutable_synthetic_recovery()->set_plot(false);
  const std::string path = TempDir() + "/together.textproto";
  ASSERT_TRUE(WriteTextProtoFile(path, config).ok());
  auto together = RunExperiment(Options(path, TempDir() + "/together_run"));
  ASSERT_TRUE(together.ok()) << together.status();
  auto before = ByName(*result_);
  ASSERT_EQ(together->result.saes_size(), result_->saes_size());
  for (const auto& [name, sae] : ByName(together->result)) {
    for (const auto& [metric, value] : sae.metrics()) {
      EXPECT_EQ(value, before[name].metrics().at(metric)) << name << " " << metric;
    }
    EXPECT_EQ(*ReadFile(together->run_dir + "/" + sae.checkpoint() + "/sae.safetensors"),
              *ReadFile(*run_dir_ + "/" + before[name].checkpoint() + "/sae.safetensors"))
        << name;
  }
  bool phase = false;
  for (const auto& p : together->result.provenance().timings()) phase |= p.phase() == "train_together";
  EXPECT_TRUE(phase);
}

TEST(SyntheticRecoveryConfigTest, TheShippedConfigsParseAndNameTheirExperiment) {
  ExperimentConfig config;
  ASSERT_TRUE(ParseTextProtoFile("experiments/synthetic_recovery.textproto", &config).ok());
  EXPECT_EQ(config.experiment_case(), ExperimentConfig::kSyntheticRecovery);
  EXPECT_EQ(config.synthetic_recovery().sweeps_size(), 2);
  ASSERT_TRUE(ParseTextProtoFile("experiments/synthetic_recovery_matched_l0.textproto", &config).ok());
  EXPECT_EQ(config.synthetic_recovery().sweeps_size(), 6);
}

TEST(SyntheticRecoveryConfigTest, AMalformedConfigIsAnErrorNamingTheFileAndLine) {
  std::string path = TempDir() + "/bad.textproto";
  ASSERT_TRUE(AtomicWriteFile(path, "name: \"bad\"\nsynthetic_recovery {\n  sweeps { base { topk { kk: 3 } } }\n}\n").ok());
  auto outcome = RunExperiment(Options(path, TempDir() + "/bad_run"));
  ASSERT_FALSE(outcome.ok());
  EXPECT_NE(std::string(outcome.status().message()).find(path + ":3:"), std::string::npos) << outcome.status();
  EXPECT_FALSE(PathExists(TempDir() + "/bad_run"));
}

TEST(SyntheticRecoveryConfigTest, ASweepWithoutSeedsIsAnError) {
  std::string path = TempDir() + "/no_seeds.textproto";
  ASSERT_TRUE(AtomicWriteFile(path, "name: \"w\"\nsynthetic_recovery {\n  data { d: 8 n_features: 8 mean_active_features: 1 eval_tokens: 16 }\n  sweeps { base { name: \"t\" topk {} } sparsity: 1 seeds: 0 }\n}\n").ok());
  RunnerOptions options = Options(path, TempDir() + "/no_seeds_run");
  options.plot = false;
  auto outcome = RunExperiment(options);
  ASSERT_FALSE(outcome.ok());
  EXPECT_NE(std::string(outcome.status().message()).find("seeds must be >= 1"), std::string::npos) << outcome.status();
}

TEST(SyntheticRecoveryMatchedTest, AllSixArchitecturesReachTheTargetL0WithSeedIntervals) {
  RunnerOptions options = Options("experiments/testdata/synthetic_recovery_matched.textproto",
                                  TempDir() + "/matched_run");
  auto outcome = RunExperiment(options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const ExperimentResult& result = outcome->result;
  ASSERT_EQ(result.groups_size(), 6);
  std::set<std::string> architectures;
  for (const SaeGroupSummary& group : result.groups()) {
    architectures.insert(group.architecture());
    const MetricStats& l0 = group.metrics().at("l0");
    EXPECT_EQ(l0.n(), 2) << group.group();
    // Each seed reached the target within 5%, so the mean did too.
    EXPECT_NEAR(l0.mean(), 3.0, 0.15) << group.group();
    // The interval from the group's two seeds, by hand: mean +- t(0.975, 1)
    // * s / sqrt(2), with s the sample standard deviation.
    std::vector<double> nmse_of_seeds;
    for (const SaeResult& sae : result.saes()) {
      if (sae.group() == group.group()) nmse_of_seeds.push_back(sae.metrics().at("nmse"));
    }
    ASSERT_EQ(nmse_of_seeds.size(), 2u) << group.group();
    const double mean = (nmse_of_seeds[0] + nmse_of_seeds[1]) / 2;
    const double s = std::abs(nmse_of_seeds[0] - nmse_of_seeds[1]) / std::sqrt(2.0);
    const double half_width = 12.706204736174707 * s / std::sqrt(2.0);
    const MetricStats& nmse = group.metrics().at("nmse");
    EXPECT_NEAR(nmse.mean(), mean, 1e-12) << group.group();
    EXPECT_NEAR(nmse.ci95_low(), mean - half_width, 1e-7) << group.group();
    EXPECT_NEAR(nmse.ci95_high(), mean + half_width, 1e-7) << group.group();
    EXPECT_GT(half_width, 0.0) << group.group();  // the seeds differ
  }
  EXPECT_EQ(architectures, (std::set<std::string>{"relu_l1", "gated", "jumprelu", "topk",
                                                  "batch_topk", "matryoshka_batch_topk"}));
  for (const SaeResult& sae : result.saes()) {
    EXPECT_EQ(sae.target_l0(), 3.0) << sae.name();
    EXPECT_GE(sae.l0_search_size(), 1) << sae.name();
    EXPECT_NEAR(sae.metrics().at("l0"), 3.0, 0.15) << sae.name();
  }
}

}  // namespace
}  // namespace saelab
