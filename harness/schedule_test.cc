#include "harness/schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace saelab {
namespace {

TEST(ScheduleTest, LinearWarmupRisesFromZeroToOneThenStays) {
  EXPECT_EQ(LinearWarmupFactor(0, 10.0), 0.0);
  EXPECT_DOUBLE_EQ(LinearWarmupFactor(5, 10.0), 0.5);
  EXPECT_EQ(LinearWarmupFactor(10, 10.0), 1.0);
  EXPECT_EQ(LinearWarmupFactor(1000, 10.0), 1.0);
  // Fractional warm-up lengths (fraction * total steps) are kept exact.
  EXPECT_DOUBLE_EQ(LinearWarmupFactor(1, 2.5), 0.4);
}

TEST(ScheduleTest, NoWarmupMeansFullCoefficientFromTheStart) {
  EXPECT_EQ(LinearWarmupFactor(0, 0.0), 1.0);
  EXPECT_EQ(LinearWarmupFactor(0, -1.0), 1.0);
}

TEST(ScheduleTest, DecayTailIsFlatThenLinearToZeroOverTheLastFraction) {
  // 100 steps, last 20% decay: flat through step 80, then (100 - s) / 20.
  EXPECT_EQ(LinearDecayTailFactor(0, 100, 0.2), 1.0);
  EXPECT_EQ(LinearDecayTailFactor(80, 100, 0.2), 1.0);
  EXPECT_DOUBLE_EQ(LinearDecayTailFactor(90, 100, 0.2), 0.5);
  EXPECT_DOUBLE_EQ(LinearDecayTailFactor(99, 100, 0.2), 0.05);
  EXPECT_EQ(LinearDecayTailFactor(100, 100, 0.2), 0.0);
  EXPECT_EQ(LinearDecayTailFactor(120, 100, 0.2), 0.0);
  EXPECT_EQ(LinearDecayTailFactor(99, 100, 0.0), 1.0);
}

TEST(ScheduleTest, WarmupCosineMatchesTheClosedForm) {
  // warm-up 10 steps to 1.0, cosine to 0.1 at step 109.
  EXPECT_DOUBLE_EQ(WarmupCosine(0, 10, 110, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(WarmupCosine(9, 10, 110, 1.0, 0.1), 1.0);
  EXPECT_DOUBLE_EQ(WarmupCosine(10, 10, 110, 1.0, 0.1), 1.0);
  // 111 steps: the cosine spans steps 10..110 (100 steps); at step 60 it is
  // halfway, cos(pi / 2) = 0, so floor + (peak - floor) / 2 = 0.55.
  EXPECT_NEAR(WarmupCosine(60, 10, 111, 1.0, 0.1), 0.55, 1e-15);
  EXPECT_NEAR(WarmupCosine(109, 10, 110, 1.0, 0.1), 0.1, 1e-15);
  EXPECT_NEAR(WarmupCosine(500, 10, 110, 1.0, 0.1), 0.1, 1e-15);
}

}  // namespace
}  // namespace saelab
