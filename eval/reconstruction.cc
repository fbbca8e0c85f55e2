#include "eval/reconstruction.h"

#include <algorithm>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace saelab {

absl::StatusOr<ReconstructionMetrics> EvaluateReconstruction(
    Sae& sae, const torch::Tensor& eval_x, const ReconstructionEvalConfig& config) {
  if (eval_x.dim() != 2 || eval_x.size(1) != sae.d_in()) {
    return absl::InvalidArgumentError(absl::StrCat("reconstruction eval: activations have shape [",
                                                   absl::StrJoin(eval_x.sizes(), ", "),
                                                   "] but the SAE's d_in is ", sae.d_in()));
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
    torch::Tensor f = sae.Encode(x);
    metrics.Add(x, sae.Decode(f), f);
  }
  return metrics;
}

}  // namespace saelab
