#include "sae/jumprelu.h"

#include <ATen/ExpandUtils.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <torch/autograd.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "harness/schedule.h"
#include "sae/kernels/jumprelu_train_step.h"
#include "sae/topk.h"

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
    torch::Tensor grad_threshold = at::sum_to(
        -(1.0 / bandwidth) * RectangleKernel(z, threshold, bandwidth) * grad, threshold.sizes());
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
  // Training to a target starts at the target: no warm-up.
  if (config_.has_target()) return config_.target().coefficient();
  return config_.sparsity_coefficient() *
         LinearWarmupFactor(step,
                            config_.sparsity_warmup_fraction() * static_cast<double>(total_steps));
}

LossOutput JumpReluLoss(const LossInputs& inputs, const JumpReluLossOptions& options) {
  const torch::Tensor& x = inputs.x;
  const torch::Tensor& W_dec = inputs.W_dec;
  torch::Tensor threshold = inputs.Extra("log_threshold").exp();  // [n]
  torch::Tensor z = torch::addmm(inputs.b_enc, x, inputs.W_enc);  // [batch, n]
  LossOutput out;
  out.f = JumpRelu(z, threshold, options.bandwidth);         // [batch, n]
  out.x_hat = torch::addmm(inputs.b_dec, out.f, W_dec);      // [batch, d]
  torch::Tensor mse = (x - out.x_hat).pow(2).sum(1).mean();  // E||x - x_hat||^2
  torch::Tensor l0 = (z > threshold).sum(1).to(x.scalar_type()).mean().detach();

  torch::Tensor sparsity;
  torch::Tensor pre_act = torch::zeros({}, x.options());
  if (options.variant == JumpReluConfig::ANTHROPIC_2025) {
    torch::Tensor decoder_norms = W_dec.norm(2, {1});  // [n]
    // f >= 0 since theta > 0, so |f_i| = f_i in Anthropic's tanh(c |f_i| ||W_d,i||).
    sparsity = torch::tanh(options.tanh_scale * out.f * decoder_norms).sum(1).mean();
    // Anthropic applies the pre-activation loss to every latent; SAELens
    // (PR #541) restricts it to latents in the dead mask. We follow
    // Anthropic, so the loss stays a pure function of the batch; its default
    // weight (3e-6, as in both) keeps the pull on live latents small.
    pre_act = (torch::relu(threshold - z) * decoder_norms).sum(1).mean();
  } else {
    // The same forward value as l0, but differentiable in theta.
    sparsity = JumpReluStep(z, threshold, options.bandwidth).sum(1).mean();
    if (options.target_l0 > 0 && inputs.shard_mean) {
      // Data-parallel: the term squares the whole batch's mean L0 m, the
      // mean of the shards' m_r. Its value at m, and the gradient
      // f'(m) grad m_r, whose mean over the shards is f'(m) grad m.
      const double m = inputs.shard_mean(sparsity.item<double>());
      const double miss = m / options.target_l0 - 1.0;
      sparsity = options.target_scale * miss * miss +
                 (2.0 * options.target_scale * miss / options.target_l0) *
                     (sparsity - sparsity.detach());
    } else if (options.target_l0 > 0) {
      sparsity = options.target_scale * (sparsity / options.target_l0 - 1.0).pow(2);
    }
    if (options.target_l0 > 0) {
      // Anthropic's pre-activation loss on the latents silent on the whole
      // batch (SAELens applies it to the dead ones; a batch is a shorter
      // memory, so it reaches a latent the moment it stops firing): a
      // latent whose z stays under its threshold gets no other gradient.
      if (options.pre_act_coefficient > 0) {
        torch::Tensor fired = (z > threshold).any(0).to(z.dtype()).detach();  // [n]
        // Data-parallel: silent on every shard of the batch.
        if (inputs.shard_sum) fired = inputs.shard_sum(fired);
        torch::Tensor silent = (fired == 0).to(z.dtype());
        torch::Tensor decoder_norms = W_dec.norm(2, {1});  // [n]
        pre_act = (torch::relu(threshold - z) * decoder_norms * silent).sum(1).mean();
      }
    }
  }
  out.loss = mse + options.sparsity_coefficient * sparsity + options.pre_act_coefficient * pre_act;
  out.terms["mse"] = mse;
  out.terms["l0"] = l0;
  out.terms["sparsity"] = sparsity;
  out.terms["pre_act"] = pre_act;
  return out;
}

TrainOutput JumpReluSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  JumpReluLossOptions options;
  options.variant = config_.variant();
  options.sparsity_coefficient = SparsityCoefficientAt(info.step, info.total_steps);
  options.bandwidth = config_.bandwidth();
  options.tanh_scale = config_.tanh_scale();
  options.pre_act_coefficient =
      config_.variant() == JumpReluConfig::ANTHROPIC_2025 ? config_.pre_act_coefficient() : 0.0;
  if (config_.has_target()) {
    options.target_l0 = config_.target().l0();
    options.target_scale = static_cast<double>(d_in_);
    options.bandwidth = config_.target().bandwidth();
    options.pre_act_coefficient = config_.target().silent_pre_act_coefficient();
  }
  TrainOutput out = TrainOutputFrom(JumpReluLoss(LossInputsFor(x, info), options));
  out.terms["sparsity_coefficient"] = options.sparsity_coefficient;
  return out;
}

void JumpReluSae::InitFromSample(const torch::Tensor& x) {
  if (!config_.has_target()) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor z = torch::addmm(b_enc, x, W_enc);  // [samples, n]
  // Each column's ceil(q N)-th smallest value, q = 1 - t / n: about t / n
  // of the sample lies above it. (torch::quantile refuses inputs over 16M
  // elements; kthvalue has no limit.)
  const int64_t samples = z.size(0);
  const double q = 1.0 - config_.target().l0() / static_cast<double>(n_latents_);
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(q * samples)), 1, samples);
  const torch::Tensor theta = std::get<0>(torch::kthvalue(z, k, /*dim=*/0));
  log_threshold.copy_(theta.clamp_min(1e-6).log());
}

JumpReluSae::~JumpReluSae() = default;

bool JumpReluSae::TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                                     TrainOutput* out) {
  // The kernel differentiates the plain L0 term.
  if (!config_.sparse_step() || config_.variant() != JumpReluConfig::STANDARD ||
      config_.has_target()) {
    return false;
  }
  if (!PrepareSparseStep(x, {&W_enc, &b_enc, &W_dec, &b_dec, &log_threshold})) return false;
  torch::NoGradGuard no_grad;
  if (workspace_ == nullptr) workspace_ = std::make_unique<JumpReluTrainStepWorkspace>();
  JumpReluTrainStepOptions options;
  options.bandwidth = config_.bandwidth();
  options.sparsity_coefficient = SparsityCoefficientAt(info.step, info.total_steps);
  const JumpReluTrainStepResult step = JumpReluTrainStep(
      x, {W_enc, b_enc, W_dec, b_dec, log_threshold}, options,
      {W_enc.grad(), b_enc.grad(), W_dec.grad(), b_dec.grad(), log_threshold.grad()},
      workspace_.get());
  if (!step.computed) return false;
  out->x_hat = step.x_hat;
  out->f = torch::Tensor();
  out->fired = step.fired;
  out->loss = torch::tensor(step.loss, torch::kFloat64);
  out->terms = {{"mse", step.mse},
                {"l0", step.l0},
                {"sparsity", step.l0},
                {"pre_act", 0.0},
                {"sparsity_coefficient", options.sparsity_coefficient}};
  return true;
}

namespace {

absl::Status Resolve(int64_t /*d_in*/, SaeConfig* config) {
  const JumpReluConfig& jump = config->jumprelu();
  if (jump.sparsity_coefficient() < 0) {
    return absl::InvalidArgumentError("jumprelu.sparsity_coefficient must be >= 0");
  }
  if (!(jump.bandwidth() > 0)) return absl::InvalidArgumentError("jumprelu.bandwidth must be > 0");
  if (!(jump.initial_threshold() > 0)) {
    return absl::InvalidArgumentError("jumprelu.initial_threshold must be > 0");
  }
  if (jump.has_target()) {
    const JumpReluTargetL0& target = jump.target();
    const double n = static_cast<double>(config->n_latents());
    if (!(target.l0() > 0 && target.l0() < n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "jumprelu.target.l0 must be in (0, n_latents = ", config->n_latents(), "), got ",
          target.l0()));
    }
    if (jump.variant() != JumpReluConfig::STANDARD) {
      return absl::InvalidArgumentError("jumprelu.target is for the STANDARD variant");
    }
    if (!(target.coefficient() >= 0) || !(target.silent_pre_act_coefficient() >= 0)) {
      return absl::InvalidArgumentError(
          "jumprelu.target.coefficient and silent_pre_act_coefficient must be >= 0");
    }
    if (!(target.bandwidth() > 0)) {
      return absl::InvalidArgumentError("jumprelu.target.bandwidth must be > 0");
    }
    // TopK's recipe, which is the paper's 7e-5 at the paper's 131k width.
    FillOptimizerDefaults(TopKLearningRate(config->n_latents()), /*adam_eps=*/1e-8, config);
    return absl::OkStatus();
  }
  // Rajamanoharan et al. train JumpReLU with Adam(0, 0.999) at 7e-5.
  FillOptimizerDefaults(/*lr=*/7e-5, /*adam_eps=*/1e-8, config);
  return absl::OkStatus();
}

// The same exp over the whole [n] tensor that EncodeScaled evaluates, so
// the file holds exactly the thresholds the SAE used.
torch::Tensor ThresholdToSaeLens(const torch::Tensor& log_threshold, int64_t /*n_latents*/) {
  return log_threshold.exp().contiguous();
}

// log_threshold for a SAELens threshold [n] (float32): the float32 whose exp,
// evaluated the way JumpReluSae evaluates it (one exp over the whole [n]
// tensor, so each element takes the same kernel path), is closest to the
// threshold, exactly equal wherever some float32 reaches it. A plain
// log(threshold) is often one ulp off after exp, which would make a
// round trip through the SAELens layout change theta.
torch::Tensor LogThresholdFor(const torch::Tensor& threshold) {
  torch::Tensor best = threshold.to(torch::kFloat64).log().to(torch::kFloat32);
  torch::Tensor best_error = (best.exp() - threshold).abs();
  const torch::Tensor up_limit = torch::full_like(best, std::numeric_limits<float>::infinity());
  const torch::Tensor down_limit = -up_limit;
  torch::Tensor up = best;
  torch::Tensor down = best;
  // exp maps several neighbouring float32s to one value near 0, and skips
  // values for |log| > 1; 8 ulps either side covers both for realistic
  // thresholds.
  for (int step = 0; step < 8; ++step) {
    up = torch::nextafter(up, up_limit);
    down = torch::nextafter(down, down_limit);
    for (const torch::Tensor& candidate : {down, up}) {
      torch::Tensor error = (candidate.exp() - threshold).abs();
      torch::Tensor better = error < best_error;
      best = torch::where(better, candidate, best);
      best_error = torch::where(better, error, best_error);
    }
  }
  return best.contiguous();
}

absl::StatusOr<torch::Tensor> ThresholdFromSaeLens(const torch::Tensor& tensor,
                                                   const std::string& weights_path,
                                                   const std::string& /*config_path*/) {
  absl::StatusOr<torch::Tensor> threshold = SaeLensThreshold(tensor, weights_path);
  if (!threshold.ok()) return threshold.status();
  return LogThresholdFor(*threshold);
}

}  // namespace

const SaeArchitecture& JumpReluArchitecture() {
  static const SaeArchitecture* const architecture = [] {
    auto* row = new SaeArchitecture;
    row->name = "jumprelu";
    row->config_case = SaeConfig::kJumprelu;
    row->resolve = Resolve;
    row->create = [](const SaeConfig& config, int64_t d_in, uint64_t seed) -> std::unique_ptr<Sae> {
      return std::make_unique<JumpReluSae>(d_in, config.n_latents(), config.jumprelu(), seed);
    };
    // In target mode the knob is the target L0 (L0 grows with it), so a
    // sweep's `sparsity` values and a matched-L0 search set the target.
    row->sparsity_knob = [](const SaeConfig& config) {
      return config.jumprelu().has_target() ? config.jumprelu().target().l0()
                                            : config.jumprelu().sparsity_coefficient();
    };
    row->set_sparsity_knob = [](SaeConfig* config, double value) {
      if (config->jumprelu().has_target()) {
        config->mutable_jumprelu()->mutable_target()->set_l0(value);
      } else {
        config->mutable_jumprelu()->set_sparsity_coefficient(value);
      }
    };
    row->sparsity_knob_is_k = false;
    row->sparsity_knob_is_target_l0 = [](const SaeConfig& config) {
      return config.jumprelu().has_target();
    };
    row->saelens.architecture = "jumprelu";
    row->saelens.apply_b_dec_to_input = false;
    row->saelens.imports_foreign_files = true;
    row->saelens.extra_tensors = {
        {"log_threshold", "threshold", ThresholdToSaeLens, ThresholdFromSaeLens}};
    row->saelens.shift_encoder_biases = ShiftBEnc;
    return row;
  }();
  return *architecture;
}

}  // namespace saelab
