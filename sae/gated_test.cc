#include "sae/gated.h"

#include <cmath>
#include <torch/autograd.h>
#include <torch/utils.h>
#include <vector>

#include "gtest/gtest.h"
#include "sae/internal/gradient_check.h"
#include "sae/internal/unit_norm_check.h"

namespace saelab {
namespace {

GatedConfig Config(double l1_coefficient = 0.5, double warmup_fraction = 0.1) {
  GatedConfig config;
  config.set_l1_coefficient(l1_coefficient);
  config.set_l1_warmup_fraction(warmup_fraction);
  return config;
}

// A float64 parameter set {W_gate, b_gate, r_mag, b_mag, W_dec, b_dec}
// with unit decoder rows.
std::vector<torch::Tensor> RandomParams(int64_t d, int64_t n) {
  torch::Tensor W_dec = torch::randn({n, d}, torch::kFloat64);
  W_dec = W_dec / W_dec.norm(2, {1}, true);
  return {torch::randn({d, n}, torch::kFloat64), torch::randn({n}, torch::kFloat64),
          0.5 * torch::randn({n}, torch::kFloat64), torch::randn({n}, torch::kFloat64),
          W_dec, 0.3 * torch::randn({d}, torch::kFloat64)};
}

// GatedLoss of the parameters {W_gate, b_gate, r_mag, b_mag, W_dec, b_dec}.
LossOutput Loss(const torch::Tensor& x, const std::vector<torch::Tensor>& p, double lambda) {
  return GatedLoss({x, p[0], p[1], p[4], p[5], {{"r_mag", p[2]}, {"b_mag", p[3]}}}, {lambda});
}

TEST(GatedTest, LossMatchesAHandLoopInDouble) {
  torch::manual_seed(1);
  const int64_t batch = 4, d = 3, n = 5;
  const double lambda = 0.7;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  std::vector<torch::Tensor> p = RandomParams(d, n);
  LossOutput out = Loss(x, p, lambda);
  double loss = out.loss.item<double>();
  const torch::Tensor& mse = out.terms.at("mse");
  const torch::Tensor& l1 = out.terms.at("l1");
  const torch::Tensor& aux = out.terms.at("aux");

  auto X = x.accessor<double, 2>();
  auto Wg = p[0].accessor<double, 2>();
  auto bg = p[1].accessor<double, 1>();
  auto rm = p[2].accessor<double, 1>();
  auto bm = p[3].accessor<double, 1>();
  auto Wd = p[4].accessor<double, 2>();
  auto bd = p[5].accessor<double, 1>();
  double sum_mse = 0, sum_l1 = 0, sum_aux = 0;
  for (int64_t t = 0; t < batch; ++t) {
    std::vector<double> f(n), gate(n);
    for (int64_t i = 0; i < n; ++i) {
      double pi_gate = bg[i], pi_mag = bm[i];
      for (int64_t j = 0; j < d; ++j) {
        pi_gate += (X[t][j] - bd[j]) * Wg[j][i];
        pi_mag += (X[t][j] - bd[j]) * Wg[j][i] * std::exp(rm[i]);
      }
      f[i] = pi_gate > 0 ? std::max(0.0, pi_mag) : 0.0;
      gate[i] = std::max(0.0, pi_gate);
      sum_l1 += gate[i];
    }
    for (int64_t j = 0; j < d; ++j) {
      double x_hat = bd[j], via_gate = bd[j];
      for (int64_t i = 0; i < n; ++i) {
        x_hat += f[i] * Wd[i][j];
        via_gate += gate[i] * Wd[i][j];
      }
      sum_mse += (X[t][j] - x_hat) * (X[t][j] - x_hat);
      sum_aux += (X[t][j] - via_gate) * (X[t][j] - via_gate);
    }
  }
  EXPECT_NEAR(mse.item<double>(), sum_mse / batch, 1e-12);
  EXPECT_NEAR(l1.item<double>(), sum_l1 / batch, 1e-12);
  EXPECT_NEAR(aux.item<double>(), sum_aux / batch, 1e-12);
  EXPECT_NEAR(loss, (sum_mse + lambda * sum_l1 + sum_aux) / batch, 1e-12);
  EXPECT_GT(sum_l1, 0.0);
}

// Smallest |pi_gate| and |pi_mag| over the batch: finite differences are
// only valid away from the gate's jump and the ReLU's kink.
double SmallestPreActivationMagnitude(const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
  torch::Tensor centered = x - p[5];
  torch::Tensor pi_gate = torch::mm(centered, p[0]) + p[1];
  torch::Tensor pi_mag = torch::mm(centered, p[0] * p[2].exp()) + p[3];
  return std::min(pi_gate.abs().min().item<double>(), pi_mag.abs().min().item<double>());
}

TEST(GatedTest, EncoderGradientsMatchFiniteDifferences) {
  torch::manual_seed(2);
  const int64_t batch = 5, d = 4, n = 6;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  std::vector<torch::Tensor> p = RandomParams(d, n);
  ASSERT_GT(SmallestPreActivationMagnitude(x, p), 1e-3);
  // The frozen decoder only matters for decoder parameters, so for the
  // encoder's the full loss is an ordinary function to differentiate.
  auto loss = [&](const std::vector<torch::Tensor>& enc) {
    return Loss(x, {enc[0], enc[1], enc[2], enc[3], p[4], p[5]}, /*lambda=*/0.8).loss;
  };
  GradientCheckResult check = CheckGradients(loss, {p[0], p[1], p[2], p[3]}, 1e-6);
  EXPECT_GT(check.max_abs_gradient, 1e-2);
  EXPECT_LT(check.max_abs_error, 1e-7);
}

TEST(GatedTest, AllGradientsMatchFiniteDifferencesOfAFrozenDecoderReference) {
  torch::manual_seed(3);
  const int64_t batch = 5, d = 4, n = 6;
  const double lambda = 0.6;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  std::vector<torch::Tensor> p = RandomParams(d, n);
  ASSERT_GT(SmallestPreActivationMagnitude(x, p), 1e-3);
  // The paper's loss with the auxiliary decoder as constants fixed at the
  // unperturbed point; everything else (including b_dec in x - b_dec) live.
  const torch::Tensor W_dec0 = p[4].clone(), b_dec0 = p[5].clone();
  auto reference = [&](const std::vector<torch::Tensor>& q) {
    torch::Tensor centered = x - q[5];
    torch::Tensor pi_gate = torch::mm(centered, q[0]) + q[1];
    torch::Tensor pi_mag = torch::mm(centered, q[0] * q[2].exp()) + q[3];
    torch::Tensor f = torch::where(pi_gate > 0, torch::relu(pi_mag), torch::zeros_like(pi_mag));
    torch::Tensor x_hat = torch::mm(f, q[4]) + q[5];
    torch::Tensor via_gate = torch::mm(torch::relu(pi_gate), W_dec0) + b_dec0;
    return ((x - x_hat).pow(2).sum() + lambda * torch::relu(pi_gate).sum() +
            (x - via_gate).pow(2).sum()) / batch;
  };
  EXPECT_NEAR(reference(p).item<double>(), Loss(x, p, lambda).loss.item<double>(), 1e-12);
  auto under_test = [&](const std::vector<torch::Tensor>& q) { return Loss(x, q, lambda).loss; };
  GradientCheckResult check =
      CheckGradientsAgainstReference(under_test, reference, p, 1e-6);
  EXPECT_GT(check.max_abs_gradient, 1e-2);
  EXPECT_LT(check.max_abs_error, 1e-7);
}

TEST(GatedTest, AuxiliaryTermTrainsTheGateButNotTheDecoder) {
  torch::manual_seed(4);
  const int64_t batch = 6, d = 4, n = 8;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  std::vector<torch::Tensor> leaves;
  for (auto& t : RandomParams(d, n)) leaves.push_back(t.requires_grad_(true));
  LossOutput out = Loss(x, leaves, 0.5);
  const torch::Tensor& loss = out.loss;
  const torch::Tensor& mse = out.terms.at("mse");
  const torch::Tensor& aux = out.terms.at("aux");
  ASSERT_GT(aux.item<double>(), 0.0);
  std::vector<torch::Tensor> aux_grads = torch::autograd::grad({aux}, leaves, {}, true, false, true);
  // No gradient reaches W_dec from the auxiliary term...
  ASSERT_TRUE(!aux_grads[4].defined() || aux_grads[4].abs().max().item<double>() == 0.0);
  // ...while it does reach the gate.
  ASSERT_TRUE(aux_grads[0].defined());
  EXPECT_GT(aux_grads[0].abs().max().item<double>(), 1e-3);
  EXPECT_GT(aux_grads[1].abs().max().item<double>(), 1e-3);
  // b_dec is frozen where it is the decoder's bias; the gradient left is
  // exactly the encoder side, d/dc E||x - (ReLU((x - c) W_gate + b_gate)
  // W_dec0 + b_dec0)||^2 at c = b_dec, with the decoder as constants.
  torch::Tensor c = leaves[5].detach().clone().requires_grad_(true);
  torch::Tensor W_dec0 = leaves[4].detach(), b_dec0 = leaves[5].detach();
  torch::Tensor gate = torch::relu(torch::mm(x - c, leaves[0].detach()) + leaves[1].detach());
  torch::Tensor encoder_side = (x - torch::mm(gate, W_dec0) - b_dec0).pow(2).sum(1).mean();
  torch::Tensor expected_b_dec = torch::autograd::grad({encoder_side}, {c})[0];
  EXPECT_TRUE(torch::allclose(aux_grads[5], expected_b_dec, 0, 1e-12))
      << aux_grads[5] << expected_b_dec;
  // A pass-through auxiliary term would add the decoder-side gradient,
  // -2 E[x - via_gate], which is far from zero here.
  torch::Tensor decoder_side = -2 * (x - torch::mm(gate, W_dec0) - b_dec0).mean(0);
  EXPECT_GT(decoder_side.abs().max().item<double>(), 1e-2);
  // In the full loss, W_dec's gradient is the reconstruction term's alone.
  torch::Tensor full = torch::autograd::grad({loss}, {leaves[4]}, {}, true)[0];
  torch::Tensor recon = torch::autograd::grad({mse}, {leaves[4]}, {}, true)[0];
  EXPECT_TRUE(torch::allclose(full, recon, 0, 1e-14));
  EXPECT_GT(full.abs().max().item<double>(), 1e-3);
}

TEST(GatedTest, GateZeroesLatentsWithNonPositiveGateEvenWhenMagnitudeIsPositive) {
  const int64_t d = 3, n = 4;
  GatedSae sae(d, n, Config(), 5);
  {
    torch::NoGradGuard no_grad;
    sae.b_dec.zero_();
    sae.r_mag.zero_();
    // Latent 0: gate far below 0, magnitude far above 0.
    sae.b_enc[0] = -100;
    sae.b_mag[0] = 100;
    // Latent 1: zero encoder column and b_gate = 0, so pi_gate = 0 exactly;
    // b_mag = 1 gives f_mag = 1.
    sae.W_enc.select(1, 1).zero_();
    sae.b_enc[1] = 0;
    sae.b_mag[1] = 1;
    // Latent 2: both paths open.
    sae.b_enc[2] = 100;
    sae.b_mag[2] = 100;
    // Latent 3: gate open, magnitude negative: ReLU gives 0.
    sae.b_enc[3] = 100;
    sae.b_mag[3] = -100;
  }
  torch::Tensor x = torch::randn({5, d});
  torch::Tensor f = sae.EncodeScaled(x).detach();
  torch::Tensor pi_mag = (torch::mm(x, sae.W_enc) + sae.b_mag).detach();
  EXPECT_TRUE((pi_mag.select(1, 0) > 0).all().item<bool>());
  EXPECT_TRUE((f.select(1, 0) == 0).all().item<bool>());
  EXPECT_TRUE((f.select(1, 1) == 0).all().item<bool>());
  EXPECT_TRUE(torch::allclose(f.select(1, 2), pi_mag.select(1, 2), 1e-6, 1e-5));
  EXPECT_TRUE((f.select(1, 3) == 0).all().item<bool>());
  // Training sees the same activations.
  TrainOutput out = sae.TrainForward(x, TrainStepInfo());
  EXPECT_TRUE(torch::equal(out.f.detach(), f));
}

TEST(GatedTest, DecoderRowsStayUnitNormUnderAdam) {
  const int64_t d = 8, n = 32;
  GatedSae sae(d, n, Config(), 6);
  EXPECT_TRUE(DecoderStaysUnitNormUnderAdam(sae, 30, torch::Tensor()));
}

TEST(GatedTest, InitIsTiedWithUnitRowsAndZeroGateParameters) {
  GatedSae sae(5, 12, Config(), 7);
  EXPECT_TRUE(torch::equal(sae.W_enc, sae.W_dec.t()));
  EXPECT_TRUE(torch::allclose(sae.W_dec.norm(2, {1}), torch::ones({12}), 1e-5, 1e-6));
  for (const char* name : {"b_enc", "r_mag", "b_mag", "b_dec"}) {
    EXPECT_EQ(sae.NamedTensors().at(name).abs().sum().item<float>(), 0.0f) << name;
  }
  EXPECT_EQ(sae.NamedTensors().size(), 7u);  // 6 parameters + input_scale
}

TEST(GatedTest, L1CoefficientWarmsUpLinearly) {
  GatedSae sae(2, 4, Config(/*l1_coefficient=*/2.0, /*warmup_fraction=*/0.1), 8);
  EXPECT_EQ(sae.L1CoefficientAt(0, 100), 0.0);
  EXPECT_DOUBLE_EQ(sae.L1CoefficientAt(5, 100), 1.0);
  EXPECT_DOUBLE_EQ(sae.L1CoefficientAt(10, 100), 2.0);
  EXPECT_DOUBLE_EQ(sae.L1CoefficientAt(99, 100), 2.0);
  TrainStepInfo info;
  info.step = 5;
  info.total_steps = 100;
  EXPECT_DOUBLE_EQ(sae.TrainForward(torch::randn({3, 2}), info).terms.at("l1_coefficient"), 1.0);
}

}  // namespace
}  // namespace saelab
