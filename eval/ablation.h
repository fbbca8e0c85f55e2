// Ablation sparsity (Gao et al. 2024, "Scaling and evaluating sparse
// autoencoders"): how narrowly a latent acts on the model's output. With the
// SAE's reconstruction spliced in (no error term), zero latent i and take the
// change v = logits(ablated) - logits(spliced) of the next-token logits at
// each non-BOS position where latent i fired; the per-position sparsity is
// (||v||_1 / ||v||_2)^2 / vocab, which is 1/vocab when one logit moves and 1
// when all move equally. A latent's value is the mean over its positions;
// the SAE's is the mean over the sampled latents. docs/metrics.md.
//
//   ASSIGN_OR_RETURN(AblationSparsity a,
//                    EvaluateAblationSparsity(model, hook_name, sae, val_contexts, config, seed));
//   a.WriteTo(sae_result);   // ablation_sparsity, ablation_effect, ablation_latents
#ifndef SAELAB_EVAL_ABLATION_H_
#define SAELAB_EVAL_ABLATION_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "eval/eval_config.pb.h"
#include "harness/result.pb.h"
#include "sae/sae.h"

namespace saelab {

struct LatentAblation {
  int64_t latent = 0;
  int64_t positions = 0;  // firing positions measured
  // Mean over those positions of (||v||_1 / ||v||_2)^2 / vocab; 0 when every
  // v is 0 (the latent changes nothing).
  double sparsity = 0;
  // Mean over those positions of ||v||_2 (logit units): the size of the effect.
  double effect = 0;
};

struct AblationSparsity {
  std::vector<LatentAblation> latents;
  double mean_sparsity = 0;  // over latents whose effect is non-zero
  double mean_effect = 0;    // over all sampled latents

  // metrics: ablation_sparsity, ablation_effect, ablation_latents.
  void WriteTo(SaeResult* result) const;
};

// The latents sampled (seeded by `seed`) are among those that fire at a
// non-BOS position of the first config.eval_contexts() contexts. contexts:
// [N, L] int64 starting with BOS. Errors: as SpliceAt (unknown hook, d_in
// mismatch); InvalidArgument for bad contexts or config values < 1, or
// `only_latents` entries out of range.
// `only_latents` (may be empty): measure exactly these latents instead of a
// sample (they need not be live; a latent that never fires gets 0 positions).
absl::StatusOr<AblationSparsity> EvaluateAblationSparsity(
    const Gpt2Model& model, const std::string& hook_name, Sae& sae, const torch::Tensor& contexts,
    const AblationEvalConfig& config, uint64_t seed, const std::vector<int64_t>& only_latents = {});

// (||v||_1 / ||v||_2)^2 / v.size(0) for one logit change v [vocab]; 0 for v = 0.
double LogitChangeSparsity(const torch::Tensor& v);

}  // namespace saelab

#endif  // SAELAB_EVAL_ABLATION_H_
