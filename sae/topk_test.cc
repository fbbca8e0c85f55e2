#include "sae/topk.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <torch/autograd.h>
#include <torch/utils.h>

#include "gtest/gtest.h"
#include "sae/internal/gradient_check.h"
#include "sae/internal/unit_norm_check.h"

namespace saelab {
namespace {

TopKConfig Config(int64_t k, int64_t k_aux = 4) {
  TopKConfig config;
  config.set_k(k);
  config.set_k_aux(k_aux);
  config.set_auxk_coefficient(1.0 / 32);
  config.set_geometric_median_iterations(50);
  return config;
}

// TopKLoss with the options spelled out.
LossOutput Loss(const torch::Tensor& x, const torch::Tensor& W_enc, const torch::Tensor& b_enc,
                const torch::Tensor& W_dec, const torch::Tensor& b_dec, int64_t k, int64_t k_aux,
                double alpha, const torch::Tensor& dead, bool sparse = true,
                int64_t multi_factor = 0) {
  TopKLossOptions options;
  options.k = k;
  options.k_aux = k_aux;
  options.auxk_coefficient = alpha;
  options.sparse_decode = sparse;
  options.multi_topk_factor = multi_factor;
  return TopKLoss({x, W_enc, b_enc, W_dec, b_dec, /*extra=*/{}, dead}, options);
}

// The AuxK term of a TopKLoss output (0 when it has none).
torch::Tensor AuxK(const LossOutput& out) {
  return out.terms.count("auxk") ? out.terms.at("auxk") : torch::zeros({}, out.loss.options());
}

TEST(TopKTest, EncodeKeepsExactlyTheKLargestPreActivations) {
  const int64_t d = 6, n = 20, k = 4;
  TopKSae sae(d, n, Config(k), 7);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.copy_(torch::randn({n}));
    sae.b_dec.copy_(torch::randn({d}));
  }
  torch::Tensor x = torch::randn({9, d});
  torch::Tensor f = sae.EncodeScaled(x).detach();
  // Reference: sort each row's pre-activations by hand.
  torch::Tensor z = (torch::mm(x - sae.b_dec, sae.W_enc) + sae.b_enc).detach();
  for (int64_t t = 0; t < 9; ++t) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return z[t][a].item<float>() > z[t][b].item<float>(); });
    for (int64_t r = 0; r < n; ++r) {
      float expected = r < k ? std::max(0.0f, z[t][order[r]].item<float>()) : 0.0f;
      EXPECT_FLOAT_EQ(f[t][order[r]].item<float>(), expected) << "token " << t << " rank " << r;
    }
  }
  EXPECT_TRUE(((f != 0).sum(1) <= k).all().item<bool>());
}

TEST(TopKTest, KEqualToNKeepsEveryPositivePreActivation) {
  TopKSae sae(5, 8, Config(8), 2);
  torch::Tensor x = torch::randn({4, 5});
  torch::Tensor z = (torch::mm(x - sae.b_dec, sae.W_enc) + sae.b_enc).detach();
  EXPECT_TRUE(torch::allclose(sae.EncodeScaled(x).detach(), torch::relu(z)));
}

TEST(TopKTest, LossGradientsMatchFiniteDifferencesWithAStoppedResidual) {
  torch::manual_seed(3);
  const int64_t batch = 5, d = 4, n = 10, k = 3, k_aux = 2;
  const double alpha = 0.5;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  torch::Tensor dead = torch::zeros({n}, torch::kBool);
  dead.index_put_({torch::tensor({1, 4, 6, 8})}, true);
  std::vector<torch::Tensor> params = {torch::randn({d, n}, torch::kFloat64), torch::randn({n}, torch::kFloat64),
                                       torch::randn({n, d}, torch::kFloat64), torch::randn({d}, torch::kFloat64)};
  // AuxK's target e = x - x_hat is a constant (stop-gradient). The
  // finite-difference reference therefore freezes e at the unperturbed
  // parameters and recomputes everything else from scratch.
  const torch::Tensor e0 =
      (x - Loss(x, params[0], params[1], params[2], params[3], k, k_aux, alpha, dead).x_hat).detach();
  auto reference = [&](const std::vector<torch::Tensor>& p) {
    torch::Tensor z = torch::mm(x - p[3], p[0]) + p[1];
    auto [values, indices] = z.topk(k, 1);
    torch::Tensor f = torch::zeros({batch, n}, z.options()).scatter(1, indices, torch::relu(values));
    torch::Tensor x_hat = torch::mm(f, p[2]) + p[3];
    torch::Tensor nmse = (x_hat - x).pow(2).sum() / x.pow(2).sum();
    return nmse + alpha * AuxKLoss(z, p[2], dead, k_aux, e0);
  };
  auto under_test = [&](const std::vector<torch::Tensor>& p) {
    return Loss(x, p[0], p[1], p[2], p[3], k, k_aux, alpha, dead).loss;
  };
  // Same value at the base point...
  EXPECT_NEAR(reference(params).item<double>(), under_test(params).item<double>(), 1e-12);
  // ...and autograd of the loss under test equals finite differences of the
  // reference. Small eps keeps every top-k selection unchanged.
  GradientCheckResult check =
      CheckGradientsAgainstReference(under_test, reference, params, 1e-7);
  EXPECT_GT(check.max_abs_gradient, 1e-2);
  EXPECT_LT(check.max_abs_error, 1e-6);
}

TEST(TopKTest, MainLossGradientsMatchFiniteDifferences) {
  torch::manual_seed(5);
  const int64_t batch = 5, d = 4, n = 10, k = 3;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  auto loss = [&](const std::vector<torch::Tensor>& p) {
    return Loss(x, p[0], p[1], p[2], p[3], k, 2, /*alpha=*/0.0, torch::Tensor()).loss;
  };
  GradientCheckResult check = CheckGradients(
      loss, {torch::randn({d, n}), torch::randn({n}), torch::randn({n, d}), torch::randn({d})}, 1e-7);
  EXPECT_GT(check.max_abs_gradient, 1e-2);
  EXPECT_LT(check.max_abs_error, 1e-6);
}

TEST(TopKTest, AuxKGivesGradientToDeadLatentsOnly) {
  torch::manual_seed(4);
  const int64_t d = 6, n = 12, k = 2;
  torch::Tensor x = torch::randn({8, d});
  torch::Tensor W_enc = torch::randn({d, n}).requires_grad_(true);
  torch::Tensor b_enc = torch::zeros({n}).requires_grad_(true);
  torch::Tensor W_dec = torch::randn({n, d});
  W_dec = (W_dec / W_dec.norm(2, {1}, true)).requires_grad_(true);
  torch::Tensor b_dec = torch::zeros({d}).requires_grad_(true);
  // Latents 10 and 11: encoder rows so negative they never win the main top-k.
  {
    torch::NoGradGuard no_grad;
    b_enc[10] = -100;
    b_enc[11] = -100;
  }
  torch::Tensor dead = torch::zeros({n}, torch::kBool);
  dead[10] = true;
  dead[11] = true;
  torch::Tensor nmse = Loss(x, W_enc, b_enc, W_dec, b_dec, k, 2, 1.0, dead).terms.at("nmse");
  // Main path alone: no gradient reaches the dead latents' encoder columns.
  torch::Tensor grad_main = torch::autograd::grad({nmse}, {W_enc}, {}, true)[0];
  EXPECT_EQ(grad_main.index({torch::indexing::Slice(), torch::indexing::Slice(10, 12)}).abs().sum().item<float>(), 0.0f);
  // With positive pre-activations for the dead latents, AuxK reconstructs
  // the (detached) residual from their decoder rows, and from no others.
  {
    torch::NoGradGuard no_grad;
    b_enc[10] = 5;
    b_enc[11] = 5;
  }
  torch::Tensor auxk = AuxK(Loss(x, W_enc, b_enc, W_dec, b_dec, k, 2, 1.0, dead));
  ASSERT_GT(auxk.item<float>(), 0.0f);
  torch::Tensor grad_aux = torch::autograd::grad({auxk}, {W_dec}, {}, true)[0];
  // AuxK reconstructs the residual from dead rows of W_dec only.
  EXPECT_EQ(grad_aux.index({torch::indexing::Slice(0, 10)}).abs().sum().item<float>(), 0.0f);
  EXPECT_GT(grad_aux.index({torch::indexing::Slice(10, 12)}).abs().sum().item<float>(), 0.0f);
}

TEST(TopKTest, SparseAndDenseDecodingGiveTheSameLossAndGradients) {
  torch::manual_seed(6);
  const int64_t d = 8, n = 300, k = 5;
  torch::Tensor x = torch::randn({32, d});
  torch::Tensor dead = torch::arange(n) >= 250;
  std::vector<torch::Tensor> base = {torch::randn({d, n}), torch::randn({n}), torch::randn({n, d}), torch::randn({d})};
  auto run = [&](bool sparse) {
    std::vector<torch::Tensor> p;
    for (auto& b : base) p.push_back(b.clone().requires_grad_(true));
    torch::Tensor loss = Loss(x, p[0], p[1], p[2], p[3], k, 4, 0.5, dead, sparse, 4).loss;
    loss.backward();
    std::vector<torch::Tensor> out = {loss.detach()};
    for (auto& q : p) out.push_back(q.grad());
    return out;
  };
  auto sparse = run(true);
  auto dense = run(false);
  for (size_t i = 0; i < sparse.size(); ++i) {
    EXPECT_TRUE(torch::allclose(sparse[i], dense[i], 1e-5, 1e-6)) << i;
  }
}

TEST(TopKTest, MultiTopKAddsAnEighthOfTheNmseAtFourK) {
  torch::manual_seed(7);
  const int64_t d = 6, n = 40, k = 3;
  torch::Tensor x = torch::randn({10, d});
  torch::Tensor W_enc = torch::randn({d, n}), b_enc = torch::randn({n});
  torch::Tensor W_dec = torch::randn({n, d}), b_dec = torch::randn({d});
  LossOutput multi = Loss(x, W_enc, b_enc, W_dec, b_dec, k, 2, 0.0, torch::Tensor(), true, 4);
  double with_multi = multi.loss.item<double>();
  torch::Tensor nmse = multi.terms.at("nmse");
  // Independently: a TopK SAE at 4k is the same loss with k replaced.
  torch::Tensor nmse_4k =
      Loss(x, W_enc, b_enc, W_dec, b_dec, 4 * k, 2, 0.0, torch::Tensor()).terms.at("nmse");
  double expected = nmse.item<double>() + 0.125 * nmse_4k.item<double>();
  EXPECT_NEAR(with_multi, expected, 1e-6 * expected);
}

TEST(TopKTest, NoDeadLatentsMeansZeroAuxK) {
  TopKSae sae(4, 8, Config(2), 1);
  TrainStepInfo info;
  info.dead_mask = torch::zeros({8}, torch::kBool);
  TrainOutput out = sae.TrainForward(torch::randn({6, 4}), info);
  EXPECT_EQ(out.terms.at("auxk"), 0.0);
}

TEST(TopKTest, GradientProjectionRemovesTheComponentAlongEachRow) {
  torch::Tensor w = torch::randn({5, 3});
  w = w / w.norm(2, {1}, true);
  torch::Tensor grad = torch::randn({5, 3});
  torch::Tensor original = grad.clone();
  ProjectOutParallelGradient(w, grad);
  EXPECT_LT((grad * w).sum(1).abs().max().item<float>(), 1e-6);
  // What was removed is parallel to w: original - grad = c w.
  torch::Tensor removed = original - grad;
  torch::Tensor cross = removed - (removed * w).sum(1, true) * w;
  EXPECT_LT(cross.abs().max().item<float>(), 1e-6);
}

TEST(TopKTest, DecoderRowsStayUnitNormUnderTraining) {
  const int64_t d = 8, n = 32;
  TopKSae sae(d, n, Config(4), 5);
  EXPECT_TRUE(DecoderStaysUnitNormUnderAdam(sae, 50, torch::arange(n) >= n / 2 /* AuxK too */));
}

TEST(TopKTest, InitIsTiedWithUnitRowsAndGeometricMedianBias) {
  TopKSae sae(4, 16, Config(2), 9);
  EXPECT_TRUE(torch::equal(sae.W_enc, sae.W_dec.t()));
  EXPECT_TRUE(torch::allclose(sae.W_dec.norm(2, {1}), torch::ones({16}), 1e-5, 1e-6));
  // Three copies of one point and two others: the median is the repeated point.
  torch::Tensor sample = torch::tensor({{1.f, 1.f, 1.f, 1.f}, {1.f, 1.f, 1.f, 1.f}, {1.f, 1.f, 1.f, 1.f},
                                        {9.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 9.f}});
  sae.InitFromSample(sample);
  EXPECT_TRUE(torch::allclose(sae.b_dec, torch::ones({4}), 1e-3, 1e-3)) << sae.b_dec;
}

}  // namespace
}  // namespace saelab
