#include "sae/jumprelu.h"

#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <torch/optim/adam.h>
#include <torch/utils.h>
#include <vector>

#include "gtest/gtest.h"
#include "sae/internal/gradient_check.h"
#include "sae/internal/sparse_step_check.h"

namespace saelab {
namespace {

JumpReluConfig Config(double lambda = 0.5, double bandwidth = 0.001,
                      double initial_threshold = 0.001) {
  JumpReluConfig config;
  config.set_sparsity_coefficient(lambda);
  config.set_sparsity_warmup_fraction(0.1);
  config.set_bandwidth(bandwidth);
  config.set_initial_threshold(initial_threshold);
  return config;
}

JumpReluLossOptions Standard(double lambda, double bandwidth) {
  JumpReluLossOptions options;
  options.variant = JumpReluConfig::STANDARD;
  options.sparsity_coefficient = lambda;
  options.bandwidth = bandwidth;
  return options;
}

JumpReluLossOptions Anthropic(double lambda, double bandwidth, double tanh_scale,
                              double pre_act_coefficient) {
  JumpReluLossOptions options;
  options.variant = JumpReluConfig::ANTHROPIC_2025;
  options.sparsity_coefficient = lambda;
  options.bandwidth = bandwidth;
  options.tanh_scale = tanh_scale;
  options.pre_act_coefficient = pre_act_coefficient;
  return options;
}

// JumpReluLoss of explicit parameters.
LossOutput Loss(const torch::Tensor& x, const torch::Tensor& W_enc, const torch::Tensor& b_enc,
                const torch::Tensor& W_dec, const torch::Tensor& b_dec,
                const torch::Tensor& log_threshold, const JumpReluLossOptions& options) {
  return JumpReluLoss({x, W_enc, b_enc, W_dec, b_dec, {{"log_threshold", log_threshold}}}, options);
}

// Random float64 SAE parameters whose pre-activations straddle the
// thresholds: theta ~ U(0.2, 1.0), so some z fall below, some above.
struct Params {
  torch::Tensor W_enc, b_enc, W_dec, b_dec, log_threshold;
};

Params RandomParams(int64_t d, int64_t n) {
  Params p;
  p.W_enc = torch::randn({d, n}, torch::kFloat64);
  p.b_enc = 0.3 * torch::randn({n}, torch::kFloat64);
  p.W_dec = torch::randn({n, d}, torch::kFloat64);
  p.b_dec = torch::randn({d}, torch::kFloat64);
  p.log_threshold = (0.2 + 0.8 * torch::rand({n}, torch::kFloat64)).log();
  return p;
}

// The loss written out one scalar at a time (independent of JumpReluLoss).
struct LoopLoss {
  double mse = 0, l0 = 0, tanh_penalty = 0, pre_act = 0;
};

LoopLoss ComputeLoopLoss(const torch::Tensor& x, const Params& p, double tanh_scale) {
  const int64_t batch = x.size(0), d = x.size(1), n = p.W_enc.size(1);
  auto X = x.accessor<double, 2>();
  auto E = p.W_enc.accessor<double, 2>();
  auto BE = p.b_enc.accessor<double, 1>();
  auto D = p.W_dec.accessor<double, 2>();
  auto BD = p.b_dec.accessor<double, 1>();
  auto T = p.log_threshold.accessor<double, 1>();
  LoopLoss out;
  for (int64_t t = 0; t < batch; ++t) {
    std::vector<double> f(n);
    for (int64_t i = 0; i < n; ++i) {
      double z = BE[i];
      for (int64_t j = 0; j < d; ++j) z += X[t][j] * E[j][i];
      double theta = std::exp(T[i]);
      f[i] = z > theta ? z : 0.0;
      double norm = 0;
      for (int64_t j = 0; j < d; ++j) norm += D[i][j] * D[i][j];
      norm = std::sqrt(norm);
      out.l0 += z > theta ? 1.0 : 0.0;
      out.tanh_penalty += std::tanh(tanh_scale * f[i] * norm);
      out.pre_act += std::max(0.0, theta - z) * norm;
    }
    for (int64_t j = 0; j < d; ++j) {
      double recon = BD[j];
      for (int64_t i = 0; i < n; ++i) recon += f[i] * D[i][j];
      out.mse += (X[t][j] - recon) * (X[t][j] - recon);
    }
  }
  out.mse /= batch;
  out.l0 /= batch;
  out.tanh_penalty /= batch;
  out.pre_act /= batch;
  return out;
}

TEST(JumpReluTest, InitHasUnitDecoderRowsTiedEncoderZeroBiasesAndTheInitialThreshold) {
  JumpReluSae sae(8, 32, Config(0.5, 0.001, 0.002), 1);
  EXPECT_EQ(sae.architecture(), "jumprelu");
  EXPECT_TRUE(torch::allclose(sae.W_dec.norm(2, {1}), torch::ones({32}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(sae.W_enc, sae.W_dec.t()));
  EXPECT_EQ(sae.b_enc.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(sae.b_dec.abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(sae.Threshold(), torch::full({32}, 0.002f), 1e-6, 0));
  std::map<std::string, torch::Tensor> named = sae.NamedTensors();
  for (const char* name : {"W_enc", "b_enc", "W_dec", "b_dec", "log_threshold", "input_scale"}) {
    EXPECT_EQ(named.count(name), 1u) << name;
  }
}

TEST(JumpReluTest, EncodeGivesExactlyZAboveTheThresholdAndZeroElsewhere) {
  torch::manual_seed(5);
  const int64_t d = 6, n = 40;
  JumpReluSae sae(d, n, Config(), 4);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.copy_(0.2 * torch::randn({n}));
    sae.log_threshold.copy_((0.05 + torch::rand({n})).log());
  }
  torch::Tensor x = torch::randn({16, d});
  torch::Tensor f = sae.EncodeScaled(x).detach();
  torch::Tensor z = torch::addmm(sae.b_enc, x, sae.W_enc).detach();
  torch::Tensor theta = sae.Threshold();
  int64_t between_zero_and_theta = 0;
  for (int64_t t = 0; t < 16; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      float zi = z[t][i].item<float>(), th = theta[i].item<float>();
      float expected = zi > th ? zi : 0.0f;
      EXPECT_EQ(f[t][i].item<float>(), expected) << "token " << t << " latent " << i;
      if (zi > 0 && zi <= th) ++between_zero_and_theta;
    }
  }
  // Positive pre-activations that JumpReLU (unlike ReLU) zeroes do occur.
  EXPECT_GT(between_zero_and_theta, 0);
  EXPECT_GT((f != 0).sum().item<int64_t>(), 0);
}

TEST(JumpReluTest, SparsityCoefficientWarmsUpLinearlyOverTheFirstTenPercent) {
  JumpReluSae sae(4, 8, Config(/*lambda=*/2.0), 1);
  EXPECT_DOUBLE_EQ(sae.SparsityCoefficientAt(0, 1000), 0.0);
  EXPECT_DOUBLE_EQ(sae.SparsityCoefficientAt(25, 1000), 0.5);  // a quarter of 100 warm-up steps
  EXPECT_DOUBLE_EQ(sae.SparsityCoefficientAt(50, 1000), 1.0);
  EXPECT_DOUBLE_EQ(sae.SparsityCoefficientAt(100, 1000), 2.0);
  EXPECT_DOUBLE_EQ(sae.SparsityCoefficientAt(999, 1000), 2.0);
  JumpReluConfig no_warmup = Config(2.0);
  no_warmup.set_sparsity_warmup_fraction(0.0);
  EXPECT_DOUBLE_EQ(JumpReluSae(4, 8, no_warmup, 1).SparsityCoefficientAt(0, 1000), 2.0);
}

TEST(JumpReluTest, StandardLossMatchesAnElementwiseComputation) {
  torch::manual_seed(0);
  const int64_t batch = 5, d = 4, n = 7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  Params p = RandomParams(d, n);
  const double lambda = 0.7;
  LossOutput out =
      Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, p.log_threshold, Standard(lambda, 0.001));
  double loss = out.loss.item<double>();
  std::map<std::string, torch::Tensor>& terms = out.terms;
  LoopLoss expected = ComputeLoopLoss(x, p, /*tanh_scale=*/4.0);
  EXPECT_GT(expected.l0, 0.0);  // some latents fire, some do not
  EXPECT_LT(expected.l0, n);
  EXPECT_NEAR(terms["mse"].item<double>(), expected.mse, 1e-12);
  EXPECT_NEAR(terms["l0"].item<double>(), expected.l0, 1e-12);
  EXPECT_NEAR(terms["sparsity"].item<double>(), expected.l0, 1e-12);
  EXPECT_EQ(terms["pre_act"].item<double>(), 0.0);
  EXPECT_NEAR(loss, expected.mse + lambda * expected.l0, 1e-12);
}

TEST(JumpReluTest, TargetL0LossIsTheScaledSquaredRelativeMissOfL0) {
  torch::manual_seed(0);
  const int64_t batch = 5, d = 4, n = 7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  Params p = RandomParams(d, n);
  // A wide band, so that some z fall in it and the pseudo-gradients are not 0.
  JumpReluLossOptions options = Standard(0.7, 0.5);
  options.target_l0 = 1.0;
  options.target_scale = 4.0;
  LossOutput out = Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, p.log_threshold, options);
  LoopLoss expected = ComputeLoopLoss(x, p, 4.0);
  const double miss = expected.l0 / 1.0 - 1.0;
  EXPECT_GT(std::abs(miss), 0.1);  // off target, so the term is not ~0
  EXPECT_NEAR(out.terms["sparsity"].item<double>(), 4.0 * miss * miss, 1e-12);
  EXPECT_NEAR(out.terms["l0"].item<double>(), expected.l0, 1e-12);
  EXPECT_NEAR(out.loss.item<double>(), expected.mse + 0.7 * 4.0 * miss * miss, 1e-12);
  // Above the target the pseudo-gradient raises thresholds, below it lowers
  // them: d/dlog_theta of (L0/t - 1)^2 = 2 (L0/t - 1) / t * dL0/dlog_theta,
  // and dL0/dlog_theta <= 0.
  torch::Tensor log_threshold = p.log_threshold.clone().requires_grad_(true);
  Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, log_threshold, options).terms["sparsity"].backward();
  torch::Tensor plain_grad_log_threshold = [&] {
    torch::Tensor t = p.log_threshold.clone().requires_grad_(true);
    Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, t, Standard(1.0, 0.5)).terms["sparsity"].backward();
    return t.grad();
  }();
  // The chain rule: the term's gradient = scale * 2 (L0/t - 1) / t * L0's.
  EXPECT_GT(plain_grad_log_threshold.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::allclose(log_threshold.grad(),
                              4.0 * 2.0 * miss / 1.0 * plain_grad_log_threshold, 1e-9, 1e-12));
}

TEST(JumpReluTest, TargetL0PreActLossCoversTheLatentsSilentOnTheBatch) {
  torch::manual_seed(4);
  const int64_t batch = 5, d = 4, n = 7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  Params p = RandomParams(d, n);
  p.b_enc[0] = -100.0;  // never fires: z far below its threshold
  p.b_enc[3] = -100.0;
  JumpReluLossOptions options = Standard(0.7, 0.5);
  options.target_l0 = 1.0;
  options.pre_act_coefficient = 0.3;
  LossOutput out = Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, p.log_threshold, options);
  // By hand: the latents with z <= theta on every row, then the sum over
  // them of ReLU(theta - z) ||W_dec row||, mean over the batch.
  torch::Tensor z = torch::addmm(p.b_enc, x, p.W_enc);
  torch::Tensor theta = p.log_threshold.exp();
  double expected = 0;
  int silent_latents = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool fires = false;
    for (int64_t b = 0; b < batch; ++b) fires |= z[b][i].item<double>() > theta[i].item<double>();
    if (fires) continue;
    ++silent_latents;
    for (int64_t b = 0; b < batch; ++b) {
      expected += (theta[i].item<double>() - z[b][i].item<double>()) * p.W_dec[i].norm().item<double>();
    }
  }
  expected /= batch;
  EXPECT_GE(silent_latents, 2);
  EXPECT_LT(silent_latents, n);
  EXPECT_NEAR(out.terms["pre_act"].item<double>(), expected, 1e-9);
  EXPECT_NEAR(out.loss.item<double>(),
              out.terms["mse"].item<double>() + 0.7 * out.terms["sparsity"].item<double>() +
                  0.3 * expected,
              1e-9);
}

TEST(JumpReluTest, TargetL0InitStartsEveryLatentAtTheTargetRate) {
  JumpReluConfig config = Config();
  config.mutable_target()->set_l0(3.0);
  JumpReluSae sae(/*d_in=*/8, /*n_latents=*/32, config, /*seed=*/2);
  torch::manual_seed(3);
  torch::Tensor sample = torch::randn({4000, 8}) + 0.5;
  sae.InitFromSample(sample);
  torch::NoGradGuard no_grad;
  // On the sample itself each latent fires on ~3/32 of the rows.
  torch::Tensor fires = (sae.EncodeScaled(sample) != 0).to(torch::kFloat64);
  EXPECT_NEAR(fires.sum(1).mean().item<double>(), 3.0, 0.01);
  EXPECT_LT((fires.mean(0) - 3.0 / 32).abs().max().item<double>(), 1e-3);
  // And on fresh rows of the same distribution, close to it.
  torch::Tensor fresh = torch::randn({4000, 8}) + 0.5;
  EXPECT_NEAR((sae.EncodeScaled(fresh) != 0).sum(1).to(torch::kFloat64).mean().item<double>(), 3.0,
              0.3);
  // Without target_l0 the init leaves the thresholds alone.
  JumpReluSae plain(8, 32, Config(), 2);
  plain.InitFromSample(sample);
  EXPECT_TRUE(torch::allclose(plain.Threshold(), torch::full({32}, 0.001)));
}

TEST(JumpReluTest, StandardLossGradientsInTheWeightsMatchFiniteDifferences) {
  torch::manual_seed(1);
  const int64_t batch = 6, d = 4, n = 7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  Params p = RandomParams(d, n);
  // Away from the thresholds the loss is smooth in W_enc, b_enc, W_dec,
  // b_dec and the pseudo-derivatives there are the true ones (L0 is locally
  // constant, and H gets no z-derivative).
  auto loss = [&](const std::vector<torch::Tensor>& q) {
    return Loss(x, q[0], q[1], q[2], q[3], p.log_threshold, Standard(0.3, 0.001)).loss;
  };
  GradientCheckResult check = CheckGradients(loss, {p.W_enc, p.b_enc, p.W_dec, p.b_dec}, 1e-6);
  EXPECT_GT(check.max_abs_gradient, 1e-2);
  EXPECT_LT(check.max_abs_error, 1e-6);
}

TEST(JumpReluTest, ThresholdGradientIsTheRectanglePseudoDerivativeNotPlainAutograd) {
  // W_enc = I, b_enc = 0, so z = x and we place z by hand relative to theta.
  const int64_t batch = 4, d = 4, n = 4;
  const double eps = 0.1, lambda = 0.3;
  const std::vector<double> theta = {0.5, 0.8, 1.0, 0.3};
  // In the window |z - theta| <= eps/2: (0,0) +.02, (0,2) -.03, (1,0) -.03,
  // (1,1) +.03, (2,1) -.02, (3,2) +.04. Latent 3 is never in its window.
  torch::Tensor x = torch::tensor({{0.52, 0.10, 0.97, 0.90},
                                   {0.47, 0.83, 1.20, -0.20},
                                   {0.90, 0.78, 0.20, 0.00},
                                   {0.10, 1.50, 1.04, 0.10}},
                                  torch::kFloat64);
  torch::manual_seed(2);
  torch::Tensor W_enc = torch::eye(n, torch::kFloat64);
  torch::Tensor b_enc = torch::zeros({n}, torch::kFloat64);
  torch::Tensor W_dec = torch::randn({n, d}, torch::kFloat64);
  torch::Tensor b_dec = torch::randn({d}, torch::kFloat64);
  torch::Tensor log_threshold =
      torch::tensor(theta, torch::kFloat64).log().requires_grad_(true);
  Loss(x, W_enc, b_enc, W_dec, b_dec, log_threshold, Standard(lambda, eps)).loss.backward();
  torch::Tensor grad = log_threshold.grad();

  // By hand: d loss/d theta_i = E_b [ dMSE_b/df_bi * (-(theta_i/eps) K_bi)
  //                                   + lambda * (-(1/eps) K_bi) ],
  // dMSE_b/df_bi = -2 sum_j (x_bj - x_hat_bj) W_dec[i][j], and
  // d/d log theta = theta * d/d theta.
  auto X = x.accessor<double, 2>();
  auto D = W_dec.accessor<double, 2>();
  auto BD = b_dec.accessor<double, 1>();
  std::vector<double> expected(n, 0.0);
  for (int64_t t = 0; t < batch; ++t) {
    std::vector<double> fb(n), residual(d);
    for (int64_t i = 0; i < n; ++i) fb[i] = X[t][i] > theta[i] ? X[t][i] : 0.0;
    for (int64_t j = 0; j < d; ++j) {
      double recon = BD[j];
      for (int64_t i = 0; i < n; ++i) recon += fb[i] * D[i][j];
      residual[j] = X[t][j] - recon;
    }
    for (int64_t i = 0; i < n; ++i) {
      double kernel = std::fabs((X[t][i] - theta[i]) / eps) <= 0.5 ? 1.0 : 0.0;
      double dmse_df = 0;
      for (int64_t j = 0; j < d; ++j) dmse_df += -2.0 * residual[j] * D[i][j];
      double dloss_dtheta = dmse_df * (-(theta[i] / eps) * kernel) + lambda * (-(1.0 / eps) * kernel);
      expected[i] += theta[i] * dloss_dtheta / batch;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(grad[i].item<double>(), expected[i], 1e-12) << "latent " << i;
  }
  // Latents with z in their window get a gradient (plain autograd through
  // z * 1[z > theta] and 1[z > theta] would give exactly 0 here)...
  for (int64_t i = 0; i < 3; ++i) EXPECT_GT(std::fabs(expected[i]), 1e-2) << "latent " << i;
  // ...and a latent whose z never enters its window gets none.
  EXPECT_EQ(grad[3].item<double>(), 0.0);

  // The plain-autograd version of the same loss, for contrast.
  torch::Tensor log_threshold_plain =
      torch::tensor(theta, torch::kFloat64).log().requires_grad_(true);
  torch::Tensor th = log_threshold_plain.exp();
  torch::Tensor z = torch::addmm(b_enc, x, W_enc);
  torch::Tensor f_plain = z * (z > th).to(torch::kFloat64);
  torch::Tensor plain = (x - torch::addmm(b_dec, f_plain, W_dec)).pow(2).sum(1).mean() +
                        lambda * (z > th).to(torch::kFloat64).sum(1).mean();
  EXPECT_FALSE(plain.requires_grad());  // theta is unreachable without the pseudo-derivative
}

TEST(JumpReluTest, L0TermAlonePushesEveryThresholdInItsWindowUp) {
  // With W_dec = 0 the reconstruction ignores f, so only lambda * L0 acts:
  // d/d log theta_i = -(lambda / eps) theta_i * (fraction of z in window) < 0.
  const double eps = 0.1, lambda = 2.0;
  torch::Tensor x = torch::tensor({{0.52, 0.31}, {0.47, 0.90}, {0.90, 0.27}}, torch::kFloat64);
  torch::Tensor log_threshold = torch::tensor({0.5, 0.3}, torch::kFloat64).log().requires_grad_(true);
  Loss(x, torch::eye(2, torch::kFloat64), torch::zeros({2}, torch::kFloat64),
       torch::zeros({2, 2}, torch::kFloat64), torch::zeros({2}, torch::kFloat64), log_threshold,
       Standard(lambda, eps))
      .loss.backward();
  // Latent 0: rows 0, 1 in window (2 of 3); latent 1: rows 0, 2 (2 of 3).
  EXPECT_NEAR(log_threshold.grad()[0].item<double>(), -(lambda / eps) * 0.5 * 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(log_threshold.grad()[1].item<double>(), -(lambda / eps) * 0.3 * 2.0 / 3.0, 1e-12);
}

TEST(JumpReluTest, AnthropicLossMatchesAnElementwiseComputation) {
  torch::manual_seed(3);
  const int64_t batch = 5, d = 4, n = 7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  Params p = RandomParams(d, n);
  const double lambda = 0.7, c = 4.0, pre = 0.05;
  LossOutput out =
      Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, p.log_threshold, Anthropic(lambda, 0.001, c, pre));
  double loss = out.loss.item<double>();
  std::map<std::string, torch::Tensor>& terms = out.terms;
  LoopLoss expected = ComputeLoopLoss(x, p, c);
  EXPECT_GT(expected.tanh_penalty, 0.0);
  EXPECT_GT(expected.pre_act, 0.0);
  EXPECT_NEAR(terms["mse"].item<double>(), expected.mse, 1e-12);
  EXPECT_NEAR(terms["l0"].item<double>(), expected.l0, 1e-12);
  EXPECT_NEAR(terms["sparsity"].item<double>(), expected.tanh_penalty, 1e-12);
  EXPECT_NEAR(terms["pre_act"].item<double>(), expected.pre_act, 1e-12);
  EXPECT_NEAR(loss, expected.mse + lambda * expected.tanh_penalty + pre * expected.pre_act,
              1e-12);
}

TEST(JumpReluTest, AnthropicLossGradientsInTheWeightsMatchFiniteDifferences) {
  torch::manual_seed(4);
  const int64_t batch = 6, d = 4, n = 7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  Params p = RandomParams(d, n);
  // The tanh penalty reaches W_enc, b_enc and W_dec (unlike L0), and the
  // pre-activation loss reaches W_enc, b_enc and W_dec too.
  auto loss = [&](const std::vector<torch::Tensor>& q) {
    return Loss(x, q[0], q[1], q[2], q[3], p.log_threshold, Anthropic(0.5, 0.001, 4.0, 0.1)).loss;
  };
  GradientCheckResult check = CheckGradients(loss, {p.W_enc, p.b_enc, p.W_dec, p.b_dec}, 1e-6);
  EXPECT_GT(check.max_abs_gradient, 1e-2);
  EXPECT_LT(check.max_abs_error, 1e-6);
}

TEST(JumpReluTest, AnthropicPreActLossPullsADeadLatentsThresholdDownAndPreActivationUp) {
  torch::manual_seed(6);
  const int64_t batch = 5, d = 4, n = 3;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  Params p = RandomParams(d, n);
  // Latent 2: theta = 50, far above every z (|z| < 10 here) and outside the
  // kernel window, so neither JumpReLU nor tanh gives it any gradient.
  p.log_threshold[2] = std::log(50.0);
  for (auto* t : {&p.W_enc, &p.b_enc, &p.W_dec, &p.b_dec, &p.log_threshold}) {
    t->requires_grad_(true);
  }
  const double pre = 0.01;
  Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, p.log_threshold, Anthropic(0.5, 0.001, 4.0, pre))
      .loss.backward();
  torch::Tensor z = torch::addmm(p.b_enc, x, p.W_enc).detach();
  ASSERT_TRUE((z.select(1, 2) < 10.0).all().item<bool>());
  double norm = p.W_dec[2].norm().item<double>();
  // d/d log theta_2 = theta_2 * d/d theta_2 = 50 * pre * ||W_dec_2|| (every
  // row has ReLU(theta - z) > 0, slope 1 in theta).
  EXPECT_NEAR(p.log_threshold.grad()[2].item<double>(), 50.0 * pre * norm, 1e-10);
  EXPECT_GT(p.log_threshold.grad()[2].item<double>(), 0.0);  // descent lowers theta
  // d/d b_enc_2 = -pre * ||W_dec_2||: descent raises z.
  EXPECT_NEAR(p.b_enc.grad()[2].item<double>(), -pre * norm, 1e-12);
  // Under STANDARD the same latent gets no threshold gradient at all.
  p.log_threshold.mutable_grad().zero_();
  Loss(x, p.W_enc, p.b_enc, p.W_dec, p.b_dec, p.log_threshold, Standard(0.5, 0.001))
      .loss.backward();
  EXPECT_EQ(p.log_threshold.grad()[2].item<double>(), 0.0);
}

TEST(JumpReluTest, TrainForwardReportsTheLossTermsAndTheWarmedUpCoefficient) {
  torch::manual_seed(7);
  JumpReluSae sae(6, 12, Config(/*lambda=*/0.4, 0.001, 0.05), 3);
  torch::Tensor x = torch::randn({8, 6});
  TrainStepInfo info;
  info.step = 5;
  info.total_steps = 100;  // warm-up: 10 steps, so lambda_t = 0.2
  TrainOutput out = sae.TrainForward(x, info);
  EXPECT_DOUBLE_EQ(out.terms.at("sparsity_coefficient"), 0.2);
  EXPECT_NEAR(out.loss.item<double>(), out.terms.at("mse") + 0.2 * out.terms.at("sparsity"), 1e-4);
  EXPECT_DOUBLE_EQ(out.terms.at("l0"), out.terms.at("sparsity"));
  EXPECT_EQ(out.terms.at("pre_act"), 0.0);
  EXPECT_TRUE(torch::equal(out.f, sae.EncodeScaled(x)));
  EXPECT_NEAR(out.terms.at("l0"), (out.f != 0).sum(1).to(torch::kFloat64).mean().item<double>(),
              1e-9);
}

// The sparse step (sae/kernels/jumprelu_train_step.h, whose own test holds
// it to a float64 reference) as the SAE wires it: the same loss, terms and
// gradients as TrainForward + backward, in float32; on a dense code it
// declines, and the trainer takes the dense path.
TEST(JumpReluTest, SparseStepGivesTrainForwardsGradientsAndDeclinesADenseCode) {
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({64, 16});  // z ~ N(0, 1) at the tied init
  TrainStepInfo info;
  info.step = 50;
  info.total_steps = 100;  // past the warm-up
  // theta 2.5, band 0.2: about 1% of entries fire or sit in the band.
  JumpReluSae sae(16, 256, Config(/*lambda=*/0.4, /*bandwidth=*/0.2, /*initial_threshold=*/2.5), 5);
  EXPECT_GT((sae.EncodeScaled(x) != 0).sum().item<int64_t>(), 30);  // not vacuous
  ExpectSparseStepMatchesDensePath(sae, x, info,
                                   {"mse", "l0", "sparsity", "pre_act", "sparsity_coefficient"});

  JumpReluSae dense_sae(16, 256, Config(0.4, 0.2, /*initial_threshold=*/0.001), 5);  // half fire
  TrainOutput declined;
  EXPECT_FALSE(dense_sae.TrainStepGradients(x, info, &declined));
}

// Sparse codes over random unit features: x = sum_k c_k g_k, each of
// n_features active with probability p at magnitude U(1, 2).
torch::Tensor SyntheticBatch(const torch::Tensor& features, int64_t batch, double p) {
  int64_t m = features.size(0);
  torch::Tensor active = (torch::rand({batch, m}) < p).to(torch::kFloat32);
  torch::Tensor codes = active * (1.0 + torch::rand({batch, m}));
  return torch::mm(codes, features);
}

struct TrainResult {
  double eval_loss_before = 0, eval_loss_after = 0, l0_after = 0, mse_after = 0;
};

TrainResult TrainOnSyntheticData(JumpReluConfig config, int64_t steps) {
  const int64_t d = 16, m = 32, n = 48, batch = 256;
  torch::manual_seed(11);
  torch::Tensor features = torch::randn({m, d});
  features = features / features.norm(2, {1}, /*keepdim=*/true);
  torch::Tensor eval_x = SyntheticBatch(features, 1024, 0.1);
  JumpReluSae sae(d, n, config, 21);
  auto eval = [&](double* mse, double* l0) {
    torch::NoGradGuard no_grad;
    TrainStepInfo last;
    last.step = steps;
    last.total_steps = steps;
    TrainOutput out = sae.TrainForward(eval_x, last);
    *mse = out.terms.at("mse");
    *l0 = out.terms.at("l0");
    return out.loss.item<double>();
  };
  TrainResult result;
  double mse, l0;
  result.eval_loss_before = eval(&mse, &l0);
  torch::optim::Adam adam(sae.parameters(), torch::optim::AdamOptions(1e-2));
  for (int64_t step = 0; step < steps; ++step) {
    TrainStepInfo info;
    info.step = step;
    info.total_steps = steps;
    adam.zero_grad();
    sae.TrainForward(SyntheticBatch(features, batch, 0.1), info).loss.backward();
    adam.step();
  }
  result.eval_loss_after = eval(&result.mse_after, &result.l0_after);
  return result;
}

TEST(JumpReluTest, TrainingReducesTheLossAndALargerLambdaGivesASmallerL0) {
  // Bandwidth and initial threshold at the scale of these z (~1): with the
  // paper's 0.001 the thresholds would barely move in a few hundred steps.
  const int64_t steps = 400;
  TrainResult small = TrainOnSyntheticData(Config(/*lambda=*/0.01, 0.2, 0.1), steps);
  TrainResult large = TrainOnSyntheticData(Config(/*lambda=*/0.3, 0.2, 0.1), steps);
  std::cout << "lambda 0.01: loss " << small.eval_loss_before << " -> " << small.eval_loss_after
            << ", mse " << small.mse_after << ", l0 " << small.l0_after << "\n"
            << "lambda 0.3:  loss " << large.eval_loss_before << " -> " << large.eval_loss_after
            << ", mse " << large.mse_after << ", l0 " << large.l0_after << "\n";
  EXPECT_LT(small.eval_loss_after, 0.5 * small.eval_loss_before);
  EXPECT_LT(large.eval_loss_after, 0.5 * large.eval_loss_before);
  EXPECT_LT(large.l0_after, 0.8 * small.l0_after);
  EXPECT_GT(large.mse_after, small.mse_after);  // the trade-off, not a collapse
}

}  // namespace
}  // namespace saelab
