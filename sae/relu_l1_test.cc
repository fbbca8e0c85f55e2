#include "sae/relu_l1.h"

#include <cmath>
#include <torch/utils.h>
#include <vector>

#include "gtest/gtest.h"
#include "sae/internal/gradient_check.h"
#include "sae/internal/sparse_step_check.h"

namespace saelab {
namespace {

ReluL1Config DefaultConfig() {
  ReluL1Config config;
  config.set_l1_coefficient(5.0);
  config.set_l1_warmup_fraction(0.05);
  config.set_decoder_init_norm(0.1);
  return config;
}

TEST(ReluL1Test, InitHasDecoderRowsOfNormPointOneAndTiedEncoder) {
  ReluL1Sae sae(8, 32, DefaultConfig(), 1);
  EXPECT_TRUE(torch::allclose(sae.W_dec.norm(2, {1}), torch::full({32}, 0.1f), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(sae.W_enc, sae.W_dec.t()));
  EXPECT_EQ(sae.b_enc.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(sae.b_dec.abs().sum().item<float>(), 0.0f);
}

TEST(ReluL1Test, LossMatchesAnElementwiseComputation) {
  torch::manual_seed(0);
  const int64_t batch = 3, d = 4, n = 5;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  torch::Tensor W_enc = torch::randn({d, n}, torch::kFloat64);
  torch::Tensor b_enc = torch::randn({n}, torch::kFloat64);
  torch::Tensor W_dec = torch::randn({n, d}, torch::kFloat64);
  torch::Tensor b_dec = torch::randn({d}, torch::kFloat64);
  const double lambda = 0.7;
  LossOutput out = ReluL1Loss({x, W_enc, b_enc, W_dec, b_dec}, {lambda});
  double loss = out.loss.item<double>();
  const torch::Tensor& mse = out.terms.at("mse");
  const torch::Tensor& l1 = out.terms.at("l1");
  // The formula, one scalar at a time.
  auto X = x.accessor<double, 2>();
  auto E = W_enc.accessor<double, 2>();
  auto BE = b_enc.accessor<double, 1>();
  auto D = W_dec.accessor<double, 2>();
  auto BD = b_dec.accessor<double, 1>();
  double expected_mse = 0, expected_l1 = 0;
  for (int64_t t = 0; t < batch; ++t) {
    std::vector<double> feats(n);
    for (int64_t i = 0; i < n; ++i) {
      double z = BE[i];
      for (int64_t j = 0; j < d; ++j) z += X[t][j] * E[j][i];
      feats[i] = std::max(0.0, z);
      double norm = 0;
      for (int64_t j = 0; j < d; ++j) norm += D[i][j] * D[i][j];
      expected_l1 += feats[i] * std::sqrt(norm);
    }
    for (int64_t j = 0; j < d; ++j) {
      double recon = BD[j];
      for (int64_t i = 0; i < n; ++i) recon += feats[i] * D[i][j];
      expected_mse += (X[t][j] - recon) * (X[t][j] - recon);
    }
  }
  expected_mse /= batch;
  expected_l1 /= batch;
  EXPECT_NEAR(mse.item<double>(), expected_mse, 1e-12);
  EXPECT_NEAR(l1.item<double>(), expected_l1, 1e-12);
  EXPECT_NEAR(loss, expected_mse + lambda * expected_l1, 1e-12);
}

TEST(ReluL1Test, LossGradientsMatchFiniteDifferences) {
  torch::manual_seed(1);
  const int64_t batch = 6, d = 4, n = 7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  auto loss = [&](const std::vector<torch::Tensor>& p) {
    return ReluL1Loss({x, p[0], p[1], p[2], p[3]}, {/*l1_coefficient=*/0.3}).loss;
  };
  GradientCheckResult check = CheckGradients(
      loss,
      {torch::randn({d, n}), torch::randn({n}), torch::randn({n, d}), torch::randn({d})}, 1e-6);
  EXPECT_GT(check.max_abs_gradient, 1e-2);
  EXPECT_LT(check.max_abs_error, 1e-6);
}

// The sparse step (sae/kernels/jumprelu_train_step.h with theta = 0, whose
// own test holds it to a float64 reference) as the SAE wires it: the same
// loss, terms and gradients as TrainForward + backward, in float32; on a
// dense code it declines, and the trainer takes the dense path.
TEST(ReluL1Test, SparseStepGivesTrainForwardsGradientsAndDeclinesADenseCode) {
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({64, 16});  // z ~ N(0, 0.1^2) at the init
  TrainStepInfo info;
  info.step = 50;
  info.total_steps = 100;  // past the warm-up
  ReluL1Sae sae(16, 256, DefaultConfig(), 5);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.fill_(-0.25);  // about 0.6% of the entries fire, as after training
  }
  EXPECT_GT((sae.EncodeScaled(x) != 0).sum().item<int64_t>(), 30);  // not vacuous
  ExpectSparseStepMatchesDensePath(sae, x, info, {"mse", "l1", "l1_coefficient"});

  ReluL1Sae dense_sae(16, 256, DefaultConfig(), 5);  // b_enc 0: half the entries fire
  TrainOutput declined;
  EXPECT_FALSE(dense_sae.TrainStepGradients(x, info, &declined));
}

TEST(ReluL1Test, L1CoefficientWarmsUpLinearlyOverTheFirstFivePercent) {
  ReluL1Sae sae(4, 8, DefaultConfig(), 1);
  EXPECT_DOUBLE_EQ(sae.L1CoefficientAt(0, 1000), 0.0);
  EXPECT_DOUBLE_EQ(sae.L1CoefficientAt(25, 1000), 2.5);  // halfway through 50 warm-up steps
  EXPECT_DOUBLE_EQ(sae.L1CoefficientAt(50, 1000), 5.0);
  EXPECT_DOUBLE_EQ(sae.L1CoefficientAt(999, 1000), 5.0);
}

TEST(ReluL1Test, PublicEncodeAppliesTheInputScale) {
  ReluL1Sae sae(4, 8, DefaultConfig(), 3);
  sae.set_input_scale(2.0);
  torch::Tensor x = torch::randn({5, 4});
  EXPECT_TRUE(torch::allclose(sae.Encode(x), sae.EncodeScaled(2.0 * x)));
  torch::Tensor f = sae.Encode(x);
  EXPECT_TRUE(torch::allclose(sae.Decode(f), sae.DecodeScaled(f) / 2.0));
}

}  // namespace
}  // namespace saelab
