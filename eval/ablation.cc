#include "eval/ablation.h"

#include <algorithm>
#include <random>
#include <torch/utils.h>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "eval/splice.h"
#include "harness/status_macros.h"

namespace saelab {

double LogitChangeSparsity(const torch::Tensor& v) {
  torch::Tensor v64 = v.to(torch::kFloat64);
  const double l2 = v64.norm().item<double>();
  if (l2 == 0) return 0;
  const double ratio = v64.abs().sum().item<double>() / l2;
  return ratio * ratio / static_cast<double>(v.size(0));
}

void AblationSparsity::WriteTo(SaeResult* result) const {
  auto& m = *result->mutable_metrics();
  m["ablation_sparsity"] = mean_sparsity;
  m["ablation_effect"] = mean_effect;
  m["ablation_latents"] = static_cast<double>(latents.size());
}

absl::StatusOr<AblationSparsity> EvaluateAblationSparsity(
    const Gpt2Model& model, const std::string& hook_name, Sae& sae, const torch::Tensor& contexts,
    const AblationEvalConfig& config, uint64_t seed, const std::vector<int64_t>& only_latents) {
  if (!contexts.defined() || contexts.dim() != 2 || contexts.size(0) < 1 || contexts.size(1) < 2 ||
      contexts.scalar_type() != torch::kLong) {
    return absl::InvalidArgumentError("ablation eval: contexts must be [N >= 1, L >= 2] int64");
  }
  if (config.latents() < 1 || config.eval_contexts() < 1 || config.max_positions() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ablation eval: latents, eval_contexts and max_positions must be >= 1, got ",
                     config.latents(), ", ", config.eval_contexts(), ", ", config.max_positions()));
  }
  for (int64_t latent : only_latents) RETURN_IF_ERROR(CheckLatent(sae, latent));
  ASSIGN_OR_RETURN(HookLocation location, ParseHookName(hook_name, model.config().n_layer));
  // Also validates the hook width against the SAE before any forward pass.
  ASSIGN_OR_RETURN(HookSet spliced,
                   SpliceAt(model, hook_name, sae, SpliceReconstruction(sae, false)));

  torch::NoGradGuard no_grad;
  const torch::Tensor tokens =
      contexts.slice(0, 0, std::min(contexts.size(0), config.eval_contexts()));
  const int64_t n = tokens.size(0), length = tokens.size(1);
  ASSIGN_OR_RETURN(torch::Tensor activations, model.RunToHook(tokens, location));
  // Latent activations at the non-BOS positions: [n, L - 1, n_latents].
  torch::Tensor f = sae.Encode(activations.slice(1, 1).reshape({-1, sae.d_in()}))
                        .reshape({n, length - 1, sae.n_latents()});
  torch::Tensor fires = f > 0;

  std::vector<int64_t> chosen = only_latents;
  if (chosen.empty()) {
    torch::Tensor live = fires.any(0).any(0).nonzero().reshape({-1});
    std::vector<int64_t> candidates(live.data_ptr<int64_t>(),
                                    live.data_ptr<int64_t>() + live.numel());
    // Fisher-Yates with a fixed generator: the same sample on every platform.
    std::mt19937_64 rng(seed);
    for (size_t i = candidates.size(); i > 1; --i) {
      std::swap(candidates[i - 1], candidates[rng() % i]);
    }
    candidates.resize(std::min<size_t>(candidates.size(), config.latents()));
    std::sort(candidates.begin(), candidates.end());
    chosen = candidates;
  }

  AblationSparsity out;
  double sparsity_sum = 0, effect_sum = 0;
  int64_t with_effect = 0;
  for (int64_t latent : chosen) {
    LatentAblation a;
    a.latent = latent;
    // Firing positions (context, position in the context), in order, capped.
    torch::Tensor where = fires.select(2, latent).nonzero();  // [m, 2]: context, position - 1
    where = where.slice(0, 0, std::min<int64_t>(where.size(0), config.max_positions()));
    if (where.size(0) > 0) {
      // Only the contexts involved, with the spliced and the ablated model on
      // the same batch, so that rows the ablation does not touch compute
      // the same bits in both.
      auto [context_ids, inverse] = at::_unique(where.select(1, 0), /*sorted=*/true,
                                                /*return_inverse=*/true);
      torch::Tensor batch = tokens.index_select(0, context_ids);
      ASSIGN_OR_RETURN(HookSet ablated,
                       SpliceAt(model, hook_name, sae,
                                EditLatent(sae, latent, LatentEdit::Zero(), /*keep_error=*/false)));
      ASSIGN_OR_RETURN(torch::Tensor base, model.Forward(batch, spliced));
      ASSIGN_OR_RETURN(torch::Tensor edited, model.Forward(batch, ablated));
      torch::Tensor positions = where.select(1, 1) + 1;
      torch::Tensor v = (edited - base).index({inverse, positions});  // [m, vocab]
      double sparsity = 0, effect = 0;
      for (int64_t r = 0; r < v.size(0); ++r) {
        sparsity += LogitChangeSparsity(v[r]);
        effect += v[r].to(torch::kFloat64).norm().item<double>();
      }
      a.positions = v.size(0);
      a.sparsity = sparsity / static_cast<double>(v.size(0));
      a.effect = effect / static_cast<double>(v.size(0));
    }
    if (a.effect > 0) {
      sparsity_sum += a.sparsity;
      ++with_effect;
    }
    effect_sum += a.effect;
    out.latents.push_back(a);
  }
  out.mean_sparsity = with_effect > 0 ? sparsity_sum / with_effect : 0;
  out.mean_effect = chosen.empty() ? 0 : effect_sum / static_cast<double>(chosen.size());
  return out;
}

}  // namespace saelab
