#include "data/activations/synthetic_features.h"

#include <cmath>

#include "gtest/gtest.h"

namespace saelab {
namespace {

SyntheticDataConfig SmallConfig() {
  SyntheticDataConfig config;
  config.set_d(16);
  config.set_n_features(40);
  config.set_mean_active_features(4);
  config.set_eval_tokens(256);
  return config;
}

TEST(SyntheticFeaturesTest, TokensAreTheCodesTimesTheFeatures) {
  auto source = SyntheticFeatureSource::Create(SmallConfig(), 1);
  ASSERT_TRUE(source.ok()) << source.status();
  torch::Tensor codes;
  torch::Tensor x = (*source)->Sample(100, 5, &codes);
  // Recompute x token by token from the definition x = sum_i c_i F_i.
  const torch::Tensor& f = (*source)->features();
  for (int64_t t = 0; t < 100; t += 17) {
    torch::Tensor expected = torch::zeros({16});
    for (int64_t i = 0; i < 40; ++i) expected += codes[t][i] * f[i];
    EXPECT_TRUE(torch::allclose(x[t], expected, 1e-5, 1e-6));
  }
  EXPECT_TRUE(torch::allclose(f.norm(2, {1}), torch::ones({40}), 1e-5, 1e-6));
}

TEST(SyntheticFeaturesTest, MeanActiveFeaturesMatchesTheConfig) {
  SyntheticDataConfig config = SmallConfig();
  config.set_frequency_decay(0.5);
  auto source = SyntheticFeatureSource::Create(config, 2);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_NEAR((*source)->firing_probabilities().sum().item<double>(), 4.0, 1e-9);
  torch::Tensor codes;
  (*source)->Sample(20000, 9, &codes);
  double l0 = (codes != 0).sum().item<double>() / 20000.0;
  // Binomial: sd of the mean ~ sqrt(4 / 20000) = 0.014.
  EXPECT_NEAR(l0, 4.0, 0.07);
}

TEST(SyntheticFeaturesTest, CopulaKeepsMarginalRatesAndCorrelatesFiring) {
  SyntheticDataConfig config = SmallConfig();
  config.set_correlation(0.8);
  config.set_correlation_rank(1);
  auto source = SyntheticFeatureSource::Create(config, 3);
  ASSERT_TRUE(source.ok()) << source.status();
  torch::Tensor codes;
  (*source)->Sample(40000, 11, &codes);
  torch::Tensor active = (codes != 0).to(torch::kFloat64);
  EXPECT_NEAR(active.sum().item<double>() / 40000.0, 4.0, 0.15);
  // With one shared factor, the number of active features per token varies
  // far more than under independence (variance ~ sum p(1-p) = 3.6).
  double variance = active.sum(1).var().item<double>();
  EXPECT_GT(variance, 2 * 3.6);
}

TEST(SyntheticFeaturesTest, BatchesArePureFunctionsOfTheStep) {
  auto a = SyntheticFeatureSource::Create(SmallConfig(), 4);
  auto b = SyntheticFeatureSource::Create(SmallConfig(), 4);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(torch::equal(*(*a)->TrainBatch(7, 32), *(*b)->TrainBatch(7, 32)));
  EXPECT_FALSE(torch::equal(*(*a)->TrainBatch(7, 32), *(*a)->TrainBatch(8, 32)));
  EXPECT_TRUE(torch::equal((*a)->EvalSet(), (*b)->EvalSet()));
}

TEST(SyntheticFeaturesTest, ImpossibleProbabilitiesAreAnErrorNamingTheField) {
  SyntheticDataConfig config = SmallConfig();
  config.set_mean_active_features(30);
  config.set_frequency_decay(2.0);  // the first feature would need p > 1
  auto source = SyntheticFeatureSource::Create(config, 1);
  ASSERT_FALSE(source.ok());
  EXPECT_NE(std::string(source.status().message()).find("mean_active_features"), std::string::npos);
  config = SmallConfig();
  config.set_correlation(1.0);
  EXPECT_FALSE(SyntheticFeatureSource::Create(config, 1).ok());
}

TEST(SyntheticFeaturesTest, ChildrenFireOnlyWithTheirParentAtTheConfiguredRates) {
  SyntheticDataConfig config = SmallConfig();  // 40 features: 10 parents, 3 children each
  config.set_frequency_decay(0.5);
  config.set_children_per_parent(3);
  config.set_child_probability(0.4);
  auto source = SyntheticFeatureSource::Create(config, 4);
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_EQ((*source)->parents(), 10);
  const torch::Tensor parent_of = (*source)->ParentOf();
  for (int64_t i = 0; i < 40; ++i) {
    EXPECT_EQ(parent_of[i].item<int64_t>(), i < 10 ? -1 : (i - 10) / 3) << i;
  }
  const torch::Tensor& p = (*source)->firing_probabilities();
  EXPECT_NEAR(p.sum().item<double>(), 4.0, 1e-9);
  torch::Tensor codes;
  const int64_t tokens = 40000;
  (*source)->Sample(tokens, 12, &codes);
  torch::Tensor active = codes != 0;
  for (int64_t parent = 0; parent < 10; ++parent) {
    torch::Tensor parent_active = active.select(1, parent);
    const double parent_count = parent_active.sum().item<double>();
    for (int64_t j = 0; j < 3; ++j) {
      const int64_t child = 10 + parent * 3 + j;
      torch::Tensor child_active = active.select(1, child);
      // Never without the parent; with it, at the child probability.
      EXPECT_EQ(child_active.logical_and(parent_active.logical_not()).sum().item<int64_t>(), 0);
      EXPECT_NEAR(p[child].item<double>(), 0.4 * p[parent].item<double>(), 1e-12);
      if (parent_count > 2000) {
        EXPECT_NEAR(child_active.sum().item<double>() / parent_count, 0.4, 0.04) << child;
      }
    }
  }
  EXPECT_NEAR(active.sum().item<double>() / tokens, 4.0, 0.1);
}

TEST(SyntheticFeaturesTest, BadHierarchiesAreErrorsNamingTheField) {
  SyntheticDataConfig config = SmallConfig();
  config.set_children_per_parent(2);  // 40 is not a multiple of 3
  auto source = SyntheticFeatureSource::Create(config, 1);
  ASSERT_FALSE(source.ok());
  EXPECT_NE(std::string(source.status().message()).find("children_per_parent"), std::string::npos);
  config.set_children_per_parent(3);
  config.set_correlation(0.5);
  source = SyntheticFeatureSource::Create(config, 1);
  ASSERT_FALSE(source.ok());
  EXPECT_NE(std::string(source.status().message()).find("correlation"), std::string::npos);
  config.set_correlation(0);
  config.set_child_probability(0);
  source = SyntheticFeatureSource::Create(config, 1);
  ASSERT_FALSE(source.ok());
  EXPECT_NE(std::string(source.status().message()).find("child_probability"), std::string::npos);
}

}  // namespace
}  // namespace saelab
