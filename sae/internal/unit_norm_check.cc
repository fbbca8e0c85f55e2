#include "sae/internal/unit_norm_check.h"

#include <torch/optim/adam.h>

namespace saelab {

::testing::AssertionResult DecoderStaysUnitNormUnderAdam(Sae& sae, int steps,
                                                         const torch::Tensor& dead_mask) {
  torch::optim::Adam adam(sae.parameters(), torch::optim::AdamOptions(1e-2));
  torch::Tensor ones = torch::ones({sae.n_latents()});
  for (int step = 0; step < steps; ++step) {
    TrainStepInfo info;
    info.step = step;
    info.total_steps = steps;
    info.dead_mask = dead_mask;
    TrainOutput out = sae.TrainForward(torch::randn({16, sae.d_in()}), info);
    adam.zero_grad();
    out.loss.backward();
    sae.BeforeOptimizerStep();
    adam.step();
    sae.AfterOptimizerStep();
    if (!torch::allclose(sae.W_dec.norm(2, {1}), ones, 1e-5, 1e-5)) {
      return ::testing::AssertionFailure() << "decoder rows not unit norm after step " << step;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace saelab
