// One JumpReLU SAE training step's loss and gradients (the paper's L0 loss,
// JumpReluConfig::STANDARD, sae/jumprelu.h), computed sparsely: after the
// encoder GEMM only the firing entries (z > theta) and the entries inside
// the threshold's kernel band (|z - theta| <= eps / 2) are touched. Without
// thresholds (theta = 0, no band) and with the decoder-norm-weighted L1
// term it is ReLU-L1's step (sae/relu_l1.h): ReLU(z) = z 1[z > 0].
//
//   z = x W_enc + b_enc,  A_b = {i : z_bi > theta_i},  K_b = {i : |z_bi - theta_i| <= eps/2}
//   x_hat_b = b_dec + sum_{i in A_b} z_bi W_dec[i]
//   loss = mean_b ||x_b - x_hat_b||^2 + lambda * mean_b |A_b|
//          + mu * mean_b sum_{i in A_b} z_bi ||W_dec[i]||
// Backward, with G_b = 2 (x_hat_b - x_b) / batch and the gradient in f,
// df_bi = <G_b, W_dec[i]> + mu ||W_dec[i]|| / batch:
//   i in A_b:  dW_dec[i] += z_bi G_b,  dW_enc[:, i] += df_bi x_b,  db_enc[i] += df_bi
//   i in K_b:  dtheta_i += -(theta_i / eps) df_bi - lambda / (eps * batch)
//   dW_dec[i] += (mu / batch) (sum_b z_bi) W_dec[i] / ||W_dec[i]||
//   db_dec = sum_b G_b,  dlog_threshold = theta * dtheta
// The weight gradients are summed per latent over its entries in row order,
// one latent per task: the bits do not depend on the thread count.
//
// It pays only while the code is sparse: early in training most z exceed
// the small initial theta. Where the firing and band entries together pass
// max_density of batch * n, the step returns `computed = false` without
// touching the gradients, and the caller takes the dense autograd path
// (JumpReluLoss, the reference the test holds this kernel to).
//
//   JumpReluTrainStepWorkspace workspace;                      // reuse every step
//   JumpReluTrainStepResult r = JumpReluTrainStep(x, params, options, grads, &workspace);
//   if (!r.computed) { /* dense path */ }
#ifndef SAELAB_SAE_KERNELS_JUMPRELU_TRAIN_STEP_H_
#define SAELAB_SAE_KERNELS_JUMPRELU_TRAIN_STEP_H_

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "sae/kernels/internal/buffers.h"

namespace saelab {

struct JumpReluTrainStepOptions {
  double bandwidth = 0.001;             // eps
  double sparsity_coefficient = 0.0;    // lambda on the L0 term this step
  double l1_coefficient = 0.0;          // mu on the decoder-norm-weighted L1 term
  // The largest (firing + band entries) / (batch * n) at which the sparse
  // step runs; denser codes are left to the dense path.
  double max_density = 1.0 / 32;
};

// float32, contiguous: W_enc [d, n], b_enc [n], W_dec [n, d], b_dec [d],
// log_threshold [n] (undefined: theta = 0 and no band, ReLU).
struct JumpReluParameters {
  torch::Tensor W_enc, b_enc, W_dec, b_dec, log_threshold;
};

// Gradient buffers of the parameters' shapes (float32, contiguous); every
// element is overwritten when the step is computed. log_threshold is
// undefined when the parameters' is.
struct JumpReluGradients {
  torch::Tensor W_enc, b_enc, W_dec, b_dec, log_threshold;
};

struct JumpReluTrainStepResult {
  bool computed = false;  // false: too dense, nothing written
  double density = 0;     // (firing + band entries) / (batch * n)
  double loss = 0;
  double mse = 0;          // mean_b ||x_b - x_hat_b||^2
  double l0 = 0;           // mean_b |A_b|
  double l1 = 0;           // mean_b sum_{i in A_b} z_bi ||W_dec[i]||
  torch::Tensor fired;     // [n] bool: fired on some row
  torch::Tensor x_hat;     // [batch, d] (a workspace buffer: valid until the next step)
};

class JumpReluTrainStepWorkspace {
 public:
  // [rows, cols] float32 named buffer, allocated once per shape.
  torch::Tensor Buffer(int slot, int64_t rows, int64_t cols);

  // Per row: the firing entries, then the band entries, each with its
  // latent, z and (after the upstream pass) df.
  struct Entry {
    int32_t latent;
    float z;
    float df;
  };
  std::vector<std::vector<Entry>> firing, band;
  // Firing entries grouped by latent (row order): latent i owns
  // [offsets[i], offsets[i + 1]) of rows / values / df; the same for band.
  std::vector<int64_t> firing_offsets, band_offsets;
  std::vector<int32_t> firing_rows;
  std::vector<float> firing_values, firing_grouped_df, band_grouped_df;
  std::vector<std::pair<int32_t, int32_t>> grouped_from;  // (row, position) of each

 private:
  kernels_internal::BufferSlots buffers_;
};

// x: [batch, d] float32 (scaled, as JumpReluSae trains on).
JumpReluTrainStepResult JumpReluTrainStep(const torch::Tensor& x, const JumpReluParameters& params,
                                          const JumpReluTrainStepOptions& options,
                                          const JumpReluGradients& grads,
                                          JumpReluTrainStepWorkspace* workspace);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_JUMPRELU_TRAIN_STEP_H_
