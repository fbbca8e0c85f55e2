#include "eval/reconstruction.h"

#include <algorithm>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace saelab {

absl::StatusOr<ReconstructionMetrics> EvaluateReconstruction(
    Sae& sae, const torch::Tensor& eval_x, const ReconstructionEvalConfig& config) {
  const bool paired = sae.is_transcoder();
  const int64_t d = sae.d_in();
  if (eval_x.dim() != 2 || eval_x.size(1) != (paired ? 2 * d : d)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reconstruction eval: activations have shape [", absl::StrJoin(eval_x.sizes(), ", "),
        "] but the SAE's d_in is ", d,
        paired ? absl::StrCat(" and, as a transcoder, it needs paired rows [input | target] of width ",
                              2 * d)
               : std::string()));
  }
  if (eval_x.size(0) == 0) {
    return absl::InvalidArgumentError("reconstruction eval: the evaluation set is empty");
  }
  if (config.batch_size() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("reconstruction eval: batch_size must be >= 1, got ", config.batch_size()));
  }
  ReconstructionMetrics metrics(sae.d_in(), sae.n_latents(), config.density_histogram_bins());
  torch::NoGradGuard no_grad;
  const int64_t rows = eval_x.size(0);
  for (int64_t begin = 0; begin < rows; begin += config.batch_size()) {
    torch::Tensor x = eval_x.slice(0, begin, std::min(begin + config.batch_size(), rows));
    if (paired) {
      // The target is what a transcoder's metrics are of (FVU of the target).
      torch::Tensor input = x.narrow(1, 0, d), target = x.narrow(1, d, d);
      metrics.Add(target, sae.Reconstruct(input), sae.Encode(input));
      continue;
    }
    torch::Tensor f = sae.Encode(x);
    metrics.Add(x, sae.Decode(f), f);
    torch::Tensor f_trained = sae.EncodeAsTrained(x);
    if (f_trained.defined()) metrics.AddTrainingMode(x, sae.Decode(f_trained), f_trained);
  }
  return metrics;
}

}  // namespace saelab
