#include "eval/linear_probe.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>

#include "gtest/gtest.h"

namespace saelab {
namespace {

double Logit(double p) { return std::log(p / (1 - p)); }
double Entropy(double p) { return -p * std::log(p) - (1 - p) * std::log(1 - p); }

// x in {0, 1}, 100 rows each: 30 positives among x = 0, 80 among x = 1. The
// maximum-likelihood logistic fit has the closed form sigmoid(b) = 0.3,
// sigmoid(w + b) = 0.8, and its cross-entropy on the same rows is the
// conditional entropy of y given x.
void BinaryFeatureData(torch::Tensor* x, torch::Tensor* y) {
  *x = torch::cat({torch::zeros({100}), torch::ones({100})}).unsqueeze(1);
  *y = torch::zeros({200}, torch::kLong);
  y->slice(0, 0, 30).fill_(1);
  y->slice(0, 100, 180).fill_(1);
}

TEST(LinearProbeTest, OneDimensionalProbeMatchesTheClosedForm) {
  torch::Tensor x, y;
  BinaryFeatureData(&x, &y);
  // A second column that is constant: only the bias can fit it.
  const torch::Tensor features = torch::cat({x, torch::full_like(x, 3.0)}, 1);
  const PerLatentProbes probes = FitPerLatentProbes(features, y, features, y, /*l2=*/0.0);
  EXPECT_NEAR(probes.bias[0].item<double>(), Logit(0.3), 1e-8);
  EXPECT_NEAR(probes.weight[0].item<double>(), Logit(0.8) - Logit(0.3), 1e-8);
  EXPECT_NEAR(probes.test_cross_entropy[0].item<double>(), 0.5 * Entropy(0.3) + 0.5 * Entropy(0.8),
              1e-10);
  EXPECT_NEAR(probes.test_accuracy[0].item<double>(), (70.0 + 80.0) / 200.0, 1e-12);
  EXPECT_EQ(probes.weight[1].item<double>(), 0.0);
  EXPECT_NEAR(probes.test_cross_entropy[1].item<double>(), Entropy(110.0 / 200.0), 1e-10);
}

TEST(LinearProbeTest, PerLatentProbesFindAPlantedFeature) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({2000, 64});
  const torch::Tensor u = torch::randn({64});
  const torch::Tensor y = (torch::matmul(x, u) > 0).to(torch::kLong);
  // 300 noise latents and, at column 123, the planted projection (ReLU'd
  // like an SAE latent).
  torch::Tensor latents = torch::relu(torch::randn({2000, 300}));
  latents.select(1, 123).copy_(torch::relu(torch::matmul(x, u)));
  const auto train = torch::indexing::Slice(0, 1500), test = torch::indexing::Slice(1500, 2000);
  const PerLatentProbes probes =
      FitPerLatentProbes(latents.index({train}), y.index({train}), latents.index({test}),
                         y.index({test}), 1e-4, /*column_chunk=*/64);
  EXPECT_EQ(probes.test_cross_entropy.argmin().item<int64_t>(), 123);
  EXPECT_LT(probes.test_cross_entropy[123].item<double>(), 0.1);
  // Noise columns stay near the class entropy.
  EXPECT_GT(probes.test_cross_entropy.slice(0, 0, 100).min().item<double>(), 0.6);
}

TEST(LinearProbeTest, LiblinearL2MatchesTheClosedFormAtWeakRegularisation) {
  torch::Tensor x, y;
  BinaryFeatureData(&x, &y);
  LogisticOptions options;
  options.c = 1e7;
  options.tolerance = 1e-10;
  const absl::StatusOr<LinearClassifier> fit = FitLogisticRegression(x, y, options);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->bias[0].item<double>(), Logit(0.3), 1e-3);
  EXPECT_NEAR(fit->weight[0][0].item<double>(), Logit(0.8) - Logit(0.3), 1e-3);
}

TEST(LinearProbeTest, L1UsesFewFeaturesAndFindsThePlantedOnes) {
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({1000, 50});
  const torch::Tensor y = (2 * x.select(1, 3) - x.select(1, 17) > 0).to(torch::kLong);
  LogisticOptions options;
  options.penalty = Penalty::kL1;
  options.c = 0.05;
  const absl::StatusOr<LinearClassifier> fit = FitLogisticRegression(x, y, options);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_LT(fit->FeaturesUsed(), 10);
  EXPECT_GT(fit->weight[0][3].item<double>(), 0);
  EXPECT_LT(fit->weight[0][17].item<double>(), 0);
  EXPECT_GT(ScoreBinary(fit->DecisionValues(x), y).accuracy, 0.95);
  // Deterministic: the same fit again gives the same bits.
  const absl::StatusOr<LinearClassifier> again = FitLogisticRegression(x, y, options);
  EXPECT_TRUE(torch::equal(fit->weight, again->weight));
}

TEST(LinearProbeTest, MultiClassKeepsTheClassOrder) {
  torch::manual_seed(3);
  // Three blobs, listed class 2 first so liblinear meets the labels out of order.
  const torch::Tensor centers = torch::tensor({{0.0, 4.0}, {4.0, 0.0}, {-4.0, -4.0}});
  const torch::Tensor labels = torch::tensor({2, 0, 1}).repeat({200});
  const torch::Tensor x = centers.index_select(0, labels) + torch::randn({600, 2});
  const absl::StatusOr<LinearClassifier> fit = FitLogisticRegression(x, labels);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->classes, 3);
  EXPECT_GT((fit->Predict(x) == labels).to(torch::kFloat64).mean().item<double>(), 0.97);
}

TEST(LinearProbeTest, RocAucMatchesPairCounting) {
  torch::manual_seed(4);
  const torch::Tensor scores = torch::randint(0, 5, {300}).to(torch::kFloat64);  // many ties
  const torch::Tensor labels = torch::randint(0, 2, {300}, torch::kLong);
  double wins = 0, pairs = 0;
  for (int64_t i = 0; i < 300; ++i) {
    for (int64_t j = 0; j < 300; ++j) {
      if (labels[i].item<int64_t>() != 1 || labels[j].item<int64_t>() != 0) continue;
      const double a = scores[i].item<double>(), b = scores[j].item<double>();
      wins += a > b ? 1.0 : (a == b ? 0.5 : 0.0);
      pairs += 1;
    }
  }
  EXPECT_NEAR(RocAuc(scores, labels), wins / pairs, 1e-12);
}

TEST(LinearProbeTest, OneClassIsAClearError) {
  const absl::StatusOr<LinearClassifier> fit =
      FitLogisticRegression(torch::randn({10, 3}), torch::ones({10}, torch::kLong));
  ASSERT_FALSE(fit.ok());
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(fit.status().message().find("class 0 has no training example"), std::string::npos)
      << fit.status();
}

}  // namespace
}  // namespace saelab
