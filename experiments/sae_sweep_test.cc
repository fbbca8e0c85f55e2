#include "experiments/sae_sweep.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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
       }) {
    absl::StatusOr<std::vector<SweepPoint>> points = ExpandSweep(Parse(text));
    ASSERT_FALSE(points.ok()) << text;
    EXPECT_EQ(points.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(points.status().message().find("sweep 's'"), std::string::npos)
        << points.status();
  }
}

}  // namespace
}  // namespace saelab
