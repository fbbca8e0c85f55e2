#include "harness/power_law.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace saelab {
namespace {

std::vector<double> Dictionary() { return {512, 1024, 2048, 4096, 8192, 16384, 32768}; }

TEST(PowerLawTest, RecoversTheParametersOfAnExactLaw) {
  // Gao et al.'s L(n) shape: alpha around 0.25 with an irreducible term.
  const std::vector<double> x = Dictionary();
  std::vector<double> y;
  for (double n : x) y.push_back(2.5 * std::pow(n, -0.35) + 0.02);
  absl::StatusOr<PowerLawParameters> fit = FitPowerLawPoints(x, y);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->alpha, 0.35, 1e-6);
  EXPECT_NEAR(fit->a, 2.5, 1e-4);
  EXPECT_NEAR(fit->c, 0.02, 1e-7);
  EXPECT_LT(fit->rms_log_residual, 1e-8);
}

TEST(PowerLawTest, PurePowerLawHasNoOffset) {
  // y = 3 x^-0.5: the same in log-log as a straight line of slope -0.5.
  std::vector<double> x = Dictionary(), y;
  for (double n : x) y.push_back(3 * std::pow(n, -0.5));
  absl::StatusOr<PowerLawParameters> fit = FitPowerLawPoints(x, y);
  ASSERT_TRUE(fit.ok());
  EXPECT_NEAR(fit->alpha, 0.5, 1e-6);
  EXPECT_NEAR(fit->c, 0, 1e-9);
}

TEST(PowerLawTest, BootstrapIntervalsCoverTheTruthOnNoisyPoints) {
  // 2% multiplicative noise, seeded: the interval must contain the true
  // exponent, and must be wider than nothing.
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 0.02);
  std::vector<double> x, y;
  for (int rep = 0; rep < 3; ++rep) {
    for (double n : Dictionary()) {
      x.push_back(n);
      y.push_back((2.0 * std::pow(n, -0.3) + 0.01) * std::exp(noise(rng)));
    }
  }
  absl::StatusOr<PowerLawFit> fit = FitPowerLaw(x, y, 400, 11);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_LE(fit->alpha().ci95_low(), 0.3);
  EXPECT_GE(fit->alpha().ci95_high(), 0.3);
  EXPECT_GT(fit->alpha().ci95_high() - fit->alpha().ci95_low(), 0.01);
  EXPECT_EQ(fit->alpha().n(), 400);
  EXPECT_EQ(fit->points_x_size(), 21);
  // Same seed, same intervals.
  absl::StatusOr<PowerLawFit> again = FitPowerLaw(x, y, 400, 11);
  EXPECT_EQ(again->alpha().ci95_low(), fit->alpha().ci95_low());
}

TEST(PowerLawTest, RefusesTooFewOrNonPositivePoints) {
  EXPECT_FALSE(FitPowerLawPoints({1, 2, 2}, {1, 0.5, 0.5}).ok());
  EXPECT_FALSE(FitPowerLawPoints({1, 2, 3}, {1, 0.5}).ok());
  EXPECT_FALSE(FitPowerLawPoints({1, 2, 3}, {1, 0, 0.3}).ok());
  EXPECT_FALSE(FitPowerLawPoints({1, 2, NAN}, {1, 0.5, 0.3}).ok());
}

}  // namespace
}  // namespace saelab
