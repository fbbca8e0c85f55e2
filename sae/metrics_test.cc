#include "sae/metrics.h"

#include <cmath>
#include <cstdint>
#include <torch/utils.h>
#include <vector>

#include "gtest/gtest.h"

namespace saelab {
namespace {

constexpr double kTol = 1e-12;

torch::Tensor Rows(std::vector<std::vector<double>> rows) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t d = static_cast<int64_t>(rows[0].size());
  torch::Tensor t = torch::zeros({n, d}, torch::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) t[i][j] = rows[i][j];
  }
  return t;
}

// A hand-made 3-token set, d = 2, n_latents = 4:
//   x     = [1 2]  [3 0]  [2 1]        mean E[x] = [2 1]
//   x_hat = [1 1]  [2 0]  [2 1]
//   x - x_hat = [0 1] [1 0] [0 0]      sum ||x - x_hat||^2 = 1 + 1 + 0 = 2
//   sum ||x||^2 = 5 + 9 + 5 = 19
//   x - E[x] = [-1 1] [1 -1] [0 0]     sum ||x - E[x]||^2 = 2 + 2 + 0 = 4
//   f = [1 0 0 2]  [0 0 0 3]  [0 0 0 0]
//       non-zeros per token 2, 1, 0    -> l0 = 3 / 3 = 1
//       latents 1 and 2 never fire      -> dead_fraction = 2 / 4 = 0.5
struct HandSet {
  torch::Tensor x = Rows({{1, 2}, {3, 0}, {2, 1}});
  torch::Tensor x_hat = Rows({{1, 1}, {2, 0}, {2, 1}});
  torch::Tensor f = Rows({{1, 0, 0, 2}, {0, 0, 0, 3}, {0, 0, 0, 0}});
};

ReconstructionMetrics HandMetrics() {
  HandSet s;
  ReconstructionMetrics metrics(/*d_in=*/2, /*n_latents=*/4);
  metrics.Add(s.x, s.x_hat, s.f);
  return metrics;
}

TEST(MetricsTest, MseIsTotalSquaredErrorOverTokensTimesDim) {
  // 2 / (3 tokens * 2 dims) = 1/3.
  EXPECT_NEAR(HandMetrics().Mse(), 1.0 / 3.0, kTol);
}

TEST(MetricsTest, NmseIsTotalSquaredErrorOverTotalSquaredNorm) {
  // 2 / 19.
  EXPECT_NEAR(HandMetrics().Nmse(), 2.0 / 19.0, kTol);
}

TEST(MetricsTest, FvuIsTotalSquaredErrorOverTotalCentredSquaredNorm) {
  // 2 / 4 = 0.5; explained variance 1 - 0.5 = 0.5.
  ReconstructionMetrics metrics = HandMetrics();
  EXPECT_NEAR(metrics.Fvu(), 0.5, kTol);
  EXPECT_NEAR(metrics.ExplainedVariance(), 0.5, kTol);
}

TEST(MetricsTest, L0IsMeanNonZeroLatentsPerToken) {
  EXPECT_NEAR(HandMetrics().L0(), 1.0, kTol);
}

TEST(MetricsTest, L0CountsAnyNonZeroActivationHoweverSmall) {
  // f = [1e-30 0 0] [0 0 -2]: 1 + 1 non-zeros over 2 tokens -> l0 = 1.
  ReconstructionMetrics metrics(/*d_in=*/1, /*n_latents=*/3);
  metrics.Add(Rows({{1}, {1}}), Rows({{1}, {1}}), Rows({{1e-30, 0, 0}, {0, 0, -2}}));
  EXPECT_NEAR(metrics.L0(), 1.0, kTol);
  EXPECT_NEAR(metrics.DeadFraction(), 1.0 / 3.0, kTol);
}

TEST(MetricsTest, DeadFractionIsLatentsThatNeverFiredOverAllLatents) {
  ReconstructionMetrics metrics = HandMetrics();
  EXPECT_NEAR(metrics.DeadFraction(), 0.5, kTol);
  // Fire counts: latent 0 once, latent 3 twice.
  std::vector<int64_t> expected = {1, 0, 0, 2};
  ASSERT_EQ(metrics.fire_counts().numel(), 4);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(metrics.fire_counts()[i].item<int64_t>(), expected[i]);
}

TEST(MetricsTest, LatentFiringOnlyInSecondBatchIsNotDead) {
  // n = 3. Batch 1: only latent 0 fires -> latents 1, 2 dead (2/3).
  // Batch 2: latent 2 fires once -> only latent 1 dead over all tokens (1/3).
  ReconstructionMetrics metrics(/*d_in=*/1, /*n_latents=*/3);
  metrics.Add(Rows({{1}, {2}}), Rows({{1}, {2}}), Rows({{1, 0, 0}, {2, 0, 0}}));
  EXPECT_NEAR(metrics.DeadFraction(), 2.0 / 3.0, kTol);
  metrics.Add(Rows({{3}}), Rows({{3}}), Rows({{0, 0, 5}}));
  EXPECT_NEAR(metrics.DeadFraction(), 1.0 / 3.0, kTol);
  EXPECT_EQ(metrics.tokens(), 3);
}

// Brute-force reference, written as plain loops over float64 copies of the
// rows: returns {mse, nmse, fvu, l0} of the whole set.
struct Reference {
  double mse, nmse, fvu, l0;
};

Reference BruteForce(const torch::Tensor& x, const torch::Tensor& x_hat, const torch::Tensor& f) {
  torch::Tensor xd = x.to(torch::kFloat64), xhd = x_hat.to(torch::kFloat64);
  torch::Tensor fd = f.to(torch::kFloat64);
  auto xa = xd.accessor<double, 2>();
  auto xha = xhd.accessor<double, 2>();
  auto fa = fd.accessor<double, 2>();
  const int64_t n = x.size(0), d = x.size(1);
  std::vector<double> mean(d, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) mean[j] += xa[i][j] / n;
  }
  double err = 0, norm = 0, centred = 0, active = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      err += (xa[i][j] - xha[i][j]) * (xa[i][j] - xha[i][j]);
      norm += xa[i][j] * xa[i][j];
      centred += (xa[i][j] - mean[j]) * (xa[i][j] - mean[j]);
    }
    for (int64_t j = 0; j < f.size(1); ++j) active += fa[i][j] != 0.0 ? 1 : 0;
  }
  return {err / (n * d), err / norm, err / centred, active / n};
}

TEST(MetricsTest, SplittingIntoBatchesGivesTheWholeSetValuesNotPerBatchAverages) {
  // 12 tokens, d = 3, n = 5. The last 6 tokens are 10x larger with a small
  // error; the first 6 are small with a large relative error, so averaging
  // per batch weights them very differently from the whole-set ratio.
  torch::manual_seed(0);
  const int64_t d = 3, n = 5;
  torch::Tensor x = torch::randn({12, d});
  x.slice(0, 6, 12).mul_(10.0).add_(4.0);
  torch::Tensor x_hat = x + 0.05 * torch::randn({12, d});
  x_hat.slice(0, 0, 6).copy_(x.slice(0, 0, 6) + 0.8 * torch::randn({6, d}));
  torch::Tensor f = torch::relu(torch::randn({12, n}));
  Reference whole = BruteForce(x, x_hat, f);

  for (int64_t batch : {1, 2, 5, 6, 12}) {
    ReconstructionMetrics metrics(d, n);
    for (int64_t start = 0; start < 12; start += batch) {
      int64_t end = std::min<int64_t>(start + batch, 12);
      metrics.Add(x.slice(0, start, end), x_hat.slice(0, start, end), f.slice(0, start, end));
    }
    EXPECT_EQ(metrics.tokens(), 12);
    EXPECT_NEAR(metrics.Mse(), whole.mse, 1e-9 * whole.mse) << "batch " << batch;
    EXPECT_NEAR(metrics.Nmse(), whole.nmse, 1e-9 * whole.nmse) << "batch " << batch;
    EXPECT_NEAR(metrics.Fvu(), whole.fvu, 1e-9 * whole.fvu) << "batch " << batch;
    EXPECT_NEAR(metrics.L0(), whole.l0, 1e-12) << "batch " << batch;
  }

  // The per-batch average (two batches of 6) is a different number: the
  // test above would catch an accumulator that averaged per batch.
  Reference first = BruteForce(x.slice(0, 0, 6), x_hat.slice(0, 0, 6), f.slice(0, 0, 6));
  Reference second = BruteForce(x.slice(0, 6, 12), x_hat.slice(0, 6, 12), f.slice(0, 6, 12));
  double averaged_nmse = (first.nmse + second.nmse) / 2;
  double averaged_fvu = (first.fvu + second.fvu) / 2;
  EXPECT_GT(std::abs(averaged_nmse - whole.nmse), 0.1 * whole.nmse);
  EXPECT_GT(std::abs(averaged_fvu - whole.fvu), 0.1 * whole.fvu);
}

TEST(MetricsTest, DensityHistogramBinsLog10FireDensityAndCountsNeverFiredApart) {
  // 100 tokens, 5 latents, 2 bins on [log10(1/100), 0] = [-2, 0]:
  // edges -2, -1, 0.
  //   latent 0 fires 100 -> density 1    log10 0      -> bin 1 (top edge)
  //   latent 1 fires 1   -> density 0.01 log10 -2     -> bin 0 (bottom edge)
  //   latent 2 fires 5   -> density 0.05 log10 -1.301 -> bin 0
  //   latent 3 fires 50  -> density 0.5  log10 -0.301 -> bin 1
  //   latent 4 never fires                            -> never_fired
  const int64_t tokens = 100;
  torch::Tensor f = torch::zeros({tokens, 5});
  f.select(1, 0).fill_(1.0);
  f[0][1] = 1.0;
  f.select(1, 2).slice(0, 0, 5).fill_(1.0);
  f.select(1, 3).slice(0, 50, 100).fill_(1.0);
  torch::Tensor x = torch::ones({tokens, 1});
  ReconstructionMetrics metrics(/*d_in=*/1, /*n_latents=*/5);
  metrics.Add(x, x, f);

  DensityHistogram histogram = metrics.DensityHistogramOf(/*bins=*/2);
  ASSERT_EQ(histogram.log10_edges_size(), 3);
  EXPECT_NEAR(histogram.log10_edges(0), -2.0, kTol);
  EXPECT_NEAR(histogram.log10_edges(1), -1.0, kTol);
  EXPECT_NEAR(histogram.log10_edges(2), 0.0, kTol);
  ASSERT_EQ(histogram.counts_size(), 2);
  EXPECT_EQ(histogram.counts(0), 2);
  EXPECT_EQ(histogram.counts(1), 2);
  EXPECT_EQ(histogram.never_fired(), 1);
}

TEST(MetricsTest, DensityHistogramCountsPlusNeverFiredIsEveryLatent) {
  torch::manual_seed(1);
  const int64_t n = 200, tokens = 300;
  // Latent i fires with probability (i % 40) / 200: some never, some often.
  torch::Tensor p = (torch::arange(n) % 40).to(torch::kFloat32) / 200.0;
  torch::Tensor f = (torch::rand({tokens, n}) < p.unsqueeze(0)).to(torch::kFloat32);
  torch::Tensor x = torch::randn({tokens, 4});
  ReconstructionMetrics metrics(4, n);
  metrics.Add(x.slice(0, 0, 100), x.slice(0, 0, 100), f.slice(0, 0, 100));
  metrics.Add(x.slice(0, 100, 300), x.slice(0, 100, 300), f.slice(0, 100, 300));

  DensityHistogram histogram = metrics.DensityHistogramOf();
  ASSERT_EQ(histogram.counts_size(), 20);
  ASSERT_EQ(histogram.log10_edges_size(), 21);
  EXPECT_NEAR(histogram.log10_edges(0), -std::log10(300.0), 1e-12);
  EXPECT_NEAR(histogram.log10_edges(20), 0.0, 1e-12);
  int64_t total = histogram.never_fired();
  for (int64_t c : histogram.counts()) total += c;
  EXPECT_EQ(total, n);
  // Brute force: never-fired = columns of f with no non-zero.
  int64_t never = 0;
  for (int64_t i = 0; i < n; ++i) never += f.select(1, i).nonzero().size(0) == 0 ? 1 : 0;
  EXPECT_EQ(histogram.never_fired(), never);
  EXPECT_GT(never, 0);
  EXPECT_NEAR(metrics.DeadFraction(), static_cast<double>(never) / n, kTol);
}

TEST(MetricsTest, WriteToRecordsEveryMetricTokensAndHistogram) {
  SaeResult result;
  HandMetrics().WriteTo(&result);
  // The hand values from HandSet.
  EXPECT_NEAR(result.metrics().at("mse"), 1.0 / 3.0, kTol);
  EXPECT_NEAR(result.metrics().at("nmse"), 2.0 / 19.0, kTol);
  EXPECT_NEAR(result.metrics().at("fvu"), 0.5, kTol);
  EXPECT_NEAR(result.metrics().at("explained_variance"), 0.5, kTol);
  EXPECT_NEAR(result.metrics().at("l0"), 1.0, kTol);
  EXPECT_NEAR(result.metrics().at("dead_fraction"), 0.5, kTol);
  EXPECT_EQ(result.eval_tokens(), 3);
  ASSERT_TRUE(result.has_density_histogram());
  EXPECT_EQ(result.density_histogram().counts_size(), 20);
  // Latents 0 and 3 fired; 1 and 2 never did.
  EXPECT_EQ(result.density_histogram().never_fired(), 2);
}

TEST(MmcsTest, IdentityDecoderRecoversEveryFeature) {
  torch::Tensor eye = torch::eye(4);
  EXPECT_NEAR(MeanMaxCosineSimilarity(eye, eye), 1.0, 1e-12);
}

TEST(MmcsTest, DecoderRotatedByThetaScoresCosTheta) {
  // True features e1, e2; decoder rows R(theta) e1 = [cos, sin] and
  // R(theta) e2 = [-sin, cos]. Cosines: e1 with rows: cos, -sin;
  // e2 with rows: sin, cos. For theta = 0.3 < pi/4, cos > sin, so each
  // feature's best is cos(theta) and the mean is cos(0.3) = 0.955336...
  const double theta = 0.3;
  const double c = std::cos(theta), s = std::sin(theta);
  torch::Tensor decoder = torch::tensor({c, s, -s, c}, torch::kFloat64).reshape({2, 2});
  EXPECT_NEAR(MeanMaxCosineSimilarity(torch::eye(2), decoder), c, 1e-12);
}

TEST(MmcsTest, SignFlippedFeatureIsNotRecovered) {
  // Decoder = [-e1, e2]: e1's signed cosines are -1 and 0, so its best is 0
  // (|cos| would have scored 1); e2 scores 1. Mean (0 + 1) / 2 = 0.5.
  torch::Tensor decoder = torch::tensor({-1.0, 0.0, 0.0, 1.0}).reshape({2, 2});
  EXPECT_NEAR(MeanMaxCosineSimilarity(torch::eye(2), decoder), 0.5, 1e-7);
}

TEST(MmcsTest, ExtraUnnormalizedDecoderRowsAndFeaturesAreHandled) {
  // True features (unnormalised): 3 e1 and 0.5 e2 in R^3.
  // Decoder rows (unnormalised): e3, [0.6 0.8 0], 2 e2, -e1.
  //   e1: cosines 0, 0.6, 0, -1 -> best 0.6
  //   e2: cosines 0, 0.8, 1,  0 -> best 1
  // Mean (0.6 + 1) / 2 = 0.8.
  torch::Tensor truth = torch::tensor({3.0, 0.0, 0.0, 0.0, 0.5, 0.0}).reshape({2, 3});
  torch::Tensor decoder =
      torch::tensor({0.0, 0.0, 1.0, 0.6, 0.8, 0.0, 0.0, 2.0, 0.0, -1.0, 0.0, 0.0}).reshape({4, 3});
  EXPECT_NEAR(MeanMaxCosineSimilarity(truth, decoder), 0.8, 1e-7);
}

TEST(MetricsTest, AbsorptionCountsSilentParentLatentsWithAndWithoutAChild) {
  // Features: 0 and 1 parents, 2 and 3 children of 0, 4 a child of 1.
  // Decoder rows: latent 2 is feature 0's direction (its best match),
  // latent 0 feature 1's; latent 1 matches nothing well.
  torch::Tensor features = torch::eye(5, torch::kFloat64);
  torch::Tensor decoder = Rows({{0, 0.9, 0, 0, 0.1},
                                {0.1, 0.1, 0.1, 0.1, 0.1},
                                {0.8, 0, 0.3, 0, 0}});
  torch::Tensor parent_of = torch::tensor({-1, -1, 0, 0, 1}, torch::kInt64);
  // Tokens (true codes; latent activations):
  //  0: parent 0 + child 2, latent 2 silent   -> absorbed
  //  1: parent 0 + child 3, latent 2 fires    -> not
  //  2: parent 0 alone, latent 2 silent       -> alone, missed
  //  3: parent 0 alone, latent 2 fires        -> alone, hit
  //  4: parent 1 + child 4, latent 0 silent   -> absorbed
  //  5: child 2 without parent 0 (not a pair)
  torch::Tensor codes = Rows({{1, 0, 1, 0, 0},
                              {1, 0, 0, 1, 0},
                              {1, 0, 0, 0, 0},
                              {1, 0, 0, 0, 0},
                              {0, 1, 0, 0, 1},
                              {0, 0, 1, 0, 0}});
  torch::Tensor latents = Rows({{0, 1, 0},
                                {0, 0, 2},
                                {1, 0, 0},
                                {0, 0, 1},
                                {0, 1, 0},
                                {0, 0, 0}});
  AbsorptionRates rates = MeasureAbsorption(codes, latents, features, decoder, parent_of);
  EXPECT_EQ(rates.pairs_with_child, 3);
  EXPECT_EQ(rates.pairs_alone, 2);
  EXPECT_NEAR(rates.with_child, 2.0 / 3.0, kTol);
  EXPECT_NEAR(rates.alone, 0.5, kTol);
}

}  // namespace
}  // namespace saelab
