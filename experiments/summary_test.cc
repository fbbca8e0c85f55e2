#include "experiments/summary.h"

#include "gtest/gtest.h"

namespace saelab {
namespace {

TEST(SummaryTest, OneRowPerSaeWithTheMetricsTheRunHas) {
  ExperimentResult result;
  SaeResult* a = result.add_saes();
  a->set_name("topk_k16");
  (*a->mutable_metrics())["l0"] = 16;
  (*a->mutable_metrics())["nmse"] = 0.04613;
  (*a->mutable_metrics())["delta_loss"] = 0.0665;
  (*a->mutable_metrics())["fvu"] = 0.06;  // not a summary column
  SaeResult* b = result.add_saes();
  b->set_name("relu");
  (*b->mutable_metrics())["l0"] = 31.25;
  (*b->mutable_metrics())["nmse"] = 0.1;
  EXPECT_EQ(FormatSummaryTable(result),
            "sae             l0      nmse  delta_loss\n"
            "topk_k16   16.0000    0.0461      0.0665\n"
            "relu       31.2500    0.1000           -\n");
  EXPECT_EQ(FormatSummaryTable(ExperimentResult()), "");
}

TEST(SummaryTest, GroupsOfSeveralSeedsPrintMeanAndIntervalHalfWidth) {
  ExperimentResult result;
  result.add_saes()->set_name("topk_k8_s0");
  (*result.mutable_saes(0)->mutable_metrics())["nmse"] = 0.1;
  SaeGroupSummary* g = result.add_groups();
  g->set_group("topk_k8");
  MetricStats& nmse = (*g->mutable_metrics())["nmse"];
  nmse.set_mean(0.1);
  nmse.set_ci95_low(0.09);
  nmse.set_ci95_high(0.11);
  nmse.set_n(3);
  EXPECT_EQ(FormatSummaryTable(result),
            "group                  nmse\n"
            "topk_k8     0.1000 ±0.0100\n");
}

TEST(SummaryTest, ClaimsListEachOutcome) {
  ExperimentResult result;
  EXPECT_EQ(FormatClaims(result), "");
  ClaimOutcome* c = result.add_claims();
  c->set_id("topk_ahead");
  c->set_paper("Gao et al. 2024, Fig. 5");
  c->set_saelab_value("nmse 0.09 vs 0.14");
  c->set_held(true);
  result.add_claims()->set_id("other");
  EXPECT_EQ(FormatClaims(result),
            "paper claims: 1 of 2 held\n"
            "  yes  topk_ahead (Gao et al. 2024, Fig. 5): nmse 0.09 vs 0.14\n"
            "  NO   other (): \n");
}

}  // namespace
}  // namespace saelab
