// One Gated SAE training step's loss and gradients (Rajamanoharan et al.
// 2024, sae/gated.h), computed sparsely: after the encoder GEMM only the
// entries whose gate is open (pi_gate > 0) are touched. Every term of the
// loss lives on those entries: the Heaviside gate zeroes the others'
// activations, and ReLU(pi_gate), which the L1 and auxiliary terms read, is
// zero there with zero gradient.
//
//   x_c = x - b_dec,  u = x_c W,  pi_gate = u + b_gate,  A_b = {i : pi_gate_bi > 0}
//   pi_mag = exp(r_mag) u + b_mag   (= x_c (W * exp(r_mag)) + b_mag, the weight tying)
//   f_bi = ReLU(pi_mag_bi) for i in A_b, else 0
//   x_hat_b = b_dec + sum_{i in A_b} f_bi W_dec[i]
//   via_b = b_dec + sum_{i in A_b} pi_gate_bi W_dec[i]          (decoder held fixed)
//   loss = mean_b ||x_b - x_hat_b||^2 + lambda mean_b sum_{i in A_b} pi_gate_bi
//          + mean_b ||x_b - via_b||^2
// Backward, with G_b = 2 (x_hat_b - x_b) / batch and H_b = 2 (via_b - x_b) / batch,
// per entry (b, i) of A:
//   dmag = <G_b, W_dec[i]> 1[pi_mag_bi > 0],  dgate = lambda / batch + <H_b, W_dec[i]>
//   du = dgate + exp(r_i) dmag
//   dW_dec[i] += f_bi G_b,  dW[:, i] += du x_c[b],  db_gate[i] += dgate,
//   db_mag[i] += dmag,  dr_mag[i] += dmag exp(r_i) u_bi
//   db_dec = sum_b G_b - W (sum_b du_b)       (x_c reads x - b_dec; the auxiliary
//                                               term's b_dec is held fixed)
// The weight gradients are summed per latent over its entries in row order,
// one latent per task: the bits do not depend on the thread count. The
// magnitude path reads the gate's GEMM (one GEMM, where the dense path
// runs two), so the step agrees with GatedLoss through autograd to float32
// rounding, not in every bit.
//
// Like the JumpReLU step it pays only while few gates are open: past
// max_density of batch * n it returns computed = false without touching
// the gradients, and the caller takes the dense path.
//
//   GatedTrainStepWorkspace workspace;
//   GatedTrainStepResult r = GatedTrainStep(x, params, {lambda}, grads, &workspace);
#ifndef SAELAB_SAE_KERNELS_GATED_TRAIN_STEP_H_
#define SAELAB_SAE_KERNELS_GATED_TRAIN_STEP_H_

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "sae/kernels/internal/buffers.h"

namespace saelab {

struct GatedTrainStepOptions {
  double l1_coefficient = 0.0;  // lambda this step
  // The largest open-gate fraction of batch * n at which the sparse step
  // runs.
  double max_density = 1.0 / 32;
};

// float32, contiguous: W_enc (the shared W) [d, n], b_enc (b_gate) [n],
// r_mag [n], b_mag [n], W_dec [n, d], b_dec [d]. The gradients likewise;
// every element is overwritten when the step is computed.
struct GatedParameters {
  torch::Tensor W_enc, b_enc, r_mag, b_mag, W_dec, b_dec;
};

struct GatedTrainStepResult {
  bool computed = false;  // false: too dense, nothing written
  double density = 0;     // open gates / (batch * n)
  double loss = 0, mse = 0, l1 = 0, aux = 0;
  double l0 = 0;          // mean_b |{i : f_bi > 0}|
  torch::Tensor fired;    // [n] bool: f > 0 on some row
  torch::Tensor x_hat;    // [batch, d] (a workspace buffer: valid until the next step)
};

class GatedTrainStepWorkspace {
 public:
  torch::Tensor Buffer(int slot, int64_t rows, int64_t cols);

  // An open gate of one row.
  struct Entry {
    int32_t latent;
    float u, gate, mag;   // x_c W_i, pi_gate, pi_mag
    float dgate, dmag;    // filled by the upstream pass
  };
  std::vector<std::vector<Entry>> open;
  std::vector<int64_t> offsets;                       // [n + 1], by latent
  std::vector<std::pair<int32_t, int32_t>> from;      // (row, position) of each grouped entry

 private:
  kernels_internal::BufferSlots buffers_;
};

// x: [batch, d] float32 (scaled, as GatedSae trains on).
GatedTrainStepResult GatedTrainStep(const torch::Tensor& x, const GatedParameters& params,
                                    const GatedTrainStepOptions& options,
                                    const GatedParameters& grads,
                                    GatedTrainStepWorkspace* workspace);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_GATED_TRAIN_STEP_H_
