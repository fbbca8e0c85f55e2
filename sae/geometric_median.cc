#include "sae/geometric_median.h"

#include <torch/utils.h>

namespace saelab {

torch::Tensor GeometricMedian(const torch::Tensor& points, int64_t iterations) {
  torch::NoGradGuard no_grad;
  torch::Tensor p = points.to(torch::kFloat64);
  torch::Tensor median = p.mean(0);
  for (int64_t i = 0; i < iterations; ++i) {
    // Weiszfeld: weights 1 / distance; the floor keeps a point that
    // coincides with the estimate from dividing by zero.
    torch::Tensor weights = 1.0 / (p - median).norm(2, {1}).clamp_min(1e-8);  // [n]
    torch::Tensor next = (weights.unsqueeze(1) * p).sum(0) / weights.sum();
    double moved = (next - median).norm().item<double>();
    median = next;
    if (moved < 1e-10) break;
  }
  return median.to(torch::kFloat32);
}

}  // namespace saelab
