#include "experiments/analysis.h"

#include <gtest/gtest.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

void AddGroup(ExperimentResult* result, const std::string& sweep, double n, double l0,
              double nmse) {
  SaeGroupSummary* g = result->add_groups();
  g->set_group(absl::StrCat(sweep, "_", n, "_", l0));
  g->set_sweep(sweep);
  (*g->mutable_hyperparameters())["n_latents"] = n;
  (*g->mutable_metrics())["l0"].set_mean(l0);
  (*g->mutable_metrics())["nmse"].set_mean(nmse);
}

PaperClaim Claim(const std::string& text) {
  PaperClaim claim;
  EXPECT_TRUE(ParseTextProto(text, "claim", &claim).ok());
  return claim;
}

TEST(CheckClaimsTest, OrderingInterpolatesBothSweepsInLogL0) {
  ExperimentResult result;
  // topk: nmse 0.10 at L0 8, 0.05 at L0 32; at L0 16 (log-midpoint) 0.075.
  AddGroup(&result, "topk", 1024, 8, 0.10);
  AddGroup(&result, "topk", 1024, 32, 0.05);
  // relu_l1: 0.12 at L0 16, 0.07 at 64: above topk over the overlap 16-32.
  AddGroup(&result, "relu_l1", 1024, 16, 0.12);
  AddGroup(&result, "relu_l1", 1024, 64, 0.07);
  google::protobuf::RepeatedPtrField<PaperClaim> claims;
  *claims.Add() = Claim(R"pb(id: "topk_ahead" paper: "Gao et al. 2024, Fig. 5"
                             ordering { metric: "nmse" better: "topk" worse: "relu_l1" points: 2 })pb");
  *claims.Add() = Claim(R"pb(id: "reverse"
                             ordering { metric: "nmse" better: "relu_l1" worse: "topk" points: 2 })pb");
  CheckClaims(claims, &result);
  ASSERT_EQ(result.claims_size(), 2);
  EXPECT_TRUE(result.claims(0).held());
  EXPECT_EQ(result.claims(0).paper(), "Gao et al. 2024, Fig. 5");
  // At L0 16: topk 0.075 vs relu 0.12; at L0 32: topk 0.05 vs relu 0.095.
  EXPECT_EQ(result.claims(0).saelab_value(),
            "nmse topk vs relu_l1: L0 16: 0.075 vs 0.12; L0 32: 0.05 vs 0.095");
  EXPECT_FALSE(result.claims(1).held());
}

TEST(CheckClaimsTest, UncheckableClaimsAreRecordedAsNotHeldWithTheReason) {
  ExperimentResult result;
  AddGroup(&result, "topk", 1024, 8, 0.10);
  AddGroup(&result, "relu_l1", 1024, 64, 0.07);
  google::protobuf::RepeatedPtrField<PaperClaim> claims;
  *claims.Add() = Claim(R"pb(ordering { metric: "nmse" better: "topk" worse: "gated" })pb");
  *claims.Add() = Claim(R"pb(ordering { metric: "nmse" better: "topk" worse: "relu_l1" })pb");
  *claims.Add() = Claim(R"pb(fit_parameter { fit: "nmse_vs_n" low: 0 high: 1 })pb");
  CheckClaims(claims, &result);
  for (const ClaimOutcome& outcome : result.claims()) {
    EXPECT_FALSE(outcome.held());
    EXPECT_EQ(outcome.saelab_value().rfind("not measured", 0), 0u) << outcome.saelab_value();
  }
}

// Spearman's rho by hand: L0 8, 16, 32, 64 with nmse 0.30, 0.20, 0.25, 0.10
// rank as (4, 2, 3, 1) against (1, 2, 3, 4): d^2 = 9 + 0 + 0 + 9 = 18,
// rho = 1 - 6 * 18 / (4 * 15) = -0.8.
TEST(CheckClaimsTest, TrendIsTheSpearmanCorrelationOfTheSweepsMeans) {
  ExperimentResult result;
  AddGroup(&result, "topk", 1024, 32, 0.25);
  AddGroup(&result, "topk", 1024, 8, 0.30);
  AddGroup(&result, "topk", 1024, 64, 0.10);
  AddGroup(&result, "topk", 1024, 16, 0.20);
  AddGroup(&result, "relu_l1", 1024, 16, 0.99);  // another sweep: ignored
  google::protobuf::RepeatedPtrField<PaperClaim> claims;
  *claims.Add() = Claim(R"pb(trend { sweep: "topk" metric: "nmse" increasing: false })pb");
  *claims.Add() = Claim(R"pb(trend { sweep: "topk" metric: "nmse" increasing: false
                                     min_correlation: 0.9 })pb");
  *claims.Add() = Claim(R"pb(trend { sweep: "topk" metric: "nmse" })pb");
  *claims.Add() = Claim(R"pb(trend { sweep: "relu_l1" metric: "nmse" })pb");
  CheckClaims(claims, &result);
  EXPECT_TRUE(result.claims(0).held());
  EXPECT_FALSE(result.claims(1).held());
  EXPECT_FALSE(result.claims(2).held());
  EXPECT_EQ(result.claims(0).saelab_value(),
            "nmse vs l0 in topk: Spearman rho -0.80 (8: 0.3, 16: 0.2, 32: 0.25, 64: 0.1)");
  EXPECT_FALSE(result.claims(3).held());
  EXPECT_EQ(result.claims(3).saelab_value().rfind("not measured", 0), 0u);
}

TEST(CheckClaimsTest, ComparisonMustHoldInEveryGroupWithTheMargin) {
  ExperimentResult result;
  AddGroup(&result, "topk", 1024, 8, 0.30);
  AddGroup(&result, "topk", 1024, 16, 0.20);
  // l0 exceeds nmse by 7.7 and 15.8: above a margin of 5, not of 10.
  google::protobuf::RepeatedPtrField<PaperClaim> claims;
  *claims.Add() = Claim(R"pb(comparison { metric: "l0" other_metric: "nmse" margin: 5 })pb");
  *claims.Add() = Claim(R"pb(comparison { metric: "l0" other_metric: "nmse" margin: 10 })pb");
  *claims.Add() = Claim(R"pb(comparison { metric: "nmse" other_metric: "l0"
                                          higher_is_better: false margin: 5 })pb");
  *claims.Add() = Claim(R"pb(comparison { metric: "probe_loss" other_metric: "nmse" })pb");
  CheckClaims(claims, &result);
  EXPECT_TRUE(result.claims(0).held());
  EXPECT_FALSE(result.claims(1).held());
  EXPECT_TRUE(result.claims(2).held());
  EXPECT_EQ(result.claims(0).saelab_value(),
            "l0 vs nmse: topk_1024_8 8 vs 0.3; topk_1024_16 16 vs 0.2");
  EXPECT_FALSE(result.claims(3).held());
}

// Sweeps at one L0 but several n compare at equal n (dead_latents).
TEST(CheckClaimsTest, OrderingAtEqualDictionarySizeAndComparisonWithAConstant) {
  ExperimentResult result;
  AddGroup(&result, "auxk", 512, 16, 0.01);
  AddGroup(&result, "auxk", 2048, 16, 0.02);
  AddGroup(&result, "no_auxk", 512, 16, 0.05);
  AddGroup(&result, "no_auxk", 2048, 16, 0.30);
  google::protobuf::RepeatedPtrField<PaperClaim> claims;
  *claims.Add() = Claim(R"pb(ordering { metric: "nmse" better: "auxk" worse: "no_auxk"
                                        x: "n_latents" points: 2 })pb");
  *claims.Add() = Claim(R"pb(comparison { metric: "nmse" value: 0.04 higher_is_better: false
                                          sweep: "auxk" })pb");
  *claims.Add() = Claim(R"pb(comparison { metric: "nmse" value: 0.04 higher_is_better: false })pb");
  CheckClaims(claims, &result);
  EXPECT_TRUE(result.claims(0).held());
  EXPECT_EQ(result.claims(0).saelab_value(),
            "nmse auxk vs no_auxk: n_latents 512: 0.01 vs 0.05; n_latents 2.05e+03: 0.02 vs 0.3");
  EXPECT_TRUE(result.claims(1).held());
  EXPECT_FALSE(result.claims(2).held());
}

TEST(FitPowerLawsTest, FitsTheSelectedGroupsAndChecksTheExponent) {
  ExperimentResult result;
  for (double n : {512, 1024, 2048, 4096, 8192}) {
    AddGroup(&result, "topk", n, 16, 0.5 * std::pow(n, -0.25) + 0.01);
    AddGroup(&result, "other", n, 16, 1.0);  // filtered out by sweep
  }
  google::protobuf::RepeatedPtrField<PowerLawFitConfig> fits;
  ASSERT_TRUE(ParseTextProto(R"pb(name: "nmse_vs_n" sweep: "topk" x: "n_latents" y: "nmse"
                                  bootstrap_samples: 50)pb",
                             "fit", fits.Add())
                  .ok());
  ASSERT_TRUE(FitPowerLaws(fits, 3, &result).ok());
  ASSERT_EQ(result.fits_size(), 1);
  EXPECT_NEAR(result.fits(0).alpha().mean(), 0.25, 1e-5);
  EXPECT_EQ(result.fits(0).points_x_size(), 5);
  google::protobuf::RepeatedPtrField<PaperClaim> claims;
  *claims.Add() = Claim(R"pb(fit_parameter { fit: "nmse_vs_n" parameter: "alpha" low: 0.2 high: 0.3 })pb");
  *claims.Add() = Claim(R"pb(fit_parameter { fit: "nmse_vs_n" parameter: "alpha" low: 0.5 high: 1 })pb");
  CheckClaims(claims, &result);
  EXPECT_TRUE(result.claims(0).held());
  EXPECT_FALSE(result.claims(1).held());
}

TEST(FitPowerLawsTest, EnvelopeKeepsOnlyPointsNothingCheaperBeats) {
  ExperimentResult result;
  // x = compute; the point at x 4 is beaten by the one at x 2, and dropped.
  for (auto [x, y] : std::vector<std::pair<double, double>>{
           {1, 1.0}, {2, 0.5}, {4, 0.6}, {8, 0.125}, {16, 0.0625}}) {
    AddGroup(&result, "t", x, 8, y);
  }
  google::protobuf::RepeatedPtrField<PowerLawFitConfig> fits;
  ASSERT_TRUE(ParseTextProto(R"pb(name: "l_of_c" x: "n_latents" envelope: true
                                  bootstrap_samples: 10)pb",
                             "fit", fits.Add())
                  .ok());
  ASSERT_TRUE(FitPowerLaws(fits, 3, &result).ok());
  EXPECT_EQ(std::vector<double>(result.fits(0).points_x().begin(),
                                result.fits(0).points_x().end()),
            (std::vector<double>{1, 2, 8, 16}));
  // y = x^-1 exactly on the envelope.
  EXPECT_NEAR(result.fits(0).alpha().mean(), 1.0, 1e-6);
}

TEST(FitPowerLawsTest, MissingValuesNameTheFitAndGroup) {
  ExperimentResult result;
  AddGroup(&result, "t", 512, 8, 0.1);
  google::protobuf::RepeatedPtrField<PowerLawFitConfig> fits;
  ASSERT_TRUE(ParseTextProto(R"pb(name: "f" x: "n_latents" y: "delta_loss")pb", "fit",
                             fits.Add())
                  .ok());
  absl::Status status = FitPowerLaws(fits, 3, &result);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("fit 'f'"), std::string::npos);
  EXPECT_NE(status.message().find("delta_loss"), std::string::npos);
}

}  // namespace
}  // namespace saelab
