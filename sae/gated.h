// Gated SAE: Rajamanoharan et al., "Improving Dictionary Learning with Gated
// Sparse Autoencoders" (Google DeepMind, 2024), as in docs/design.md.
//
// The encoder separates *which* latents fire (the gate) from *how much* (the
// magnitude), so the L1 penalty only touches the gate and does not shrink
// the magnitudes:
//
//   pi_gate = (x - b_dec) W_gate + b_gate              W_gate = W_enc [d, n]
//   pi_mag  = (x - b_dec) (W_gate * exp(r_mag)) + b_mag  (r_mag scales column i)
//   f = 1[pi_gate > 0] * ReLU(pi_mag)
//   x_hat = f W_dec + b_dec
//   loss = E ||x - x_hat||^2 + lambda_t E ||ReLU(pi_gate)||_1
//          + E ||x - (ReLU(pi_gate) sg(W_dec) + sg(b_dec))||^2
//
// sg = stop-gradient: the auxiliary term reconstructs x from the gate alone
// through a frozen copy of the decoder, which is the only thing that trains
// the gate's direction to detect features (the Heaviside passes no
// gradient). The decoder still receives gradient from the main term. As in
// the paper, x - b_dec in the encoder uses the live b_dec, so b_dec gets
// gradient from the encoder side of every term; only its decoder
// occurrence in the auxiliary term is frozen.
//
// Decoder rows have unit norm (the paper's constraint, which is what makes
// a plain L1 on ReLU(pi_gate) meaningful): the gradient component along
// each row is removed before the optimiser step and rows are renormalised
// after. lambda_t warms up linearly from 0 over l1_warmup_fraction of steps.
// Init: random unit decoder rows, W_gate = W_dec^T, r_mag = b_gate = b_mag =
// b_dec = 0.
//
// Stored tensors: W_enc (= W_gate), b_enc (= b_gate; the base name, so the
// SAELens export can map it), r_mag, b_mag, W_dec, b_dec, input_scale.
//
//   GatedSae sae(d_in, n_latents, config.gated(), seed);
//   torch::Tensor f = sae.EncodeScaled(x);   // [batch, n]
#ifndef SAELAB_SAE_GATED_H_
#define SAELAB_SAE_GATED_H_

#include <cstdint>

#include <memory>

#include "sae/architecture.h"
#include "sae/sae_config.pb.h"
#include "sae/sae.h"

namespace saelab {

class GatedTrainStepWorkspace;

class GatedSae : public Sae {
 public:
  GatedSae(int64_t d_in, int64_t n_latents, const GatedConfig& config, uint64_t seed);

  std::string architecture() const override { return "gated"; }

  // f = 1[pi_gate > 0] * ReLU(pi_mag). x: [batch, d_in] scaled.
  torch::Tensor EncodeScaled(const torch::Tensor& x) override;
  torch::Tensor DecodeScaled(const torch::Tensor& f) override;
  // terms: "mse" (E||x - x_hat||^2), "l1" (E||ReLU(pi_gate)||_1), "aux" (the
  // frozen-decoder reconstruction error of the gate), "l1_coefficient"
  // (lambda_t this step).
  TrainOutput TrainForward(const torch::Tensor& x, const TrainStepInfo& info) override;
  // The sparse step (config sparse_step; sae/kernels/gated_train_step.h),
  // with TrainForward's terms (f undefined, fired set); false on a batch
  // with too many open gates for it, as early in training.
  bool TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                          TrainOutput* out) override;
  ~GatedSae() override;

  void BeforeOptimizerStep() override;
  void AfterOptimizerStep() override;

  // lambda at `step` of `total_steps` (the warm-up schedule).
  double L1CoefficientAt(int64_t step, int64_t total_steps) const;

  torch::Tensor r_mag;  // [n_latents]
  torch::Tensor b_mag;  // [n_latents]

 private:
  GatedConfig config_;
  std::unique_ptr<GatedTrainStepWorkspace> workspace_;
};

// The knobs of GatedLoss for one step.
struct GatedLossOptions {
  double l1_coefficient = 0.0;  // lambda_t (after warm-up)
};

// The Gated SAE loss as a pure function (for gradient checks and as the
// single definition TrainForward uses). inputs.W_enc and b_enc are W_gate
// [d, n] and b_gate [n]; inputs.extra holds "r_mag" and "b_mag" [n].
// Returns the scalar loss mse + l1_coefficient * l1 + aux, f [batch, n],
// x_hat [batch, d] and terms "mse", "l1", "aux" (undetached scalars).
LossOutput GatedLoss(const LossInputs& inputs, const GatedLossOptions& options);

// The architecture table's row (sae/architecture.h): lr 5e-5, adam_eps
// 1e-8; SAELens "gated", which encodes x - b_dec (apply_b_dec_to_input
// true), with b_gate = saelab's b_enc and r_mag, b_mag as they are.
const SaeArchitecture& GatedArchitecture();

}  // namespace saelab

#endif  // SAELAB_SAE_GATED_H_
