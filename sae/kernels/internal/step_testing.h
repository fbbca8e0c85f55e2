// What the sparse training-step kernel tests share: a random problem drawn
// the same way for every kernel, NaN-filled gradient buffers (a kernel must
// overwrite every element), the comparison with a float64 autograd
// reference, and the one-vs-two-thread bit check. Test-only.
//
//   const StepProblem p = RandomStepProblem(/*batch=*/96, /*d=*/24, /*n=*/300, /*seed=*/1);
//   std::vector<torch::Tensor> grads = NanGradients(p);
//   ... run the kernel into grads, the reference on Float64Leaves(p) ...
//   ExpectGradientsNear(grads, reference_grads, 2e-5, "plain");
#ifndef SAELAB_SAE_KERNELS_INTERNAL_STEP_TESTING_H_
#define SAELAB_SAE_KERNELS_INTERNAL_STEP_TESTING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace saelab {

struct StepProblem {
  torch::Tensor x;                         // [batch, d]
  torch::Tensor W_enc, b_enc, W_dec, b_dec;  // [d, n], [n], [n, d], [d]
};

// x ~ N(0, 1), its first hot_rows rows times 4; unit-norm Gaussian decoder
// rows; W_enc = W_dec^T + N(0, 0.1^2) (so codes resemble a trained SAE's);
// b_enc ~ N(0, 0.1^2) + bias_shift; b_dec ~ N(0, 0.1^2). float32.
StepProblem RandomStepProblem(int64_t batch, int64_t d, int64_t n, uint64_t seed,
                              double bias_shift = 0.0, int64_t hot_rows = 0);

// W_enc, b_enc, W_dec, b_dec as float64 leaves that require grad.
std::vector<torch::Tensor> Float64Leaves(const StepProblem& p);

// Gradient buffers of W_enc, b_enc, W_dec, b_dec's shapes, filled with NaN.
std::vector<torch::Tensor> NanGradients(const StepProblem& p);

// Expects max |got - want| < tolerance * max |want| for each of the four
// gradients (in W_enc, b_enc, W_dec, b_dec order), and a non-zero want.
void ExpectGradientsNear(const std::vector<torch::Tensor>& got,
                         const std::vector<torch::Tensor>& want, double tolerance,
                         const std::string& label);

struct StepBits {
  double loss = 0;
  std::vector<torch::Tensor> grads;
};

// Runs `step` on one intra-op thread, then on two, and expects the same
// loss and gradient bits; restores the thread count.
void ExpectSameBitsOnOneAndTwoThreads(const std::function<StepBits()>& step);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_INTERNAL_STEP_TESTING_H_
