// JumpReLU SAE: Rajamanoharan et al. (Google DeepMind, 2024), "Jumping
// Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse
// Autoencoders", as in docs/design.md; optionally with Anthropic's January-2025
// training loss ("Circuits Updates - January 2025", transformer-circuits.pub).
//
//   z = W_enc^T x + b_enc                       (x scaled: E||x|| = sqrt(d))
//   f = JumpReLU_theta(z) = z * H(z - theta)    (theta = exp(log_threshold) > 0)
//   x_hat = W_dec^T f + b_dec
//
// STANDARD (the paper's):
//   loss = E ||x - x_hat||^2 + lambda_t * E sum_i H(z_i - theta_i)       (L0)
// ANTHROPIC_2025:
//   loss = E ||x - x_hat||^2
//        + lambda_t * E sum_i tanh(c * f_i * ||W_dec[i, :]||)
//        + lambda_P * E sum_i ReLU(theta_i - z_i) * ||W_dec[i, :]||
// (E = mean over the batch, c = tanh_scale, lambda_P = pre_act_coefficient.)
//
// H has zero derivative almost everywhere, so theta is trained through
// straight-through pseudo-derivatives with a rectangle kernel
// K(u) = 1[|u| <= 1/2] of bandwidth eps:
//   d JumpReLU/d z     = H(z - theta)                  (the true derivative)
//   d JumpReLU/d theta = -(theta / eps) K((z - theta) / eps)
//   d H/d z            = 0
//   d H/d theta        = -(1 / eps) K((z - theta) / eps)
// The chain rule through theta = exp(log_threshold) is ordinary autograd.
// So under STANDARD the L0 term trains theta only; the encoder learns from
// the reconstruction alone. Under ANTHROPIC_2025 the tanh penalty reaches
// W_enc, b_enc and W_dec through f, and the pre-activation term gives a
// latent that never fires a gradient pulling z up and theta down.
//
// Where we differ from the sources:
// - ANTHROPIC_2025 takes only the loss of Anthropic's post. Its other
//   changes (its init of W_enc/W_dec/b_enc, its bandwidth and initial
//   threshold) are not implemented; set bandwidth and initial_threshold in
//   the config. The post writes d JumpReLU/d t as -(exp(t)/eps) K(.), the
//   paper's derivative in theta; we apply the chain rule through exp (an
//   extra factor theta), as DeepMind's reference code does for log_threshold.
// - The pre-activation loss covers every latent (Anthropic); SAELens applies
//   it to dead latents only.
// - SAELens (PR #718) trains theta directly because under Adam a
//   log parameter moves theta by only ~theta * lr per step; we keep the
//   paper's log parameterisation (docs/design.md) and note that small initial
//   thresholds need a learning rate or bandwidth to match.
//
// With config.target (JumpReluTargetL0, sae_config.proto), STANDARD trains
// to an L0 directly: coefficient * d_in * (L0 / l0 - 1)^2 in place of the
// L0 term, thresholds initialised at the quantile that starts L0 at the
// target (InitFromSample), and the pre-activation loss on latents silent on
// the batch; no warm-up, the dense step.
//
// lambda_t warms up linearly from 0 to sparsity_coefficient over the first
// sparsity_warmup_fraction of steps. Init: decoder rows are random unit
// directions, W_enc = W_dec^T, b_enc = b_dec = 0, theta = initial_threshold
// everywhere. The decoder is not constrained during training: L0 does not
// care about decoder norms, and the ANTHROPIC_2025 penalties weight by them.
//
//   JumpReluSae sae(/*d_in=*/64, /*n_latents=*/512, config.jumprelu(), seed);
//   TrainOutput out = sae.TrainForward(x, {step, total_steps});
//   out.loss.backward();   // log_threshold.grad() holds the pseudo-gradient
//   torch::Tensor f = sae.EncodeScaled(x);   // [batch, n]; f_i = z_i or 0
#ifndef SAELAB_SAE_JUMPRELU_H_
#define SAELAB_SAE_JUMPRELU_H_

#include <cstdint>
#include <memory>
#include <string>

#include "sae/architecture.h"
#include "sae/sae_config.pb.h"
#include "sae/sae.h"

namespace saelab {

class JumpReluTrainStepWorkspace;  // sae/kernels/jumprelu_train_step.h

class JumpReluSae : public Sae {
 public:
  // config.initial_threshold and config.bandwidth must be > 0 (checked by
  // the caller, as for the other architectures' configs).
  JumpReluSae(int64_t d_in, int64_t n_latents, const JumpReluConfig& config, uint64_t seed);

  std::string architecture() const override { return "jumprelu"; }

  // f = z * 1[z > theta], z = x W_enc + b_enc. x: [batch, d_in] scaled.
  // Returns [batch, n_latents]; every non-zero entry equals its z exactly.
  torch::Tensor EncodeScaled(const torch::Tensor& x) override;
  // f W_dec + b_dec: [batch, d_in] from f [batch, n_latents].
  torch::Tensor DecodeScaled(const torch::Tensor& f) override;
  // terms: "mse" (E||x - x_hat||^2), "l0" (E number of firing latents),
  // "sparsity" (the penalty lambda_t multiplies: L0 under STANDARD, the tanh
  // sum under ANTHROPIC_2025), "pre_act" (0 under STANDARD),
  // "sparsity_coefficient" (lambda_t this step).
  TrainOutput TrainForward(const torch::Tensor& x, const TrainStepInfo& info) override;
  // The sparse step (config sparse_step, STANDARD only), with the same
  // terms as TrainForward (f undefined, fired set); false on a batch too
  // dense for it, or where it does not apply.
  bool TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                          TrainOutput* out) override;
  // With config.target: each threshold at its latent's (1 - target.l0 / n)
  // quantile of z over the sample (at least 1e-6).
  void InitFromSample(const torch::Tensor& x) override;
  ~JumpReluSae() override;

  // lambda at `step` of `total_steps` (the warm-up schedule; with
  // config.target, target.coefficient throughout).
  double SparsityCoefficientAt(int64_t step, int64_t total_steps) const;

  // theta = exp(log_threshold), [n_latents], detached.
  torch::Tensor Threshold() const { return log_threshold.detach().exp(); }

  // Registered as "log_threshold": thresholds stay positive under any
  // optimiser step. (SAELens files store `threshold` = exp(log_threshold).)
  torch::Tensor log_threshold;  // [n_latents]

 private:
  JumpReluConfig config_;
  std::unique_ptr<JumpReluTrainStepWorkspace> workspace_;
};

// JumpReLU_theta(z) = z * H(z - theta) with the pseudo-derivatives above.
// z: [batch, n]; threshold: [n] (> 0). Returns [batch, n].
torch::Tensor JumpRelu(const torch::Tensor& z, const torch::Tensor& threshold, double bandwidth);

// H(z - theta) (1 where z > theta, else 0) with d/dz = 0 and the rectangle
// pseudo-derivative for theta. Shapes as JumpRelu.
torch::Tensor JumpReluStep(const torch::Tensor& z, const torch::Tensor& threshold,
                           double bandwidth);

// The knobs of JumpReluLoss for one step.
struct JumpReluLossOptions {
  JumpReluConfig::Variant variant = JumpReluConfig::STANDARD;
  double sparsity_coefficient = 0.0;  // lambda_t (after warm-up)
  double bandwidth = 0.001;           // eps, the kernel width
  double tanh_scale = 4.0;            // c; ANTHROPIC_2025 only
  double pre_act_coefficient = 0.0;   // lambda_P; ANTHROPIC_2025 only
  // STANDARD: > 0 replaces the L0 term by target_scale * (L0 / target_l0 - 1)^2,
  // and pre_act_coefficient then weighs the pre-activation loss over the
  // latents that fire on no token of the batch.
  double target_l0 = 0.0;
  double target_scale = 1.0;
};

// The JumpReluSae loss as a pure function (the single definition
// TrainForward uses; tests differentiate it). inputs.extra holds
// "log_threshold" [n]; any one float dtype. Returns the scalar loss, f
// [batch, n], x_hat [batch, d] and terms "mse", "l0" (detached), "sparsity"
// and "pre_act" (undetached).
LossOutput JumpReluLoss(const LossInputs& inputs, const JumpReluLossOptions& options);

// The architecture table's row (sae/architecture.h): lr 7e-5 (the paper's
// Adam recipe), adam_eps 1e-8; SAELens "jumprelu", which encodes x
// (apply_b_dec_to_input false), with `threshold` = exp(log_threshold).
// Imported thresholds become the float32 log_threshold whose exp, evaluated
// as EncodeScaled does, is nearest to them (exactly equal wherever a
// float32 reaches them, so files saelab wrote round-trip bit for bit);
// thresholds <= 0 become theta = 0 (log_threshold = -inf).
const SaeArchitecture& JumpReluArchitecture();

}  // namespace saelab

#endif  // SAELAB_SAE_JUMPRELU_H_
