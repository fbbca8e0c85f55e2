// ReLU SAE with a decoder-norm-weighted L1 penalty: Anthropic's recipe of the
// April 2024 circuits update (as in docs/design.md).
//
//   f = ReLU(W_enc^T x + b_enc)                   (x scaled: E||x|| = sqrt(d))
//   x_hat = W_dec^T f + b_dec
//   loss = E ||x - x_hat||^2 + lambda_t * E sum_i f_i ||W_dec[i, :]||_2
//
// lambda_t warms up linearly from 0 to lambda over the first
// l1_warmup_fraction of steps. Init: decoder rows are random directions of
// norm decoder_init_norm, W_enc = W_dec^T, biases 0. The decoder is not
// normalised: the penalty's norm weighting removes the incentive to shrink f
// by growing W_dec.
//
//   ReluL1Sae sae(/*d_in=*/64, /*n_latents=*/512, config.relu_l1(), seed);
#ifndef SAELAB_SAE_RELU_L1_H_
#define SAELAB_SAE_RELU_L1_H_

#include <cstdint>
#include <memory>

#include "sae/architecture.h"
#include "sae/sae_config.pb.h"
#include "sae/sae.h"

namespace saelab {

class JumpReluTrainStepWorkspace;  // sae/kernels/jumprelu_train_step.h

class ReluL1Sae : public Sae {
 public:
  ReluL1Sae(int64_t d_in, int64_t n_latents, const ReluL1Config& config, uint64_t seed);

  std::string architecture() const override { return "relu_l1"; }

  torch::Tensor EncodeScaled(const torch::Tensor& x) override;
  torch::Tensor DecodeScaled(const torch::Tensor& f) override;
  // terms: "mse" (E||x - x_hat||^2), "l1" (the norm-weighted sum),
  // "l1_coefficient" (lambda_t this step).
  TrainOutput TrainForward(const torch::Tensor& x, const TrainStepInfo& info) override;
  // The sparse step (config sparse_step), with TrainForward's terms (f
  // undefined, fired set); false on a batch too dense for it.
  bool TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                          TrainOutput* out) override;
  ~ReluL1Sae() override;

  // lambda at `step` of `total_steps` (the warm-up schedule).
  double L1CoefficientAt(int64_t step, int64_t total_steps) const;

 private:
  ReluL1Config config_;
  std::unique_ptr<JumpReluTrainStepWorkspace> workspace_;
};

// The knobs of ReluL1Loss for one step.
struct ReluL1LossOptions {
  double l1_coefficient = 0.0;  // lambda_t (after warm-up)
};

// The loss of ReluL1Sae as a pure function (for gradient checks and as the
// single definition TrainForward uses). Shapes as in the class comment.
// terms: "mse" and "l1" (undetached scalars).
LossOutput ReluL1Loss(const LossInputs& inputs, const ReluL1LossOptions& options);

// The architecture table's row (sae/architecture.h): lr 5e-5, adam_eps 1e-8;
// SAELens "standard", which encodes x (apply_b_dec_to_input false).
const SaeArchitecture& ReluL1Architecture();

}  // namespace saelab

#endif  // SAELAB_SAE_RELU_L1_H_
