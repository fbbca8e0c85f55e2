#include "sae/internal/gradient_check.h"

#include <algorithm>
#include <cmath>
#include <torch/autograd.h>
#include <torch/utils.h>

namespace saelab {

GradientCheckResult CheckGradients(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& loss,
    std::vector<torch::Tensor> params, double eps) {
  return CheckGradientsAgainstReference(loss, loss, std::move(params), eps);
}

GradientCheckResult CheckGradientsAgainstReference(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& under_test,
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& reference,
    std::vector<torch::Tensor> params, double eps) {
  for (auto& p : params) p = p.detach().clone().to(torch::kFloat64).requires_grad_(true);
  torch::Tensor value = under_test(params);
  std::vector<torch::Tensor> analytic = torch::autograd::grad({value}, params, {}, false, false,
                                                              /*allow_unused=*/true);
  GradientCheckResult result;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    torch::Tensor flat = params[i].view(-1);
    torch::Tensor grad = analytic[i].defined() ? analytic[i].reshape(-1)
                                               : torch::zeros_like(flat);
    for (int64_t j = 0; j < flat.numel(); ++j) {
      double original = flat[j].item<double>();
      flat[j] = original + eps;
      double plus = reference(params).item<double>();
      flat[j] = original - eps;
      double minus = reference(params).item<double>();
      flat[j] = original;
      double numeric = (plus - minus) / (2 * eps);
      result.max_abs_gradient = std::max(result.max_abs_gradient, std::fabs(numeric));
      result.max_abs_error =
          std::max(result.max_abs_error, std::fabs(numeric - grad[j].item<double>()));
    }
  }
  return result;
}

}  // namespace saelab
