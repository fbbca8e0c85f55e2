#include "experiments/sae_sweep.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "data/activations/synthetic_features.h"
#include "absl/strings/str_cat.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

SaeSweep Parse(const std::string& text) {
  SaeSweep sweep;
  absl::Status status = ParseTextProto(text, "test sweep", &sweep);
  EXPECT_TRUE(status.ok()) << status;
  return sweep;
}

std::vector<std::string> Names(const std::vector<SweepPoint>& points) {
  std::vector<std::string> names;
  for (const SweepPoint& p : points) names.push_back(p.config.name());
  return names;
}

TEST(ExpandSweepTest, GridIsTheProductOfItsAxesWithTheSparsityValues) {
  SaeSweep sweep = Parse(R"pb(
    base { name: "topk" n_latents: 64 topk { k: 4 } trainer { lr: 1e-3 } }
    sparsity: 8
    sparsity: 16
    grid { field: "n_latents" values: 512 values: 1024 }
    grid { field: "trainer.total_tokens" values: 1e6 values: 2097152 }
  )pb");
  absl::StatusOr<std::vector<SweepPoint>> points = ExpandSweep(sweep);
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_EQ(Names(*points),
            (std::vector<std::string>{
                "topk_n_latents_512_total_tokens_1e06_k8",
                "topk_n_latents_512_total_tokens_1e06_k16",
                "topk_n_latents_512_total_tokens_2.09715e06_k8",
                "topk_n_latents_512_total_tokens_2.09715e06_k16",
                "topk_n_latents_1024_total_tokens_1e06_k8",
                "topk_n_latents_1024_total_tokens_1e06_k16",
                "topk_n_latents_1024_total_tokens_2.09715e06_k8",
                "topk_n_latents_1024_total_tokens_2.09715e06_k16",
            }));
  const SweepPoint& p = (*points)[3];
  EXPECT_EQ(p.config.n_latents(), 512);
  EXPECT_EQ(p.config.trainer().total_tokens(), 2097152);
  EXPECT_EQ(p.config.topk().k(), 16);
  EXPECT_EQ(p.config.trainer().lr(), 1e-3);  // untouched fields stay
  EXPECT_EQ(p.grid_values.at("n_latents"), 512);
  EXPECT_EQ(p.grid_values.at("trainer.total_tokens"), 2097152);
}

TEST(ExpandSweepTest, GridWithoutSparsityValuesKeepsTheBaseKnob) {
  SaeSweep sweep = Parse(R"pb(
    base { name: "l1" relu_l1 { l1_coefficient: 3 } }
    grid { field: "relu_l1.decoder_init_norm" values: 0.1 values: 1 }
  )pb");
  absl::StatusOr<std::vector<SweepPoint>> points = ExpandSweep(sweep);
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_EQ(Names(*points),
            (std::vector<std::string>{"l1_decoder_init_norm_0.1", "l1_decoder_init_norm_1"}));
  EXPECT_EQ((*points)[1].config.relu_l1().decoder_init_norm(), 1.0);
  EXPECT_EQ((*points)[1].config.relu_l1().l1_coefficient(), 3.0);
}

// JumpReLU in target mode sweeps its target L0 (any positive real), not
// lambda, and names and records it as such.
TEST(ExpandSweepTest, JumpReluTargetModeSweepsTheTargetL0) {
  SaeSweep sweep = Parse(R"pb(
    base { name: "jr" jumprelu { sparsity_coefficient: 2 target { l0: 8 } } }
    sparsity: 7.5
    sparsity: 32
  )pb");
  absl::StatusOr<std::vector<SweepPoint>> points = ExpandSweep(sweep);
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_EQ(Names(*points), (std::vector<std::string>{"jr_target7.5", "jr_target32"}));
  EXPECT_EQ((*points)[0].config.jumprelu().target().l0(), 7.5);
  EXPECT_EQ((*points)[1].config.jumprelu().target().l0(), 32);
  EXPECT_EQ((*points)[1].config.jumprelu().sparsity_coefficient(), 2);
}

TEST(ExpandSweepTest, TargetL0sAndPlainSweepsKeepTheirNames) {
  SaeSweep sweep = Parse(R"pb(
    base { name: "l1" relu_l1 {} }
    target_l0: 8
    target_l0: 16.5
  )pb");
  absl::StatusOr<std::vector<SweepPoint>> points = ExpandSweep(sweep);
  ASSERT_TRUE(points.ok());
  EXPECT_EQ(Names(*points), (std::vector<std::string>{"l1_l0_8", "l1_l0_16.5"}));
  EXPECT_EQ((*points)[1].target_l0, 16.5);
  absl::StatusOr<std::vector<SweepPoint>> plain =
      ExpandSweep(Parse(R"pb(base { name: "t" topk {} })pb"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(Names(*plain), (std::vector<std::string>{"t"}));
}

TEST(ExpandSweepTest, BadGridAxesAreRefusedNamingTheSweepAndField) {
  for (const char* text : {
           R"pb(base { name: "s" topk {} } grid { field: "n_latentz" values: 1 })pb",
           R"pb(base { name: "s" topk {} } grid { field: "n_latents" values: 1.5 })pb",
           R"pb(base { name: "s" topk {} } grid { field: "name" values: 1 })pb",
           R"pb(base { name: "s" topk {} } grid { field: "n_latents" })pb",
           // k is a count: 2.5 used to become 3 without a word.
           R"pb(base { name: "s" topk {} } sparsity: 2.5)pb",
           R"pb(base { name: "s" batch_topk {} } sparsity: 0)pb",
       }) {
    absl::StatusOr<std::vector<SweepPoint>> points = ExpandSweep(Parse(text));
    ASSERT_FALSE(points.ok()) << text;
    EXPECT_EQ(points.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(points.status().message().find("sweep 's'"), std::string::npos)
        << points.status();
  }
}

// A matched-L0 sweep of 2 seeds on synthetic data (d 16, 64 features, 2
// active): with search_every_seed false, seed 1 trains at the lambda seed
// 0's search found, without a search of its own; with true, it searches.
// An experiment without the spliced evaluation has no delta_loss: no
// series for it, and no crash (commit 346b8c5 aborted here).
TEST(AddSweepSeriesTest, AMetricNoGroupHasGetsNoSeries) {
  ExperimentResult result;
  for (double l0 : {8.0, 16.0}) {
    SaeGroupSummary* g = result.add_groups();
    g->set_group(absl::StrCat("topk_", l0));
    (*g->mutable_metrics())["l0"].set_mean(l0);
    (*g->mutable_metrics())["nmse"].set_mean(1 / l0);
  }
  AddSweepSeries({{"topk", {"topk_8", "topk_16"}}}, {"nmse", "delta_loss"}, &result);
  ASSERT_EQ(result.series_size(), 1);
  EXPECT_EQ(result.series(0).name(), "topk: nmse vs l0");
  EXPECT_EQ(result.series(0).y_size(), 2);
  EXPECT_EQ(result.series(0).y(1), 1 / 16.0);
}

TEST(RunSweepsTest, LaterSeedsReuseTheFirstSeedsMatchedKnobWhenAsked) {
  SyntheticDataConfig data;
  data.set_d(16);
  data.set_n_features(64);
  data.set_mean_active_features(2);
  data.set_eval_tokens(2048);
  absl::StatusOr<std::unique_ptr<SyntheticFeatureSource>> source =
      SyntheticFeatureSource::Create(data, 1);
  ASSERT_TRUE(source.ok()) << source.status();
  for (bool every_seed : {false, true}) {
    google::protobuf::RepeatedPtrField<SaeSweep> sweeps;
    *sweeps.Add() = Parse(R"pb(
      base {
        name: "l1"
        n_latents: 64
        relu_l1 {}
        trainer { batch_size: 256 total_tokens: 16384 lr: 3e-3 init_sample_tokens: 1024 }
      }
      target_l0: 3
      seeds: 2
      matched_l0 { tolerance: 0.2 max_trainings: 8 coefficient_low: 0.1 coefficient_high: 10 }
    )pb");
    sweeps.Mutable(0)->set_search_every_seed(every_seed);
    const std::string run_dir =
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/every_seed_", every_seed);
    ExperimentResult result;
    SeedTree seeds(3);
    ReconstructionEvalConfig eval;
    ASSERT_TRUE(RunSweeps(sweeps, **source, (*source)->EvalSet(), eval, run_dir, {"nmse"}, &seeds,
                          &result)
                    .ok());
    ASSERT_EQ(result.saes_size(), 2);
    const SaeResult& first = result.saes(0);
    const SaeResult& second = result.saes(1);
    EXPECT_GT(first.l0_search_size(), 0);
    EXPECT_EQ(second.target_l0(), 3);
    EXPECT_EQ(second.hyperparameters().at("target_l0"), 3);
    EXPECT_EQ(second.group(), first.group());
    if (every_seed) {
      EXPECT_GT(second.l0_search_size(), 0);
    } else {
      EXPECT_EQ(second.l0_search_size(), 0);
      EXPECT_EQ(second.hyperparameters().at("sparsity_coefficient"),
                first.hyperparameters().at("sparsity_coefficient"));
    }
  }
}

// A JumpReLU in target mode searched to a matched L0 records both the
// search's target ("target_l0") and the target it trained at, its knob
// ("jumprelu.target.l0"), which the search moves when the L0 reached misses.
TEST(RunSweepsTest, JumpReluTargetModeRecordsTheSearchTargetAndItsKnobApart) {
  SyntheticDataConfig data;
  data.set_d(16);
  data.set_n_features(64);
  data.set_mean_active_features(2);
  data.set_eval_tokens(2048);
  absl::StatusOr<std::unique_ptr<SyntheticFeatureSource>> source =
      SyntheticFeatureSource::Create(data, 1);
  ASSERT_TRUE(source.ok()) << source.status();
  google::protobuf::RepeatedPtrField<SaeSweep> sweeps;
  // A tolerance no L0 meets, so the search takes a second, corrected try.
  *sweeps.Add() = Parse(R"pb(
    base {
      name: "jr"
      n_latents: 64
      jumprelu { target { l0: 3 } }
      trainer { batch_size: 256 total_tokens: 16384 lr: 3e-3 init_sample_tokens: 1024 }
    }
    target_l0: 3
    matched_l0 { tolerance: 1e-9 max_trainings: 2 }
  )pb");
  ExperimentResult result;
  SeedTree seeds(3);
  ReconstructionEvalConfig eval;
  ASSERT_TRUE(RunSweeps(sweeps, **source, (*source)->EvalSet(), eval,
                        absl::StrCat(std::getenv("TEST_TMPDIR"), "/jr_target"), {"nmse"}, &seeds,
                        &result)
                  .ok());
  ASSERT_EQ(result.saes_size(), 1);
  const SaeResult& sae = result.saes(0);
  ASSERT_EQ(sae.l0_search_size(), 2);
  EXPECT_EQ(sae.l0_search(0).sparsity(), 3);
  EXPECT_NE(sae.l0_search(1).sparsity(), 3);
  EXPECT_EQ(sae.target_l0(), 3);
  EXPECT_EQ(sae.hyperparameters().at("target_l0"), 3);
  const double knob = sae.hyperparameters().at("jumprelu.target.l0");
  EXPECT_TRUE(knob == sae.l0_search(0).sparsity() || knob == sae.l0_search(1).sparsity()) << knob;
}

}  // namespace
}  // namespace saelab
