#include "harness/statistics.h"

#include <cmath>

#include "gtest/gtest.h"

namespace saelab {
namespace {

// Independent route: integrate Student's t density with Simpson's rule.
double TDensity(double t, int df) {
  double v = df;
  double log_c = std::lgamma((v + 1) / 2) - std::lgamma(v / 2) - 0.5 * std::log(v * M_PI);
  return std::exp(log_c - (v + 1) / 2 * std::log1p(t * t / v));
}

double TCdfFromZero(double t, int df) {  // P(0 < T < t)
  const int steps = 20000;
  double h = t / steps, sum = TDensity(0, df) + TDensity(t, df);
  for (int i = 1; i < steps; ++i) sum += (i % 2 ? 4 : 2) * TDensity(i * h, df);
  return sum * h / 3;
}

TEST(StatisticsTest, TQuantilesPutTwoAndAHalfPercentInEachTail) {
  for (int df : {1, 2, 3, 5, 9, 17, 30, 35, 50, 100, 500}) {
    double q = StudentT975(df);
    // Heavy tails at df = 1 make the numerical integral the looser bound.
    EXPECT_NEAR(0.5 + TCdfFromZero(q, df), 0.975, df == 1 ? 2e-4 : 1e-4) << "df " << df;
  }
  EXPECT_NEAR(StudentT975(1000000), 1.959964, 1e-4);
}

TEST(StatisticsTest, SummaryOfThreeValuesByHand) {
  // values 1, 2, 6: mean 3; squares 4 + 1 + 9 = 14; sd = sqrt(7) = 2.6457513;
  // half-width = t_{0.975,2} sd / sqrt(3) = 4.3026527 * 2.6457513 / 1.7320508 = 6.5724...
  MetricStats s = Summarize({1, 2, 6});
  EXPECT_EQ(s.n(), 3);
  EXPECT_DOUBLE_EQ(s.mean(), 3.0);
  EXPECT_NEAR(s.sd(), 2.6457513, 1e-7);
  EXPECT_NEAR(s.ci95_high() - s.mean(), 4.30265273 * 2.6457513 / 1.7320508, 1e-6);
  EXPECT_NEAR(s.mean() - s.ci95_low(), s.ci95_high() - s.mean(), 1e-12);
}

TEST(StatisticsTest, OneValueHasNoSpread) {
  MetricStats s = Summarize({0.5});
  EXPECT_EQ(s.n(), 1);
  EXPECT_EQ(s.sd(), 0.0);
  EXPECT_EQ(s.ci95_low(), 0.5);
  EXPECT_EQ(s.ci95_high(), 0.5);
  EXPECT_EQ(Summarize({}).n(), 0);
}

}  // namespace
}  // namespace saelab
