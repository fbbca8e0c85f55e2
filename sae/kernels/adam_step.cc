#include "sae/kernels/adam_step.h"

#include <cmath>
#include <memory>

#include "harness/parallel_for.h"

namespace saelab {
namespace {

// Elements per task: the update is memory-bound, a few cache lines each.
constexpr int64_t kGrain = 1 << 14;

bool Fusable(const torch::Tensor& p) {
  return p.device().is_cpu() && p.scalar_type() == torch::kFloat && p.is_contiguous() &&
         p.grad().defined() && p.grad().is_contiguous() &&
         p.grad().scalar_type() == torch::kFloat;
}

// LibTorch's Adam::step for one parameter (torch/csrc/api/src/optim/adam.cpp,
// without weight decay and AMSGrad), for what FusedAdamStep cannot fuse.
void ReferenceStep(torch::Tensor& p, torch::optim::AdamParamState& state,
                   const torch::optim::AdamOptions& options) {
  torch::NoGradGuard no_grad;
  const auto [beta1, beta2] = options.betas();
  const torch::Tensor grad = p.grad();
  const double bias_correction1 = 1 - std::pow(beta1, state.step());
  const double bias_correction2 = 1 - std::pow(beta2, state.step());
  state.exp_avg().mul_(beta1).add_(grad, 1 - beta1);
  state.exp_avg_sq().mul_(beta2).addcmul_(grad, grad, 1 - beta2);
  const torch::Tensor denom =
      (state.exp_avg_sq().sqrt() / std::sqrt(bias_correction2)).add_(options.eps());
  p.addcdiv_(state.exp_avg(), denom, -options.lr() / bias_correction1);
}

}  // namespace

void FusedAdamStep(torch::optim::Adam& adam) {
  bool unfusable_group = false;
  for (auto& group : adam.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (options.weight_decay() != 0 || options.amsgrad()) unfusable_group = true;
  }
  if (unfusable_group) {
    adam.step();
    return;
  }
  for (auto& group : adam.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (torch::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      // The state as Adam::step creates it on a parameter's first step.
      auto& slot = adam.state()[c10::guts::to_string(p.unsafeGetTensorImpl())];
      if (slot == nullptr) {
        auto state = std::make_unique<torch::optim::AdamParamState>();
        state->step(0);
        state->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(state);
      }
      auto& state = static_cast<torch::optim::AdamParamState&>(*slot);
      state.step(state.step() + 1);
      if (!Fusable(p) || !state.exp_avg().is_contiguous() || !state.exp_avg_sq().is_contiguous()) {
        ReferenceStep(p, state, options);
        continue;
      }
      const auto [beta1, beta2] = options.betas();
      const double bias_correction1 = 1 - std::pow(beta1, state.step());
      const double bias_correction2 = 1 - std::pow(beta2, state.step());
      // Scalars rounded to float once, as LibTorch's float kernels take them.
      const float b1 = static_cast<float>(beta1), one_minus_b1 = static_cast<float>(1 - beta1);
      const float b2 = static_cast<float>(beta2), one_minus_b2 = static_cast<float>(1 - beta2);
      const float sqrt_bc2 = static_cast<float>(std::sqrt(bias_correction2));
      const float eps = static_cast<float>(options.eps());
      const float step_size = static_cast<float>(options.lr() / bias_correction1);
      float* w = p.data_ptr<float>();
      const float* g = p.grad().data_ptr<float>();
      float* m = state.exp_avg().data_ptr<float>();
      float* v = state.exp_avg_sq().data_ptr<float>();
      ParallelFor(0, p.numel(), kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const float gi = g[i];
          const float mi = m[i] * b1 + one_minus_b1 * gi;
          const float vi = v[i] * b2 + one_minus_b2 * (gi * gi);
          m[i] = mi;
          v[i] = vi;
          w[i] -= step_size * (mi / (std::sqrt(vi) / sqrt_bc2 + eps));
        }
      });
    }
  }
}

}  // namespace saelab
