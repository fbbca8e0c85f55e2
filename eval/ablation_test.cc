#include "eval/ablation.h"

#include <cmath>
#include <memory>
#include <torch/utils.h>

#include "eval/internal/test_models.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

constexpr int64_t kVocab = 40, kEmbd = 16, kLength = 10, kContexts = 5;
constexpr char kHook[] = "blocks.0.hook_resid_mid";

Gpt2Model TinyModel() { return TinyGpt2(kVocab, kEmbd, /*positions=*/16, /*seed=*/3); }

// A ReLU-L1 SAE (dense decode) with random tied weights: many latents fire.
std::unique_ptr<Sae> TinySae() { return RandomReluSae(kEmbd, 32, 4); }

torch::Tensor Contexts() {
  torch::manual_seed(6);
  torch::Tensor tokens = torch::randint(1, kVocab, {kContexts, kLength}, torch::kLong);
  tokens.select(1, 0).fill_(0);
  return tokens;
}

// The latents that fire somewhere after BOS, computed here.
std::vector<int64_t> LiveLatents(const Gpt2Model& model, Sae& sae) {
  torch::NoGradGuard no_grad;
  auto cache = model.RunWithCache(Contexts(), {kHook});
  torch::Tensor f = sae.Encode(cache->at(kHook).slice(1, 1).reshape({-1, kEmbd}));
  torch::Tensor live = (f > 0).any(0).nonzero().reshape({-1});
  return std::vector<int64_t>(live.data_ptr<int64_t>(), live.data_ptr<int64_t>() + live.numel());
}

TEST(AblationTest, LogitChangeSparsityMatchesHandValues) {
  EXPECT_DOUBLE_EQ(LogitChangeSparsity(torch::tensor({0.0, 3.0, 0.0, 0.0})), 0.25);  // 1/V
  EXPECT_DOUBLE_EQ(LogitChangeSparsity(torch::ones({8})), 1.0);                      // even
  // (|1| + |-1|)^2 / (1 + 1) / 4 = 4 / 2 / 4.
  EXPECT_DOUBLE_EQ(LogitChangeSparsity(torch::tensor({1.0, -1.0, 0.0, 0.0})), 0.5);
  EXPECT_EQ(LogitChangeSparsity(torch::zeros({5})), 0.0);
}

TEST(AblationTest, ALatentWhoseDecoderRowIsZeroHasNoEffect) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> sae = TinySae();
  const std::vector<int64_t> live = LiveLatents(model, *sae);
  ASSERT_FALSE(live.empty());
  const int64_t latent = live[0];
  {
    torch::NoGradGuard no_grad;
    sae->W_dec[latent].zero_();
  }
  auto result =
      EvaluateAblationSparsity(model, kHook, *sae, Contexts(), AblationEvalConfig(), 1, {latent});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->latents.size(), 1u);
  EXPECT_GT(result->latents[0].positions, 0);
  EXPECT_EQ(result->latents[0].effect, 0.0);
  EXPECT_EQ(result->latents[0].sparsity, 0.0);
}

TEST(AblationTest, EffectMatchesAnAblationWrittenHere) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> sae = TinySae();
  const int64_t latent = LiveLatents(model, *sae)[0];
  auto result =
      EvaluateAblationSparsity(model, kHook, *sae, Contexts(), AblationEvalConfig(), 1, {latent});
  ASSERT_TRUE(result.ok()) << result.status();
  const LatentAblation& a = result->latents[0];

  // The same measurement with hooks written here: every context, every
  // firing position (the eval measures at most 64; here there are fewer).
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = Contexts();
  auto cache = model.RunWithCache(tokens, {kHook});
  torch::Tensor f_all = sae->Encode(cache->at(kHook).slice(1, 1).reshape({-1, kEmbd}))
                            .reshape({kContexts, kLength - 1, -1});
  HookSet spliced, ablated;
  auto rows = [](const torch::Tensor& a) { return a.slice(1, 1).reshape({-1, kEmbd}); };
  auto back = [](const torch::Tensor& a, const torch::Tensor& r) {
    return torch::cat({a.slice(1, 0, 1), r.reshape({a.size(0), -1, kEmbd})}, 1);
  };
  spliced.hooks[kHook] = [&](const torch::Tensor& a) { return back(a, sae->Reconstruct(rows(a))); };
  ablated.hooks[kHook] = [&](const torch::Tensor& a) {
    torch::Tensor f = sae->Encode(rows(a));
    f.select(1, latent).zero_();
    return back(a, sae->Decode(f));
  };
  torch::Tensor v_all = *model.Forward(tokens, ablated) - *model.Forward(tokens, spliced);
  double sparsity = 0, effect = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < kContexts; ++b) {
    for (int64_t p = 0; p < kLength - 1; ++p) {
      if (f_all[b][p][latent].item<float>() <= 0) continue;
      torch::Tensor v = v_all[b][p + 1].to(torch::kFloat64);
      const double l1 = v.abs().sum().item<double>(), l2 = v.norm().item<double>();
      sparsity += l1 * l1 / (l2 * l2) / kVocab;
      effect += l2;
      ++count;
    }
  }
  ASSERT_EQ(a.positions, count);
  EXPECT_NEAR(a.effect, effect / count, 1e-5 * effect / count);
  EXPECT_NEAR(a.sparsity, sparsity / count, 1e-4);
  EXPECT_GT(a.effect, 0);
}

TEST(AblationTest, SampleIsSeededAndDrawnFromLiveLatents) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> sae = TinySae();
  const std::vector<int64_t> live = LiveLatents(model, *sae);
  AblationEvalConfig config;
  config.set_latents(3);
  auto a = EvaluateAblationSparsity(model, kHook, *sae, Contexts(), config, 11);
  auto b = EvaluateAblationSparsity(model, kHook, *sae, Contexts(), config, 11);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->latents.size(), std::min<size_t>(3, live.size()));
  for (size_t i = 0; i < a->latents.size(); ++i) {
    EXPECT_EQ(a->latents[i].latent, b->latents[i].latent);
    EXPECT_NE(std::find(live.begin(), live.end(), a->latents[i].latent), live.end());
    EXPECT_GT(a->latents[i].positions, 0);
  }
}

TEST(AblationTest, OutOfRangeLatentIsRefused) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> sae = TinySae();
  auto status =
      EvaluateAblationSparsity(model, kHook, *sae, Contexts(), AblationEvalConfig(), 1, {32})
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("latent 32 is out of range"), std::string::npos);
}

}  // namespace
}  // namespace saelab
