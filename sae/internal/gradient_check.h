// Finite-difference gradient checks for loss functions, in float64.
//
//   auto loss = [&](const std::vector<torch::Tensor>& p) { return F(p[0], p[1]); };
//   GradientCheckResult r = CheckGradients(loss, {W, b}, /*eps=*/1e-6);
//   EXPECT_LT(r.max_abs_error, 1e-7);
#ifndef SAELAB_SAE_INTERNAL_GRADIENT_CHECK_H_
#define SAELAB_SAE_INTERNAL_GRADIENT_CHECK_H_

#include <functional>
#include <vector>

#include <torch/types.h>

namespace saelab {

struct GradientCheckResult {
  double max_abs_error = 0;     // max |autograd - central difference|
  double max_abs_gradient = 0;  // max |central difference|, to show it is not trivially 0
};

// Compares autograd gradients of loss(params) with central differences
// (loss(p + eps e_i) - loss(p - eps e_i)) / 2 eps for every element of every
// float64 parameter. `loss` must return a scalar.
GradientCheckResult CheckGradients(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& loss,
    std::vector<torch::Tensor> params, double eps);

// Autograd gradients of under_test(params) against central differences of
// reference(params): for losses whose gradient is deliberately not the
// derivative of their value (a stop-gradient, a straight-through estimator),
// `reference` is the function whose derivative the gradient should be.
GradientCheckResult CheckGradientsAgainstReference(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& under_test,
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& reference,
    std::vector<torch::Tensor> params, double eps);

}  // namespace saelab

#endif  // SAELAB_SAE_INTERNAL_GRADIENT_CHECK_H_
