// Every evaluation of eval/ end to end: subject_sae on the committed
// reference model with a small TopK SAE and all evaluations on
// (testdata/subject_sae_evals.textproto). Checks that each one ran on real
// data and found the signal the corpora carry.
#include <torch/types.h>

#include <cmath>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "experiments/experiment_config.pb.h"
#include "experiments/runner.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/result.pb.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

using ::testing::TempDir;

class SubjectSaeEvalsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExperimentConfig config;
    ASSERT_TRUE(
        ParseTextProtoFile("experiments/testdata/subject_sae_evals.textproto", &config).ok());
    config.mutable_subject_sae()->mutable_activations()->set_cache_dir(TempDir() + "/cache");
    const std::string path = TempDir() + "/evals.textproto";
    ASSERT_TRUE(WriteTextProtoFile(path, config).ok());
    RunnerOptions options;
    options.config_path = path;
    options.run_dir = TempDir() + "/run";
    options.plot = false;
    auto outcome = RunExperiment(options);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    ASSERT_EQ(outcome->result.saes_size(), 1);
    sae_ = new SaeResult(outcome->result.saes(0));
    run_dir_ = new std::string(options.run_dir);
  }
  static SaeResult* sae_;
  static std::string* run_dir_;
};
SaeResult* SubjectSaeEvalsTest::sae_ = nullptr;
std::string* SubjectSaeEvalsTest::run_dir_ = nullptr;

TEST_F(SubjectSaeEvalsTest, CoreMetricsAndAblation) {
  ASSERT_NE(sae_, nullptr);
  const auto& m = sae_->metrics();
  EXPECT_GT(m.at("ce_spliced"), m.at("ce_clean"));
  EXPECT_LT(m.at("ce_spliced"), m.at("ce_mean_ablation"));
  EXPECT_GT(m.at("ablation_latents"), 0);
  EXPECT_GT(m.at("ablation_sparsity"), 0);
  EXPECT_LT(m.at("ablation_sparsity"), 1);
}

TEST_F(SubjectSaeEvalsTest, ProbesFindTheCorporaLabels) {
  ASSERT_NE(sae_, nullptr);
  ASSERT_EQ(sae_->probes_size(), 7);
  for (const ProbeTaskResult& probe : sae_->probes()) {
    SCOPED_TRACE(probe.task());
    EXPECT_GT(probe.train_examples(), 100);
    EXPECT_GT(probe.test_examples(), 50);
    // The activation carries every label above chance (quotation state,
    // which needs long-range attention, only weakly at layer 1) ...
    EXPECT_GT(probe.dense_accuracy(), probe.task() == "in_quotation" ? 0.55 : 0.7);
    // ... a single latent carries some of it, and a random direction less.
    EXPECT_LT(probe.probe_loss(), probe.class_entropy());
    EXPECT_LT(probe.probe_loss(), probe.random_direction_loss());
    ASSERT_EQ(probe.sparse_size(), 2);
    EXPECT_EQ(probe.sparse(1).k(), 5);
  }
  // Scripture and German are written all over the tokens: one latent suffices.
  for (const ProbeTaskResult& probe : sae_->probes()) {
    if (probe.task() == "kjv_scripture" || probe.task() == "fortunes_german") {
      EXPECT_GT(probe.best_latent_accuracy(), 0.85) << probe.task();
      EXPECT_GT(probe.sparse(1).accuracy(), 0.85) << probe.task();
    }
  }
}

TEST_F(SubjectSaeEvalsTest, AbsorptionAndClassification) {
  ASSERT_NE(sae_, nullptr);
  const AbsorptionResult& absorption = sae_->absorption();
  EXPECT_GE(absorption.letters_size(), 15);
  // The reference model spells poorly (docs/metrics.md), but above chance.
  EXPECT_GT(absorption.probe_accuracy(), 2.0 / 26);
  // Few letters have enough recognised words to be scored; the means are
  // NaN when none has.
  if (absorption.letters_scored() > 0) {
    EXPECT_GE(absorption.mean_absorption_fraction(), 0);
    EXPECT_LE(absorption.mean_absorption_fraction(), 1);
  } else {
    EXPECT_TRUE(std::isnan(absorption.mean_absorption_fraction()));
  }
  ASSERT_EQ(sae_->classification_size(), 2);
  for (const ClassificationResult& c : sae_->classification()) {
    SCOPED_TRACE(c.task());
    EXPECT_EQ(c.classes(), c.task() == "brown_genre" ? 15 : 8);
    EXPECT_GT(c.latent_accuracy(), c.majority_accuracy() + 0.05);
    EXPECT_GT(c.activation_accuracy(), c.majority_accuracy() + 0.05);
    EXPECT_GT(c.latent_features_used(), 0);
  }
}

TEST_F(SubjectSaeEvalsTest, ClampingTheScriptureLatentSteers) {
  ASSERT_NE(sae_, nullptr);
  const SteeringResult& steering = sae_->steering();
  EXPECT_EQ(steering.concept(), "scripture");
  EXPECT_GT(steering.concept_mean_activation(), steering.contrast_mean_activation());
  ASSERT_EQ(steering.points_size(), 3);
  EXPECT_EQ(steering.points(2).multiple(), 5);
  EXPECT_GT(steering.points(1).concept_rate(), steering.unsteered().concept_rate());
  EXPECT_GT(steering.points(2).concept_rate(), steering.unsteered().concept_rate() + 0.3);
  EXPECT_GT(steering.points(2).fluency_loss(), steering.unsteered().fluency_loss());
}

TEST_F(SubjectSaeEvalsTest, DashboardPagesAreWritten) {
  ASSERT_NE(sae_, nullptr);
  EXPECT_EQ(sae_->dashboard(), "dashboards/topk.html");
  absl::StatusOr<std::string> page = ReadFile(*run_dir_ + "/" + sae_->dashboard());
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(absl::StrContains(*page, "topk"));
  absl::StatusOr<std::string> index = ReadFile(*run_dir_ + "/dashboards/index.html");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_TRUE(absl::StrContains(*index, "topk.html"));
}

}  // namespace
}  // namespace saelab
