#include "eval/downstream.h"

#include <algorithm>
#include <torch/utils.h>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "eval/splice.h"
#include "harness/status_macros.h"
#include "sae/metrics.h"

namespace saelab {
namespace {

// Sums of next-token cross-entropy over positions 1..L-2 (predicting tokens
// 2..L-1) of logits [B, L, V], in float64.
double SumNextTokenLoss(const torch::Tensor& logits, const torch::Tensor& tokens) {
  const int64_t length = tokens.size(1);
  torch::Tensor log_probs =
      torch::log_softmax(logits.slice(1, 1, length - 1).to(torch::kFloat64), -1);
  torch::Tensor targets = tokens.slice(1, 2, length).unsqueeze(-1);
  return -log_probs.gather(-1, targets).sum().item<double>();
}

// Per-position KL(clean || spliced) over positions 1..L-2: [B * (L - 2)] float64.
torch::Tensor PositionKl(const torch::Tensor& clean_logits, const torch::Tensor& spliced_logits) {
  const int64_t length = clean_logits.size(1);
  torch::Tensor p_log =
      torch::log_softmax(clean_logits.slice(1, 1, length - 1).to(torch::kFloat64), -1);
  torch::Tensor q_log =
      torch::log_softmax(spliced_logits.slice(1, 1, length - 1).to(torch::kFloat64), -1);
  return (p_log.exp() * (p_log - q_log)).sum(-1).reshape({-1});
}

}  // namespace

void DownstreamMetrics::WriteTo(SaeResult* result) const {
  auto& m = *result->mutable_metrics();
  m["downstream_tokens"] = static_cast<double>(loss_tokens);
  m["ce_clean"] = ce_clean;
  m["ce_spliced"] = ce_spliced;
  m["ce_zero_ablation"] = ce_zero_ablation;
  m["ce_mean_ablation"] = ce_mean_ablation;
  m["delta_loss"] = delta_loss;
  m["loss_recovered"] = loss_recovered;
  m["kl_mean"] = kl_mean;
  m["kl_max"] = kl_max;
  m["spliced_explained_variance"] = explained_variance;
  m["cosine_similarity"] = cosine_similarity;
  m["l2_ratio"] = l2_ratio;
  m["spliced_l0"] = l0;
  m["l1"] = l1;
  m["spliced_dead_fraction"] = dead_fraction;
  m["dense_fraction"] = dense_fraction;
}

absl::StatusOr<DownstreamMetrics> EvaluateDownstream(const Gpt2Model& model,
                                                     const std::string& hook_name, Sae& sae,
                                                     const torch::Tensor& contexts,
                                                     const torch::Tensor& mean_activation,
                                                     const DownstreamEvalConfig& config,
                                                     const std::string& input_hook_name) {
  if (sae.is_transcoder() == input_hook_name.empty()) {
    return absl::InvalidArgumentError(
        sae.is_transcoder()
            ? "downstream eval: a transcoder needs the hook it reads (input_hook_name)"
            : absl::StrCat("downstream eval: input_hook_name ", input_hook_name,
                           " is for transcoders; this SAE reads and writes ", hook_name));
  }
  if (!contexts.defined() || contexts.dim() != 2 || contexts.size(0) < 1 || contexts.size(1) < 3 ||
      contexts.scalar_type() != torch::kLong) {
    return absl::InvalidArgumentError(absl::StrCat(
        "downstream eval: contexts must be [N >= 1, L >= 3] int64, got ",
        contexts.defined() ? absl::StrCat("[", absl::StrJoin(contexts.sizes(), ", "), "]")
                           : std::string("undefined")));
  }
  if (!mean_activation.defined() || mean_activation.dim() != 1 ||
      mean_activation.size(0) != sae.d_in()) {
    return absl::InvalidArgumentError(
        absl::StrCat("downstream eval: mean activation must be [d_in = ", sae.d_in(), "]"));
  }
  if (config.batch_contexts() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "downstream eval: batch_contexts must be >= 1, got ", config.batch_contexts()));
  }
  // captured: hook_name's activation; captured_input: the transcoder's input.
  torch::Tensor captured, captured_input;
  HookSet capture;
  capture.hooks[hook_name] = CaptureInto(&captured);
  HookSet spliced;
  if (sae.is_transcoder()) {
    capture.hooks[input_hook_name] = CaptureInto(&captured_input);
    ASSIGN_OR_RETURN(spliced, SpliceTranscoder(model, input_hook_name, hook_name, sae));
  } else {
    ASSIGN_OR_RETURN(spliced, SpliceAt(model, hook_name, sae, SpliceReconstruction(sae, false)));
  }
  ASSIGN_OR_RETURN(HookSet zeroed, SpliceAt(model, hook_name, sae, ZeroAblation()));
  ASSIGN_OR_RETURN(HookSet meaned, SpliceAt(model, hook_name, sae, MeanAblation(mean_activation)));

  const int64_t n = config.eval_contexts() < 0
                        ? contexts.size(0)
                        : std::min<int64_t>(contexts.size(0), config.eval_contexts());
  torch::NoGradGuard no_grad;
  double loss_clean = 0, loss_spliced = 0, loss_zero = 0, loss_mean = 0;
  double kl_sum = 0, kl_max = 0, cos_sum = 0, ratio_sum = 0, l1_sum = 0;
  int64_t loss_tokens = 0;
  // Explained variance, L0 and firing counts: the same whole-set sums as
  // the reconstruction eval (sae/metrics.h).
  ReconstructionMetrics reconstruction(sae.d_in(), sae.n_latents());
  for (int64_t begin = 0; begin < n; begin += config.batch_contexts()) {
    torch::Tensor tokens = contexts.slice(0, begin, std::min(n, begin + config.batch_contexts()));
    ASSIGN_OR_RETURN(torch::Tensor clean_logits, model.Forward(tokens, capture));
    ASSIGN_OR_RETURN(torch::Tensor spliced_logits, model.Forward(tokens, spliced));
    ASSIGN_OR_RETURN(torch::Tensor zero_logits, model.Forward(tokens, zeroed));
    ASSIGN_OR_RETURN(torch::Tensor mean_logits, model.Forward(tokens, meaned));
    loss_clean += SumNextTokenLoss(clean_logits, tokens);
    loss_spliced += SumNextTokenLoss(spliced_logits, tokens);
    loss_zero += SumNextTokenLoss(zero_logits, tokens);
    loss_mean += SumNextTokenLoss(mean_logits, tokens);
    loss_tokens += tokens.size(0) * (tokens.size(1) - 2);
    torch::Tensor kl = PositionKl(clean_logits, spliced_logits);
    kl_sum += kl.sum().item<double>();
    kl_max = std::max(kl_max, kl.max().item<double>());

    // Reconstruction statistics on the non-BOS activations.
    // x: the activation the SAE reconstructs (a transcoder's target);
    // f and x_hat from the SAE's own input.
    torch::Tensor x = captured.slice(1, 1, captured.size(1)).reshape({-1, sae.d_in()});
    torch::Tensor f, x_hat;
    if (sae.is_transcoder()) {
      torch::Tensor input =
          captured_input.slice(1, 1, captured_input.size(1)).reshape({-1, sae.d_in()});
      f = sae.Encode(input);
      x_hat = sae.Reconstruct(input);
    } else {
      f = sae.Encode(x);
      x_hat = sae.Decode(f);
    }
    reconstruction.Add(x, x_hat, f);
    torch::Tensor x64 = x.to(torch::kFloat64), x_hat64 = x_hat.to(torch::kFloat64);
    torch::Tensor x_norm = x64.norm(2, 1), x_hat_norm = x_hat64.norm(2, 1);
    cos_sum +=
        ((x64 * x_hat64).sum(1) / (x_norm * x_hat_norm).clamp_min(1e-30)).sum().item<double>();
    ratio_sum += (x_hat_norm / x_norm.clamp_min(1e-30)).sum().item<double>();
    l1_sum += f.abs().to(torch::kFloat64).sum().item<double>();
  }

  DownstreamMetrics m;
  m.loss_tokens = loss_tokens;
  const int64_t rows = reconstruction.tokens();
  m.activation_tokens = rows;
  m.ce_clean = loss_clean / loss_tokens;
  m.ce_spliced = loss_spliced / loss_tokens;
  m.ce_zero_ablation = loss_zero / loss_tokens;
  m.ce_mean_ablation = loss_mean / loss_tokens;
  m.delta_loss = m.ce_spliced - m.ce_clean;
  m.loss_recovered = (m.ce_zero_ablation - m.ce_spliced) / (m.ce_zero_ablation - m.ce_clean);
  m.kl_mean = kl_sum / loss_tokens;
  m.kl_max = kl_max;
  m.explained_variance = reconstruction.ExplainedVariance();
  m.cosine_similarity = cos_sum / rows;
  m.l2_ratio = ratio_sum / rows;
  m.l0 = reconstruction.L0();
  m.l1 = l1_sum / rows;
  m.dead_fraction = reconstruction.DeadFraction();
  m.dense_fraction = (reconstruction.fire_counts().to(torch::kFloat64) >
                      config.dense_threshold() * static_cast<double>(rows))
                         .sum()
                         .item<double>() /
                     sae.n_latents();
  return m;
}

}  // namespace saelab
