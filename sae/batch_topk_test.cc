#include "sae/batch_topk.h"

#include <algorithm>
#include <cmath>
#include <torch/utils.h>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "sae/internal/gradient_check.h"
#include "sae/internal/unit_norm_check.h"

namespace saelab {
namespace {

BatchTopKConfig Config(int64_t k, double threshold_decay = 0.99) {
  BatchTopKConfig config;
  config.set_k(k);
  config.set_k_aux(4);
  config.set_auxk_coefficient(1.0 / 32);
  config.set_geometric_median_iterations(50);
  config.set_threshold_decay(threshold_decay);
  return config;
}

torch::Tensor PreActivations(BatchTopKSae& sae, const torch::Tensor& x) {
  return (torch::mm(x - sae.b_dec, sae.W_enc) + sae.b_enc).detach();
}

// Every entry of z [B, n] as (value, token, latent), largest first.
std::vector<std::tuple<float, int64_t, int64_t>> SortedEntries(const torch::Tensor& z) {
  std::vector<std::tuple<float, int64_t, int64_t>> entries;
  auto a = z.accessor<float, 2>();
  for (int64_t t = 0; t < z.size(0); ++t) {
    for (int64_t i = 0; i < z.size(1); ++i) entries.emplace_back(a[t][i], t, i);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& l, const auto& r) {
    return std::get<0>(l) > std::get<0>(r);
  });
  return entries;
}

// The smallest of the k*B largest entries of z (brute force).
float KthLargest(const torch::Tensor& z, int64_t k) {
  return std::get<0>(SortedEntries(z)[k * z.size(0) - 1]);
}

// Random inputs whose norms differ a lot between tokens, so the batch top-k
// gives different tokens different L0s.
torch::Tensor VariedTokens(int64_t batch, int64_t d) {
  return torch::randn({batch, d}) * torch::linspace(0.2, 3.0, batch).unsqueeze(1);
}

TEST(BatchTopKTest, TrainingKeepsExactlyTheKTimesBatchLargestEntriesOfTheBatch) {
  torch::manual_seed(1);
  const int64_t d = 6, n = 20, k = 3, batch = 8;
  BatchTopKSae sae(d, n, Config(k), 7);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.copy_(torch::randn({n}));
    sae.b_dec.copy_(torch::randn({d}));
  }
  torch::Tensor x = VariedTokens(batch, d);
  torch::Tensor f = sae.TrainForward(x, TrainStepInfo()).f.detach();
  torch::Tensor z = PreActivations(sae, x);
  auto entries = SortedEntries(z);
  ASSERT_GT(std::get<0>(entries[k * batch - 1]), 0.0f);  // all kept entries positive
  for (size_t r = 0; r < entries.size(); ++r) {
    auto [value, t, i] = entries[r];
    float expected = static_cast<int64_t>(r) < k * batch ? value : 0.0f;
    EXPECT_FLOAT_EQ(f[t][i].item<float>(), expected) << "rank " << r;
  }
  EXPECT_EQ((f != 0).sum().item<int64_t>(), k * batch);
}

TEST(BatchTopKTest, TrainingL0VariesPerTokenAndAveragesK) {
  torch::manual_seed(2);
  const int64_t d = 8, n = 32, k = 4, batch = 16;
  BatchTopKSae sae(d, n, Config(k), 3);
  torch::Tensor f = sae.TrainForward(VariedTokens(batch, d), TrainStepInfo()).f.detach();
  torch::Tensor per_token = (f != 0).sum(1);
  EXPECT_GT(per_token.max().item<int64_t>(), per_token.min().item<int64_t>()) << per_token;
  EXPECT_EQ(per_token.sum().item<int64_t>(), k * batch);
}

TEST(BatchTopKTest, BatchSmallerThanKLatentsKeepsEveryPositiveEntry) {
  // k * B > B * n is clamped to the whole batch: plain ReLU.
  torch::Tensor z = torch::randn({3, 4});
  EXPECT_TRUE(torch::equal(BatchTopKActivations(z, 10), torch::relu(z)));
}

TEST(BatchTopKTest, InferenceKeepsExactlyTheValuesAboveTheThreshold) {
  torch::manual_seed(3);
  const int64_t d = 6, n = 24;
  BatchTopKSae sae(d, n, Config(4), 4);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.copy_(torch::randn({n}));
    sae.NamedTensors().at("threshold").fill_(0.75);
  }
  EXPECT_DOUBLE_EQ(sae.threshold(), 0.75);
  torch::Tensor x = torch::randn({10, d});
  torch::Tensor f = sae.EncodeScaled(x).detach();
  torch::Tensor z = PreActivations(sae, x);
  auto zf = z.accessor<float, 2>();
  int64_t above = 0, below = 0;
  for (int64_t t = 0; t < 10; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      if (std::fabs(zf[t][i] - 0.75f) < 1e-4f) continue;  // too close to call
      if (zf[t][i] > 0.75f) {
        EXPECT_NEAR(f[t][i].item<float>(), zf[t][i], 1e-5) << t << "," << i;
        ++above;
      } else {
        EXPECT_EQ(f[t][i].item<float>(), 0.0f) << t << "," << i;
        ++below;
      }
    }
  }
  // Both sides exercised, including positive values under the threshold.
  EXPECT_GT(above, 0);
  EXPECT_GT(((z > 0) & (z < 0.75)).sum().item<int64_t>(), 0);
  EXPECT_GT(below, 0);
}

TEST(BatchTopKTest, InferenceIsPerTokenUnlikeTraining) {
  torch::manual_seed(4);
  const int64_t d = 8, n = 32, k = 4, batch = 12;
  BatchTopKSae sae(d, n, Config(k), 5);
  torch::Tensor x = VariedTokens(batch, d);
  // Track a threshold first, then encode.
  sae.TrainForward(x, TrainStepInfo());
  ASSERT_GT(sae.threshold(), 0.0);
  torch::Tensor in_batch = sae.EncodeScaled(x).detach();
  for (int64_t t = 0; t < batch; ++t) {
    torch::Tensor alone = sae.EncodeScaled(x.slice(0, t, t + 1)).detach();
    EXPECT_TRUE(torch::equal(alone != 0, in_batch.slice(0, t, t + 1) != 0)) << "token " << t;
    EXPECT_TRUE(torch::allclose(alone, in_batch.slice(0, t, t + 1), 1e-6, 1e-6)) << "token " << t;
  }
  // Training is not per token: alone, a token keeps exactly k latents, but
  // inside this batch the tokens' counts differ from k.
  torch::Tensor train_batch = sae.TrainForward(x, TrainStepInfo()).f.detach();
  int64_t differs = 0;
  for (int64_t t = 0; t < batch; ++t) {
    torch::Tensor alone = sae.TrainForward(x.slice(0, t, t + 1), TrainStepInfo()).f.detach();
    EXPECT_EQ((alone != 0).sum().item<int64_t>(), k);
    if (!torch::equal(alone != 0, train_batch.slice(0, t, t + 1) != 0)) ++differs;
  }
  EXPECT_GT(differs, 0);
}

TEST(BatchTopKTest, ThresholdTracksTheMinimumKeptActivation) {
  torch::manual_seed(5);
  const int64_t d = 8, n = 32, k = 4, batch = 64;
  const double decay = 0.9;
  BatchTopKSae sae(d, n, Config(k, decay), 6);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.copy_(0.1 * torch::randn({n}));
  }
  EXPECT_EQ(sae.threshold(), 0.0);  // untracked
  // The first update takes the batch's smallest kept activation directly...
  torch::Tensor x1 = torch::randn({batch, d});
  TrainOutput out = sae.TrainForward(x1, TrainStepInfo());
  float m1 = KthLargest(PreActivations(sae, x1), k);
  EXPECT_FLOAT_EQ(static_cast<float>(sae.threshold()), m1);
  EXPECT_FLOAT_EQ(static_cast<float>(out.terms.at("threshold")), m1);
  // ...later ones move it by (1 - decay) towards the new minimum.
  torch::Tensor x2 = torch::randn({batch, d});
  sae.TrainForward(x2, TrainStepInfo());
  float m2 = KthLargest(PreActivations(sae, x2), k);
  EXPECT_NEAR(sae.threshold(), decay * m1 + (1 - decay) * m2, 1e-6);
  // Over many batches from one distribution (fixed weights) it settles near
  // the mean per-batch minimum kept activation.
  double sum_min = 0;
  const int batches = 200;
  for (int b = 0; b < batches; ++b) {
    torch::Tensor x = torch::randn({batch, d});
    sae.TrainForward(x, TrainStepInfo());
    sum_min += KthLargest(PreActivations(sae, x), k);
  }
  double mean_min = sum_min / batches;
  EXPECT_NEAR(sae.threshold(), mean_min, 0.05 * mean_min);
  // And thresholding at it gives about k latents per token at inference.
  torch::Tensor f = sae.EncodeScaled(torch::randn({4096, d})).detach();
  double l0 = (f != 0).sum(1).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(l0, k, 0.15 * k);
}

TEST(BatchTopKTest, CalibrateSetsTheMeanSmallestKeptActivationOfTheBatches) {
  torch::manual_seed(12);
  const int64_t d = 8, n = 32, k = 4, batch = 64;
  BatchTopKSae sae(d, n, Config(k), 6);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.copy_(0.1 * torch::randn({n}));
  }
  const std::vector<torch::Tensor> batches = {VariedTokens(batch, d), VariedTokens(batch, d),
                                              torch::randn({batch, d})};
  double sum = 0;
  for (const torch::Tensor& x : batches) sum += KthLargest(PreActivations(sae, x), k);
  sae.Calibrate(batches);
  EXPECT_NEAR(sae.threshold(), sum / 3, 1e-5 * sum / 3);
  // Inference at it keeps about k per token on those batches.
  const torch::Tensor f = sae.EncodeScaled(torch::cat(batches)).detach();
  EXPECT_NEAR((f != 0).sum(1).to(torch::kFloat64).mean().item<double>(), k, 0.2 * k);
}

TEST(BatchTopKTest, CalibrateLeavesOutBatchesThatKeepNothing) {
  const int64_t d = 8, n = 32, k = 4, batch = 16;
  BatchTopKSae sae(d, n, Config(k), 6);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc.fill_(-100.0);  // at x = b_dec every pre-activation is -100
  }
  const torch::Tensor at_b_dec = sae.b_dec.detach().unsqueeze(0).expand({batch, d}).clone();
  sae.Calibrate({at_b_dec});
  EXPECT_EQ(sae.threshold(), 0.0);  // untouched: no estimate
  torch::manual_seed(13);
  const torch::Tensor far = 1000.0 * torch::randn({batch, d});
  const float m = KthLargest(PreActivations(sae, far), k);
  ASSERT_GT(m, 0.0f);
  sae.Calibrate({at_b_dec, far});
  EXPECT_NEAR(sae.threshold(), m, 1e-5 * m);  // the mean of the one estimate
}

TEST(BatchTopKTest, ABatchWithNothingKeptLeavesTheThresholdUnchanged) {
  EXPECT_EQ(NextBatchTopKThreshold(0.3, torch::zeros({4, 5}), 0.9), 0.3);
  EXPECT_EQ(NextBatchTopKThreshold(0.0, torch::zeros({4, 5}), 0.9), 0.0);
}

TEST(BatchTopKTest, LossGradientsMatchFiniteDifferencesWithAStoppedResidual) {
  torch::manual_seed(6);
  const int64_t batch = 5, d = 4, n = 10, k = 3, k_aux = 2;
  const double alpha = 0.5;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  torch::Tensor dead = torch::zeros({n}, torch::kBool);
  dead.index_put_({torch::tensor({1, 4, 6, 8})}, true);
  std::vector<torch::Tensor> params = {
      torch::randn({d, n}, torch::kFloat64), torch::randn({n}, torch::kFloat64),
      torch::randn({n, d}, torch::kFloat64), torch::randn({d}, torch::kFloat64)};
  // Reference: batch top-k by sorting the flattened ReLU(z); the AuxK
  // target e = x - x_hat frozen at the unperturbed parameters.
  auto reconstruct = [&](const std::vector<torch::Tensor>& p, torch::Tensor* z) {
    *z = torch::mm(x - p[3], p[0]) + p[1];
    torch::Tensor flat = torch::relu(*z).reshape({-1});
    torch::Tensor order = std::get<1>(flat.sort(/*dim=*/0, /*descending=*/true));
    torch::Tensor keep = torch::zeros_like(flat).index_fill(0, order.slice(0, 0, k * batch), 1.0);
    return torch::mm((flat * keep).view({batch, n}), p[2]) + p[3];
  };
  torch::Tensor z0;
  const torch::Tensor e0 = (x - reconstruct(params, &z0)).detach();
  auto reference = [&](const std::vector<torch::Tensor>& p) {
    torch::Tensor z;
    torch::Tensor x_hat = reconstruct(p, &z);
    torch::Tensor nmse = (x_hat - x).pow(2).sum() / x.pow(2).sum();
    // AuxK by hand: top k_aux dead pre-activations per token, no bias.
    torch::Tensor z_dead = z.masked_fill(dead.logical_not(), -1e300);
    auto [values, indices] = z_dead.topk(k_aux, 1);
    torch::Tensor aux_f = torch::zeros_like(z).scatter(1, indices, torch::relu(values));
    torch::Tensor auxk = (torch::mm(aux_f, p[2]) - e0).pow(2).sum() / e0.pow(2).sum();
    return nmse + alpha * auxk;
  };
  for (bool sparse_decode : {false, true}) {
    SCOPED_TRACE(sparse_decode ? "sparse decode" : "dense decode");
    auto under_test = [&](const std::vector<torch::Tensor>& p) {
      return BatchTopKLoss({x, p[0], p[1], p[2], p[3], /*extra=*/{}, dead},
                           {k, k_aux, alpha, sparse_decode})
          .loss;
    };
    EXPECT_NEAR(reference(params).item<double>(), under_test(params).item<double>(), 1e-12);
    GradientCheckResult check =
        CheckGradientsAgainstReference(under_test, reference, params, 1e-7);
    EXPECT_GT(check.max_abs_gradient, 1e-2);
    EXPECT_LT(check.max_abs_error, 1e-6);
  }
}

TEST(BatchTopKTest, MainLossGradientsMatchFiniteDifferences) {
  torch::manual_seed(7);
  const int64_t batch = 6, d = 4, n = 10, k = 2;
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  std::vector<torch::Tensor> params = {torch::randn({d, n}), torch::randn({n}),
                                       torch::randn({n, d}), torch::randn({d})};
  for (bool sparse_decode : {false, true}) {
    SCOPED_TRACE(sparse_decode ? "sparse decode" : "dense decode");
    auto loss = [&](const std::vector<torch::Tensor>& p) {
      return BatchTopKLoss({x, p[0], p[1], p[2], p[3]},
                           {k, /*k_aux=*/2, /*auxk_coefficient=*/0.0, sparse_decode})
          .loss;
    };
    GradientCheckResult check = CheckGradients(loss, params, 1e-7);
    EXPECT_GT(check.max_abs_gradient, 1e-2);
    EXPECT_LT(check.max_abs_error, 1e-6);
  }
}

TEST(BatchTopKTest, SparseDecodeTrainingMatchesTheDenseLossAndGradients) {
  // Two SAEs from one seed, differing only in config.sparse_decode, on a
  // batch whose per-token L0s vary from 0 (token 0: x = b_dec with b_enc
  // < 0, so every pre-activation is negative) to well above k, with AuxK on.
  torch::manual_seed(10);
  const int64_t d = 16, n = 64, k = 4, batch = 32;
  BatchTopKConfig sparse_config = Config(k), dense_config = Config(k);
  sparse_config.set_sparse_decode(true);
  dense_config.set_sparse_decode(false);
  BatchTopKSae sparse(d, n, sparse_config, 11), dense(d, n, dense_config, 11);
  torch::Tensor b_enc = -0.1 * torch::rand({n}) - 0.01, b_dec = torch::randn({d});
  for (BatchTopKSae* sae : {&sparse, &dense}) {
    torch::NoGradGuard no_grad;
    sae->b_enc.copy_(b_enc);
    sae->b_dec.copy_(b_dec);
  }
  torch::Tensor x = VariedTokens(batch, d);
  x[0] = b_dec;
  TrainStepInfo info;
  info.dead_mask = torch::arange(n) >= 3 * n / 4;  // AuxK reads x_hat too
  TrainOutput s = sparse.TrainForward(x, info);
  TrainOutput r = dense.TrainForward(x, info);

  torch::Tensor per_token = (r.f != 0).sum(1);
  ASSERT_EQ(per_token[0].item<int64_t>(), 0);            // an empty row
  ASSERT_GT(per_token.max().item<int64_t>(), 2 * k);     // and a crowded one
  ASSERT_GT(r.terms.at("auxk"), 0.0);
  EXPECT_TRUE(torch::equal(s.f.detach(), r.f.detach()));  // the same selection
  EXPECT_TRUE(torch::allclose(s.x_hat, r.x_hat, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(s.loss, r.loss, 1e-5, 1e-5))
      << s.loss.item<double>() << " vs " << r.loss.item<double>();
  EXPECT_EQ(sparse.threshold(), dense.threshold());

  s.loss.backward();
  r.loss.backward();
  auto sparse_params = sparse.named_parameters();
  auto dense_params = dense.named_parameters();
  ASSERT_EQ(sparse_params.size(), 4u);
  for (const auto& item : dense_params) {
    const torch::Tensor& dense_grad = item.value().grad();
    const torch::Tensor& sparse_grad = sparse_params[item.key()].grad();
    ASSERT_TRUE(dense_grad.defined() && sparse_grad.defined()) << item.key();
    EXPECT_GT(dense_grad.abs().max().item<float>(), 1e-3) << item.key();
    EXPECT_TRUE(torch::allclose(sparse_grad, dense_grad, 1e-5, 1e-5))
        << item.key() << ": max difference "
        << (sparse_grad - dense_grad).abs().max().item<float>();
  }
}

TEST(BatchTopKTest, DecoderRowsStayUnitNormUnderTraining) {
  const int64_t d = 8, n = 32;
  BatchTopKSae sae(d, n, Config(4), 8);
  EXPECT_TRUE(DecoderStaysUnitNormUnderAdam(sae, 50, torch::arange(n) >= n / 2 /* AuxK too */));
}

TEST(BatchTopKTest, InitIsTiedWithGeometricMedianBiasAndAThresholdBuffer) {
  BatchTopKSae sae(4, 16, Config(2), 9);
  EXPECT_TRUE(torch::equal(sae.W_enc, sae.W_dec.t()));
  EXPECT_TRUE(torch::allclose(sae.W_dec.norm(2, {1}), torch::ones({16}), 1e-5, 1e-6));
  torch::Tensor sample = torch::tensor({{1.f, 1.f, 1.f, 1.f}, {1.f, 1.f, 1.f, 1.f}, {1.f, 1.f, 1.f, 1.f},
                                        {9.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 9.f}});
  sae.InitFromSample(sample);
  EXPECT_TRUE(torch::allclose(sae.b_dec, torch::ones({4}), 1e-3, 1e-3)) << sae.b_dec;
  auto tensors = sae.NamedTensors();
  ASSERT_EQ(tensors.count("threshold"), 1u);
  EXPECT_EQ(tensors.at("threshold").dim(), 0);
  EXPECT_FALSE(tensors.at("threshold").requires_grad());
}

}  // namespace
}  // namespace saelab
