#include "tools/command_util.h"

#include <map>

#include "absl/strings/str_format.h"
#include "eval/reconstruction.h"
#include "harness/status_macros.h"
#include "sae/factory.h"

namespace saelab {

absl::StatusOr<SaeResult> EvaluateToResult(Sae& sae, const SaeConfig& config,
                                           const torch::Tensor& eval_x) {
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(ReconstructionMetrics metrics, EvaluateReconstruction(sae, eval_x));
  SaeResult result;
  result.set_name(config.name());
  result.set_architecture(sae.architecture());
  metrics.WriteTo(&result);
  (*result.mutable_hyperparameters())["n_latents"] = static_cast<double>(config.n_latents());
  (*result.mutable_hyperparameters())[SparsityKnobIsK(config) ? "k" : "sparsity_coefficient"] =
      SparsityKnob(config);
  return result;
}

std::string FormatMetrics(const SaeResult& sae) {
  std::map<std::string, double> sorted(sae.metrics().begin(), sae.metrics().end());
  std::string out;
  for (const auto& [name, value] : sorted) {
    absl::StrAppendFormat(&out, "  %-28s %.9g\n", name, value);
  }
  return out;
}

}  // namespace saelab
