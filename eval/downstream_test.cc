#include "eval/downstream.h"

#include <cmath>
#include <memory>
#include <torch/utils.h>

#include "eval/splice.h"
#include "eval/internal/test_models.h"
#include "gtest/gtest.h"
#include "sae/factory.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

constexpr int64_t kVocab = 50, kEmbd = 16, kLength = 12, kContexts = 6;

// A 1-layer, 16-wide GPT-2 with GPT-2's random init (LayerNorm biases 0).
Gpt2Model TinyModel() { return TinyGpt2(kVocab, kEmbd, /*positions=*/32, /*seed=*/5); }

std::unique_ptr<Sae> TinySae(int64_t d_in = kEmbd) {
  SaeConfig config;
  config.set_name("tiny");
  config.set_n_latents(64);
  config.mutable_topk()->set_k(4);
  EXPECT_TRUE(ResolveSaeConfig(d_in, &config).ok());
  auto sae = CreateSae(config, d_in, 9);
  EXPECT_TRUE(sae.ok()) << sae.status();
  return *std::move(sae);
}

// Contexts starting with BOS (id 0), then random ids.
torch::Tensor Contexts() {
  torch::manual_seed(2);
  torch::Tensor tokens = torch::randint(1, kVocab, {kContexts, kLength}, torch::kLong);
  tokens.select(1, 0).fill_(0);
  return tokens;
}

// Float64 cross-entropy over positions 1..L-2 computed with scalar loops:
// log-sum-exp by hand, an independent route from log_softmax + gather.
double HandLoss(const torch::Tensor& logits, const torch::Tensor& tokens) {
  torch::Tensor l = logits.to(torch::kFloat64).contiguous();
  auto a = l.accessor<double, 3>();
  auto t = tokens.accessor<int64_t, 2>();
  double total = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < l.size(0); ++b) {
    for (int64_t p = 1; p + 1 < l.size(1); ++p) {
      double max = -INFINITY;
      for (int64_t v = 0; v < l.size(2); ++v) max = std::max(max, a[b][p][v]);
      double sum = 0;
      for (int64_t v = 0; v < l.size(2); ++v) sum += std::exp(a[b][p][v] - max);
      total += max + std::log(sum) - a[b][p][t[b][p + 1]];
      ++count;
    }
  }
  return total / count;
}

TEST(DownstreamTest, SplicingWithTheErrorTermKeptGivesTheCleanLogitsExactly) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> sae = TinySae();
  torch::NoGradGuard no_grad;
  auto hooks = SpliceAt(model, "blocks.0.hook_resid_mid", *sae, SpliceReconstruction(*sae, true));
  ASSERT_TRUE(hooks.ok()) << hooks.status();
  auto clean = model.Forward(Contexts());
  auto spliced = model.Forward(Contexts(), *hooks);
  ASSERT_TRUE(clean.ok() && spliced.ok());
  EXPECT_TRUE(torch::equal(*clean, *spliced));
  // The same holds for a latent edit that changes nothing (scale by 1).
  auto unedited =
      SpliceAt(model, "blocks.0.hook_resid_mid", *sae, EditLatent(*sae, 3, LatentEdit::Scale(1.0)));
  ASSERT_TRUE(unedited.ok());
  EXPECT_TRUE(torch::equal(*clean, *model.Forward(Contexts(), *unedited)));
}

TEST(DownstreamTest, LossesMatchAHandComputationAndZeroAblationOfTheLastResidualIsUniform) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> sae = TinySae();
  const torch::Tensor contexts = Contexts();
  DownstreamEvalConfig config;
  config.set_batch_contexts(4);  // two batches, the second partial
  auto m = EvaluateDownstream(model, "blocks.0.hook_resid_post", *sae, contexts,
                              torch::zeros({kEmbd}), config);
  ASSERT_TRUE(m.ok()) << m.status();
  torch::NoGradGuard no_grad;
  // The evaluation runs batches of 4 contexts, the hand computation all 6 at
  // once; OpenBLAS's AVX2 (Haswell) sgemm kernel may round a row
  // differently with the number of rows (here by 1e-9), so agreement is to
  // float32 rounding. A dropped partial batch (2 of 6 contexts) or
  // unweighted batch means would move the loss by orders of magnitude more.
  EXPECT_NEAR(m->ce_clean, HandLoss(*model.Forward(contexts), contexts), 1e-7);
  auto spliced =
      SpliceAt(model, "blocks.0.hook_resid_post", *sae, SpliceReconstruction(*sae, false));
  EXPECT_NEAR(m->ce_spliced, HandLoss(*model.Forward(contexts, *spliced), contexts), 1e-7);
  // Zeroing the final residual stream: ln_f(0) = its bias = 0, so every
  // logit is 0 and the loss is log V, whatever the weights.
  EXPECT_NEAR(m->ce_zero_ablation, std::log(static_cast<double>(kVocab)), 1e-12);
  // A zero mean makes mean ablation the same intervention.
  EXPECT_NEAR(m->ce_mean_ablation, m->ce_zero_ablation, 1e-12);
  EXPECT_DOUBLE_EQ(m->delta_loss, m->ce_spliced - m->ce_clean);
  EXPECT_DOUBLE_EQ(m->loss_recovered,
                   (m->ce_zero_ablation - m->ce_spliced) / (m->ce_zero_ablation - m->ce_clean));
  EXPECT_EQ(m->loss_tokens, kContexts * (kLength - 2));
  EXPECT_EQ(m->activation_tokens, kContexts * (kLength - 1));
}

TEST(DownstreamTest, KlAndReconstructionStatisticsMatchScalarLoops) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> sae = TinySae();
  const torch::Tensor contexts = Contexts();
  const std::string hook = "blocks.0.hook_resid_mid";
  auto m = EvaluateDownstream(model, hook, *sae, contexts, torch::zeros({kEmbd}),
                              DownstreamEvalConfig());
  ASSERT_TRUE(m.ok()) << m.status();

  torch::NoGradGuard no_grad;
  torch::Tensor x;
  HookSet capture;
  capture.hooks[hook] = CaptureInto(&x);
  torch::Tensor p = model.Forward(contexts, capture)->to(torch::kFloat64);
  auto spliced = SpliceAt(model, hook, *sae, SpliceReconstruction(*sae, false));
  torch::Tensor q = model.Forward(contexts, *spliced)->to(torch::kFloat64);
  double kl = 0, kl_max = 0;
  for (int64_t b = 0; b < kContexts; ++b) {
    for (int64_t pos = 1; pos + 1 < kLength; ++pos) {
      torch::Tensor lp = torch::log_softmax(p[b][pos], 0), lq = torch::log_softmax(q[b][pos], 0);
      double sum = 0;
      for (int64_t v = 0; v < kVocab; ++v) {
        sum += std::exp(lp[v].item<double>()) * (lp[v].item<double>() - lq[v].item<double>());
      }
      kl += sum;
      kl_max = std::max(kl_max, sum);
    }
  }
  EXPECT_NEAR(m->kl_mean, kl / (kContexts * (kLength - 2)), 1e-12);
  EXPECT_NEAR(m->kl_max, kl_max, 1e-12);
  EXPECT_GT(m->kl_mean, 0);

  // Reconstruction statistics over the non-BOS rows, row by row.
  torch::Tensor rows = x.slice(1, 1, kLength).reshape({-1, kEmbd});
  torch::Tensor f = sae->Encode(rows), x_hat = sae->Decode(f);
  double cos = 0, ratio = 0, l1 = 0, err = 0;
  torch::Tensor mean = rows.to(torch::kFloat64).mean(0);
  double centred = 0;
  for (int64_t r = 0; r < rows.size(0); ++r) {
    torch::Tensor a = rows[r].to(torch::kFloat64), b = x_hat[r].to(torch::kFloat64);
    cos += (a.dot(b) / (a.norm() * b.norm())).item<double>();
    ratio += (b.norm() / a.norm()).item<double>();
    l1 += f[r].abs().sum().item<double>();
    err += (a - b).pow(2).sum().item<double>();
    centred += (a - mean).pow(2).sum().item<double>();
  }
  const double n = static_cast<double>(rows.size(0));
  EXPECT_NEAR(m->cosine_similarity, cos / n, 1e-9);
  EXPECT_NEAR(m->l2_ratio, ratio / n, 1e-9);
  EXPECT_NEAR(m->l1, l1 / n, 1e-5);
  EXPECT_NEAR(m->explained_variance, 1 - err / centred, 1e-9);
  EXPECT_DOUBLE_EQ(m->l0, (f != 0).sum().item<double>() / n);
}

// A TopK skip transcoder of the 16-wide model, moved off its init so that
// every parameter (b_dec, W_skip included) matters.
std::unique_ptr<Sae> TinyTranscoder() {
  SaeConfig config;
  config.set_name("tiny_transcoder");
  config.set_n_latents(64);
  config.mutable_topk()->set_k(4);
  config.mutable_transcoder()->set_skip_connection(true);
  EXPECT_TRUE(ResolveSaeConfig(kEmbd, &config).ok());
  std::unique_ptr<Sae> sae = *CreateSae(config, kEmbd, 9);
  torch::NoGradGuard no_grad;
  torch::manual_seed(12);
  for (auto& [name, tensor] : sae->NamedTensors()) {
    if (name != "input_scale") tensor.add_(0.1 * torch::randn(tensor.sizes()));
  }
  sae->set_input_scale(0.7);
  return sae;
}

TEST(DownstreamTest, TranscoderReplacesTheMlpOutputWithItsEstimateFromTheMlpInput) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> transcoder = TinyTranscoder();
  const torch::Tensor contexts = Contexts();
  const std::string in = "blocks.0.hook_mlp_in", out = "blocks.0.hook_mlp_out";
  DownstreamEvalConfig config;
  config.set_batch_contexts(kContexts);  // one batch: the same GEMM shapes as below
  torch::Tensor mean_out = torch::randn({kEmbd});
  auto m = EvaluateDownstream(model, out, *transcoder, contexts, mean_out, config, in);
  ASSERT_TRUE(m.ok()) << m.status();

  // By hand: the clean MLP input and output, the transcoder's estimate of
  // the output on the non-BOS rows, and a forward with the MLP output
  // overwritten by it (the attention before the MLP is unchanged, so the
  // clean input is the input the splice sees).
  torch::NoGradGuard no_grad;
  torch::Tensor x, y;
  HookSet capture;
  capture.hooks[in] = CaptureInto(&x);
  capture.hooks[out] = CaptureInto(&y);
  ASSERT_TRUE(model.Forward(contexts, capture).ok());
  torch::Tensor x_rows = x.slice(1, 1, kLength).reshape({-1, kEmbd});
  torch::Tensor y_rows = y.slice(1, 1, kLength).reshape({-1, kEmbd});
  torch::Tensor estimate = transcoder->Reconstruct(x_rows);
  torch::Tensor replaced =
      torch::cat({y.slice(1, 0, 1), estimate.reshape({kContexts, kLength - 1, kEmbd})}, 1);
  HookSet overwrite;
  overwrite.hooks[out] = [&](const torch::Tensor&) { return replaced; };
  EXPECT_NEAR(m->ce_spliced, HandLoss(*model.Forward(contexts, overwrite), contexts), 1e-6);
  HookSet zero;
  zero.hooks[out] = [](const torch::Tensor& a) { return torch::zeros_like(a); };
  EXPECT_NEAR(m->ce_zero_ablation, HandLoss(*model.Forward(contexts, zero), contexts), 1e-6);
  HookSet meaned;
  meaned.hooks[out] = [&](const torch::Tensor& a) { return mean_out.expand_as(a).clone(); };
  EXPECT_NEAR(m->ce_mean_ablation, HandLoss(*model.Forward(contexts, meaned), contexts), 1e-6);
  // The reconstruction statistics are of the target (the MLP output).
  torch::Tensor t = y_rows.to(torch::kFloat64), e = estimate.to(torch::kFloat64);
  const double fvu = ((t - e).pow(2).sum() / (t - t.mean(0)).pow(2).sum()).item<double>();
  EXPECT_NEAR(m->explained_variance, 1 - fvu, 1e-9);
  EXPECT_NE(m->ce_spliced, m->ce_clean);

  // A transcoder needs its input hook, and a plain SAE must not get one.
  auto missing = EvaluateDownstream(model, out, *transcoder, contexts, mean_out, config);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(missing.status().message()).find("input_hook_name"), std::string::npos);
  std::unique_ptr<Sae> sae = TinySae();
  auto extra = EvaluateDownstream(model, out, *sae, contexts, mean_out, config, in);
  EXPECT_EQ(extra.status().code(), absl::StatusCode::kInvalidArgument);
  // The output hook must come after the input hook.
  auto backwards = SpliceTranscoder(model, out, in, *transcoder);
  EXPECT_EQ(backwards.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(backwards.status().message()).find("must come after"), std::string::npos);
}

TEST(DownstreamTest, BadInputIsRefusedNamingTheProblem) {
  Gpt2Model model = TinyModel();
  std::unique_ptr<Sae> narrow = TinySae(/*d_in=*/8);
  auto status = EvaluateDownstream(model, "blocks.0.hook_resid_post", *narrow, Contexts(),
                                   torch::zeros({8}), DownstreamEvalConfig())
                    .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("d_in is 8"), std::string::npos) << status;
  EXPECT_NE(std::string(status.message()).find("n_embd = 16"), std::string::npos) << status;

  std::unique_ptr<Sae> sae = TinySae();
  status = EvaluateDownstream(model, "blocks.7.hook_resid_post", *sae, Contexts(),
                              torch::zeros({kEmbd}), DownstreamEvalConfig())
               .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("blocks.7.hook_resid_post"), std::string::npos)
      << status;

  status = CheckLatent(*sae, 64);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("latent 64 is out of range: the SAE has 64"),
            std::string::npos)
      << status;
}

}  // namespace
}  // namespace saelab
