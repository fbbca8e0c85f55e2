#include "sae/jumprelu.h"

#include <algorithm>
#include <cmath>

#include <ATen/ExpandUtils.h>

namespace saelab {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// K((z - theta) / eps) with K(u) = 1[|u| <= 1/2], in z's dtype.
torch::Tensor RectangleKernel(const torch::Tensor& z, const torch::Tensor& threshold,
                              double bandwidth) {
  return (((z - threshold) / bandwidth).abs() <= 0.5).to(z.scalar_type());
}

// Plain autograd of z * (z > theta) would give theta no gradient at all (the
// mask is piecewise constant), so the jump is differentiated by hand: the
// kernel-density estimate of the expected loss's derivative (paper, Sec. 4).
struct JumpReluFunction : public torch::autograd::Function<JumpReluFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& z,
                               const torch::Tensor& threshold, double bandwidth) {
    ctx->save_for_backward({z, threshold});
    ctx->saved_data["bandwidth"] = bandwidth;
    return z * (z > threshold).to(z.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& z = saved[0];
    const torch::Tensor& threshold = saved[1];
    const double bandwidth = ctx->saved_data["bandwidth"].toDouble();
    const torch::Tensor& grad = grad_outputs[0];
    // Away from the jump JumpReLU is z or 0: its true derivative.
    torch::Tensor grad_z = grad * (z > threshold).to(grad.scalar_type());
    // -(theta / eps) K(.), summed over the batch rows that share theta.
    torch::Tensor grad_threshold =
        at::sum_to(-(threshold / bandwidth) * RectangleKernel(z, threshold, bandwidth) * grad,
                   threshold.sizes());
    return {grad_z, grad_threshold, torch::Tensor()};
  }
};

struct StepFunction : public torch::autograd::Function<StepFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& z,
                               const torch::Tensor& threshold, double bandwidth) {
    ctx->save_for_backward({z, threshold});
    ctx->saved_data["bandwidth"] = bandwidth;
    return (z > threshold).to(z.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& z = saved[0];
    const torch::Tensor& threshold = saved[1];
    const double bandwidth = ctx->saved_data["bandwidth"].toDouble();
    const torch::Tensor& grad = grad_outputs[0];
    torch::Tensor grad_threshold =
        at::sum_to(-(1.0 / bandwidth) * RectangleKernel(z, threshold, bandwidth) * grad,
                   threshold.sizes());
    // The paper gives H no pseudo-derivative in z: L0 is lowered by raising
    // thresholds, not by shrinking pre-activations (which would bring back
    // the shrinkage of L1). An undefined gradient reads as zero.
    return {torch::Tensor(), grad_threshold, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor JumpRelu(const torch::Tensor& z, const torch::Tensor& threshold, double bandwidth) {
  return JumpReluFunction::apply(z, threshold, bandwidth);
}

torch::Tensor JumpReluStep(const torch::Tensor& z, const torch::Tensor& threshold,
                           double bandwidth) {
  return StepFunction::apply(z, threshold, bandwidth);
}

JumpReluSae::JumpReluSae(int64_t d_in, int64_t n_latents, const JumpReluConfig& config,
                         uint64_t seed)
    : Sae(d_in, n_latents), config_(config) {
  torch::NoGradGuard no_grad;
  // Unit-norm random decoder rows, tied encoder, zero biases, theta = 0.001
  // by default: the paper's Appendix I recipe as dictionary_learning codes it
  // (it draws Kaiming-uniform rows and rescales them; we draw isotropic
  // Gaussian directions like TopKSae, which only changes the direction
  // distribution). Equal row norms give every latent the same z scale
  // relative to the shared initial threshold.
  RegisterTiedParameters(seed, /*decoder_row_norm=*/1.0);
  log_threshold = register_parameter(
      "log_threshold", torch::full({n_latents}, std::log(config_.initial_threshold())));
}

torch::Tensor JumpReluSae::EncodeScaled(const torch::Tensor& x) {
  torch::Tensor z = torch::addmm(b_enc, x, W_enc);  // [batch, n]
  return JumpRelu(z, log_threshold.exp(), config_.bandwidth());
}

torch::Tensor JumpReluSae::DecodeScaled(const torch::Tensor& f) {
  return torch::addmm(b_dec, f, W_dec);
}

double JumpReluSae::SparsityCoefficientAt(int64_t step, int64_t total_steps) const {
  double warmup_steps = config_.sparsity_warmup_fraction() * static_cast<double>(total_steps);
  if (warmup_steps <= 0.0) return config_.sparsity_coefficient();
  return config_.sparsity_coefficient() * std::min(1.0, static_cast<double>(step) / warmup_steps);
}

torch::Tensor JumpReluLoss(const torch::Tensor& x, const torch::Tensor& W_enc,
                           const torch::Tensor& b_enc, const torch::Tensor& W_dec,
                           const torch::Tensor& b_dec, const torch::Tensor& log_threshold,
                           const JumpReluLossOptions& options, torch::Tensor* f,
                           torch::Tensor* x_hat, std::map<std::string, torch::Tensor>* terms) {
  torch::Tensor threshold = log_threshold.exp();                     // [n]
  torch::Tensor z = torch::addmm(b_enc, x, W_enc);                   // [batch, n]
  *f = JumpRelu(z, threshold, options.bandwidth);                    // [batch, n]
  *x_hat = torch::addmm(b_dec, *f, W_dec);                           // [batch, d]
  torch::Tensor mse = (x - *x_hat).pow(2).sum(1).mean();             // E||x - x_hat||^2
  torch::Tensor l0 = (z > threshold).sum(1).to(x.scalar_type()).mean().detach();

  torch::Tensor sparsity;
  torch::Tensor pre_act = torch::zeros({}, x.options());
  if (options.variant == JumpReluConfig::ANTHROPIC_2025) {
    torch::Tensor decoder_norms = W_dec.norm(2, {1});                // [n]
    // f >= 0 since theta > 0, so |f_i| = f_i in Anthropic's tanh(c |f_i| ||W_d,i||).
    sparsity = torch::tanh(options.tanh_scale * (*f) * decoder_norms).sum(1).mean();
    // Anthropic applies the pre-activation loss to every latent; SAELens
    // (PR #541) restricts it to latents in the dead mask. We follow
    // Anthropic, so the loss stays a pure function of the batch; its default
    // weight (3e-6, as in both) keeps the pull on live latents small.
    pre_act = (torch::relu(threshold - z) * decoder_norms).sum(1).mean();
  } else {
    // The same forward value as l0, but differentiable in theta.
    sparsity = JumpReluStep(z, threshold, options.bandwidth).sum(1).mean();
  }
  (*terms)["mse"] = mse;
  (*terms)["l0"] = l0;
  (*terms)["sparsity"] = sparsity;
  (*terms)["pre_act"] = pre_act;
  return mse + options.sparsity_coefficient * sparsity + options.pre_act_coefficient * pre_act;
}

TrainOutput JumpReluSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  JumpReluLossOptions options;
  options.variant = config_.variant();
  options.sparsity_coefficient = SparsityCoefficientAt(info.step, info.total_steps);
  options.bandwidth = config_.bandwidth();
  options.tanh_scale = config_.tanh_scale();
  options.pre_act_coefficient =
      config_.variant() == JumpReluConfig::ANTHROPIC_2025 ? config_.pre_act_coefficient() : 0.0;
  TrainOutput out;
  std::map<std::string, torch::Tensor> terms;
  out.loss = JumpReluLoss(x, W_enc, b_enc, W_dec, b_dec, log_threshold, options, &out.f,
                          &out.x_hat, &terms);
  for (const auto& [name, value] : terms) out.terms[name] = value.item<double>();
  out.terms["sparsity_coefficient"] = options.sparsity_coefficient;
  return out;
}

}  // namespace saelab
