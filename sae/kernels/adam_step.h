// torch::optim::Adam's step, fused: one pass over each parameter that reads
// p, grad, exp_avg and exp_avg_sq and writes p, exp_avg and exp_avg_sq in
// place, where LibTorch's step makes about eight passes and allocates two
// parameter-sized temporaries (its denominator) per parameter per step,
// which glibc maps afresh for tensors over 32 MB (page faults every step).
//
// The state lives in the Adam object as LibTorch keeps it (AdamParamState:
// step, exp_avg, exp_avg_sq), so checkpoints (harness/optimizer_state.h)
// and a resume with either step read the same state. The update is
// LibTorch's, element by element in float32:
//   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2,
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// equal to Adam::step within float32 rounding (not bit for bit: LibTorch's
// vectorised kernels round some products differently). Elements are
// independent, so the bits do not depend on the thread count.
//
//   torch::optim::Adam adam(params, options);
//   ...backward...
//   FusedAdamStep(adam);   // instead of adam.step()
#ifndef SAELAB_SAE_KERNELS_ADAM_STEP_H_
#define SAELAB_SAE_KERNELS_ADAM_STEP_H_

#include <torch/optim/adam.h>

namespace saelab {

// Steps every parameter of every group that has a gradient. Groups with
// weight decay or AMSGrad, and parameters that are not contiguous float32
// CPU tensors, are stepped by LibTorch's own code instead (same result).
void FusedAdamStep(torch::optim::Adam& adam);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_ADAM_STEP_H_
