// Checks an architecture's sparse step (Sae::TrainStepGradients) against
// its dense path (TrainForward + backward) on one batch, in float32: the
// loss, the named terms, `fired` and every parameter's gradient. Test-only.
//
//   ExpectSparseStepMatchesDensePath(sae, x, info, {"mse", "l1"});
#ifndef SAELAB_SAE_INTERNAL_SPARSE_STEP_CHECK_H_
#define SAELAB_SAE_INTERNAL_SPARSE_STEP_CHECK_H_

#include <string>
#include <vector>

#include <torch/types.h>

#include "sae/sae.h"

namespace saelab {

// Runs sae.TrainStepGradients (which must accept the batch), then
// TrainForward + backward on the same parameters, and expects: the losses
// and each term within 1e-5 relative, the sparse step's `fired` equal to the
// dense f's firing latents, and each gradient within 1e-4 of the dense
// gradient's largest element.
void ExpectSparseStepMatchesDensePath(Sae& sae, const torch::Tensor& x, const TrainStepInfo& info,
                                      const std::vector<std::string>& terms);

}  // namespace saelab

#endif  // SAELAB_SAE_INTERNAL_SPARSE_STEP_CHECK_H_
