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

}  // namespace
}  // namespace saelab
