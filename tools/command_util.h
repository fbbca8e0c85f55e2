// What several `saelab` commands share: evaluating an SAE on activation
// rows into a result entry, and printing metrics the same way everywhere.
#ifndef SAELAB_TOOLS_COMMAND_UTIL_H_
#define SAELAB_TOOLS_COMMAND_UTIL_H_

#include <torch/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "harness/result.pb.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {

// The reconstruction metrics of `sae` on eval_x ([N, d_in] float32) as a
// SaeResult named after the config, with its architecture, n_latents and
// sparsity knob as hyperparameters. Errors as EvaluateReconstruction (a
// width mismatch among them; callers that read a file name it first).
absl::StatusOr<SaeResult> EvaluateToResult(Sae& sae, const SaeConfig& config,
                                           const torch::Tensor& eval_x);

// "  nmse                 0.0851234\n  l0 ..." every metric of `sae`, sorted
// by name, 9 significant digits.
std::string FormatMetrics(const SaeResult& sae);

}  // namespace saelab

#endif  // SAELAB_TOOLS_COMMAND_UTIL_H_
