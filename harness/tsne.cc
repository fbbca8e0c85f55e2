#include "harness/tsne.h"

#include <algorithm>
#include <cmath>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"

namespace saelab {

absl::StatusOr<torch::Tensor> ConditionalAffinities(const torch::Tensor& squared_distances,
                                                    double perplexity) {
  const torch::Tensor& d = squared_distances;
  if (d.dim() != 2 || d.size(0) != d.size(1) || d.scalar_type() != torch::kFloat64) {
    return absl::InvalidArgumentError("t-SNE: squared distances must be a square float64 matrix");
  }
  const int64_t n = d.size(0);
  if (n < 2 || !(perplexity > 1) || perplexity > n - 1) {
    return absl::InvalidArgumentError(absl::StrCat("t-SNE: perplexity ", perplexity,
                                                   " must be in (1, n - 1] for n = ", n));
  }
  torch::NoGradGuard no_grad;
  const double target = std::log(perplexity);
  const torch::Tensor off_diagonal = torch::eye(n, torch::kFloat64).logical_not();
  // Shift each row by its smallest off-diagonal distance: exp never
  // underflows to all zeros, and the row's normalised P is unchanged.
  const torch::Tensor shifted =
      d - d.masked_fill(off_diagonal.logical_not(), INFINITY).amin(1, /*keepdim=*/true);
  torch::Tensor beta = torch::ones({n, 1}, torch::kFloat64);
  torch::Tensor low = torch::zeros({n, 1}, torch::kFloat64);
  torch::Tensor high = torch::full({n, 1}, INFINITY, torch::kFloat64);
  torch::Tensor p;
  for (int iteration = 0; iteration < 200; ++iteration) {
    p = torch::exp(-shifted * beta) * off_diagonal;
    const torch::Tensor sum = p.sum(1, /*keepdim=*/true);
    // H = log sum + beta * E[d]: the entropy of the normalised row.
    const torch::Tensor entropy = torch::log(sum) + beta * (shifted * p).sum(1, true) / sum;
    const torch::Tensor too_flat = entropy > target;  // raise beta
    if ((entropy - target).abs().max().item<double>() < 1e-5) break;
    low = torch::where(too_flat, beta, low);
    high = torch::where(too_flat, high, beta);
    beta = torch::where(torch::isinf(high), beta * 2, (low + high) / 2);
  }
  return p / p.sum(1, /*keepdim=*/true);
}

absl::StatusOr<torch::Tensor> Tsne(const torch::Tensor& squared_distances,
                                   const TsneOptions& options) {
  ASSIGN_OR_RETURN(torch::Tensor conditional,
                   ConditionalAffinities(squared_distances, options.perplexity));
  torch::NoGradGuard no_grad;
  const int64_t n = conditional.size(0);
  const torch::Tensor p =
      ((conditional + conditional.t()) / (2.0 * n)).clamp_min(1e-12).fill_diagonal_(0);
  const double rate = options.learning_rate > 0
                          ? options.learning_rate
                          : std::max(n / options.early_exaggeration / 4.0, 50.0);
  auto generator = at::detail::createCPUGenerator(options.seed);
  torch::Tensor y = at::randn({n, 2}, generator, torch::kFloat64) * 1e-4;
  torch::Tensor velocity = torch::zeros_like(y);
  torch::Tensor gains = torch::ones_like(y);
  for (int iteration = 0; iteration < options.iterations; ++iteration) {
    const bool exaggerating = iteration < options.exaggeration_iterations;
    const double momentum = exaggerating ? 0.5 : 0.8;
    const torch::Tensor sq = (y * y).sum(1, /*keepdim=*/true);
    // Student-t kernel 1 / (1 + |y_i - y_j|^2), zero on the diagonal.
    const torch::Tensor kernel =
        (1.0 / (1.0 + (sq + sq.t() - 2.0 * y.mm(y.t())).clamp_min(0))).fill_diagonal_(0);
    const torch::Tensor q = (kernel / kernel.sum()).clamp_min(1e-12);
    const torch::Tensor pq = ((exaggerating ? options.early_exaggeration : 1.0) * p - q) * kernel;
    // dKL/dy_i = 4 sum_j pq_ij (y_i - y_j).
    const torch::Tensor gradient = 4.0 * (pq.sum(1, /*keepdim=*/true) * y - pq.mm(y));
    // Gains grow where the gradient keeps its sign against the velocity.
    const torch::Tensor same_sign = (gradient > 0) == (velocity > 0);
    gains = torch::where(same_sign, gains * 0.8, gains + 0.2).clamp_min(0.01);
    velocity = momentum * velocity - rate * gains * gradient;
    y = y + velocity;
    y = y - y.mean(0, /*keepdim=*/true);
  }
  return y;
}

}  // namespace saelab
