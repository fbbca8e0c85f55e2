// Reconstruction evaluation: an SAE's metrics on held-out activations, the
// first evaluation every SAE experiment reports (docs/metrics.md defines
// each number and names the test that pins it).
//
//   ReconstructionEvalConfig config;               // defaults: batch 4096, 20 bins
//   ASSIGN_OR_RETURN(ReconstructionMetrics metrics,
//                    EvaluateReconstruction(sae, eval_x, config));   // eval_x [N, d_in]
//   metrics.WriteTo(sae_result);                   // nmse, fvu, l0, dead_fraction, ...
#ifndef SAELAB_EVAL_RECONSTRUCTION_H_
#define SAELAB_EVAL_RECONSTRUCTION_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "eval/eval_config.pb.h"
#include "sae/metrics.h"
#include "sae/sae.h"

namespace saelab {

// Encodes and decodes every row of eval_x ([N, d_in] float32, model units)
// in batches of config.batch_size() without autograd, and accumulates the
// reconstruction metrics over the whole set (never averaged per batch, so
// the result does not depend on the batch size beyond float64 rounding).
// For an SAE whose training code differs from its inference code
// (BatchTopK), each batch is also encoded as in training
// (Sae::EncodeAsTrained) for nmse_training_mode and l0_training_mode;
// those two do depend on the batch size, as training's code does.
// A transcoder (sae.is_transcoder()) reads paired rows [input | target]
// ([N, 2 d_in]) and its metrics are of the target against Reconstruct(input):
// nmse and fvu of the target, as Dunefsky et al. and sparsify report them.
// InvalidArgument, naming both sizes, when eval_x is not 2-D with
// d_in == sae.d_in() (2 d_in for a transcoder), when N == 0, or when
// batch_size < 1.
absl::StatusOr<ReconstructionMetrics> EvaluateReconstruction(
    Sae& sae, const torch::Tensor& eval_x, const ReconstructionEvalConfig& config = {});

}  // namespace saelab

#endif  // SAELAB_EVAL_RECONSTRUCTION_H_
