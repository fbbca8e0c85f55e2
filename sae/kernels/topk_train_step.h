// One TopK SAE training step's loss and gradients, computed sparsely: the
// only dense O(batch * d * n) work is the encoder GEMM inside TopKEncode
// (sae/kernels/topk_encode.h); everything after it touches only the active
// (token, latent) pairs.
//
//   x_c = x - b_dec,  z = x_c W_enc + b_enc,  S = top-K(z) per row
//   x_hat = b_dec + sum_{s < k} ReLU(z_s) W_dec[i_s]
//   loss = NMSE(x_hat, x) + auxk_coefficient * AuxK + multi_coefficient * NMSE(x_hat_multi, x)
//
// with AuxK and Multi-TopK as in sae/topk.h (K = min(n, multi_topk_factor *
// k) with Multi-TopK, else k; the top-k is the first k of the top-K, since
// TopKEncode sorts). Backward, per active entry (row b, latent i, value
// v = ReLU(z), upstream G_b of the decode the entry feeds):
//   dv = <G_b, W_dec[i]>,  dz = dv * 1[z > 0]
//   dW_dec[i] += v G_b,   dW_enc[:, i] += dz x_c[b],   db_enc[i] += dz
//   db_dec = sum_b G_b(main) - W_enc db_enc      (one matrix-vector product)
// Entries with z <= 0 contribute nothing and are skipped. The weight
// gradients are summed per latent, over its top-K entries in (row, slot)
// order and then its AuxK entries in row order, one latent per task: the
// bits do not depend on the thread count.
//
// AuxK has k_aux / k times the top-k's entries (16x at the default k_aux
// 512, k 32), each an O(d) row operation. They are taken per block of rows
// grouped by latent, so that each picked decoder row is read once per block
// for all the block's entries of that latent while the block's e_hat, G and
// x_c rows stay in cache; e_hat sums a row's entries in latent order. (Four
// GEMMs over the picked latents' dense [batch, m] code were tried instead
// and were slower at every benchmarked shape: results/benchmarks/train_step.md.)
//
// The dense reference is TopKLoss (sae/topk.h) differentiated by autograd;
// the test holds the two within float32 tolerance and checks both against
// float64 finite differences.
//
//   TopKTrainStepWorkspace workspace;                       // reuse every step
//   TopKGradients grads{W_enc.mutable_grad(), ...};          // written in place
//   TopKTrainStepResult r = TopKTrainStep(x, params, dead_mask, options, grads, &workspace);
#ifndef SAELAB_SAE_KERNELS_TOPK_TRAIN_STEP_H_
#define SAELAB_SAE_KERNELS_TOPK_TRAIN_STEP_H_

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "sae/kernels/internal/buffers.h"

#include "sae/kernels/topk_encode.h"

namespace saelab {

struct TopKTrainStepOptions {
  int64_t k = 32;
  // AuxK over min(k_aux, dead) latents; off when auxk_coefficient is 0 or
  // no latent is dead.
  int64_t k_aux = 256;
  double auxk_coefficient = 1.0 / 32;
  // Multi-TopK: 0 (off) or the factor m.
  int64_t multi_topk_factor = 0;
  double multi_topk_coefficient = 0.125;
  // Data-parallel training (ShardMean in sae/sae.h): maps this shard's
  // sum ||x||^2 (and AuxK's sum ||e||^2) to its mean over shards, which the
  // NMSEs then divide by. Unset: the batch's own sums.
  std::function<double(double)> shard_mean;
};

// The parameters (float32, contiguous): W_enc [d, n], b_enc [n],
// W_dec [n, d], b_dec [d].
struct TopKParameters {
  torch::Tensor W_enc, b_enc, W_dec, b_dec;
};

// Gradient buffers of the parameters' shapes (float32, contiguous); every
// element is overwritten.
struct TopKGradients {
  torch::Tensor W_enc, b_enc, W_dec, b_dec;
};

struct TopKTrainStepResult {
  double loss = 0;             // the total minimised
  double nmse = 0;             // NMSE(x_hat, x)
  double auxk = 0;             // AuxK's NMSE (0 when off)
  double multi_topk_nmse = 0;  // (0 when off)
  bool auxk_on = false;
  bool multi_topk_on = false;
  torch::Tensor values;   // [batch, k] ReLU(z) of the code, best first
  torch::Tensor indices;  // [batch, k] int64 latents
  torch::Tensor x_hat;    // [batch, d] (a workspace buffer: valid until the next step)
};

// Buffers reused from step to step; one per training loop.
class TopKTrainStepWorkspace {
 public:
  TopKEncodeWorkspace encode;
  // [rows, cols] float32 named buffer, allocated once per shape.
  torch::Tensor Buffer(int slot, int64_t rows, int64_t cols);
  // x - b_dec into this workspace's buffer for it.
  torch::Tensor CenteredInput(const torch::Tensor& x, const torch::Tensor& b_dec);

  // The active entries grouped by latent (the step's internal layout):
  // latent i owns entries [latent_offsets[i], latent_offsets[i + 1]).
  std::vector<int64_t> latent_offsets;
  std::vector<int32_t> entry_rows;
  std::vector<uint8_t> entry_sources;  // which decode the entry feeds
  std::vector<float> entry_values;     // ReLU(z)
  std::vector<float> entry_dz;         // dLoss/dz
  // AuxK: the latents some row picked (z > 0), ascending, and a [n] mark.
  std::vector<int64_t> aux_latents;
  std::vector<uint8_t> aux_picked;
  // Latent i's row in the packed picked decoder rows (AuxK's e_hat).
  std::vector<int32_t> aux_packed_row;
  // AuxK's entries grouped per block of rows by latent.
  // Block b's entries are [aux_block_base[b], aux_block_base[b + 1]);
  // latent i's within it are at offsets aux_block_offsets[b * (n + 1) + i]
  // up to the next latent's. Each entry's row and flat [batch, k_aux] slot.
  std::vector<int64_t> aux_block_base;
  std::vector<int32_t> aux_block_offsets;
  std::vector<int32_t> aux_entry_rows;
  std::vector<int32_t> aux_entry_slots;
  // AuxK's entries regrouped by latent over the whole batch: picked latent
  // j's are [aux_latent_base[j], aux_latent_base[j + 1]), rows ascending.
  std::vector<int64_t> aux_latent_base;
  std::vector<int32_t> aux_grouped_rows;
  std::vector<float> aux_grouped_values;  // z
  std::vector<float> aux_grouped_dz;      // dLoss/dz
  std::vector<int64_t> aux_cursor;        // per picked latent, during a pass
  std::vector<int64_t> aux_group_start;   // [block, j]: where its entries go

 private:
  kernels_internal::BufferSlots buffers_;
};

// x: [batch, d] float32, finite. dead_mask: [n] bool or undefined.
TopKTrainStepResult TopKTrainStep(const torch::Tensor& x, const TopKParameters& params,
                                  const torch::Tensor& dead_mask,
                                  const TopKTrainStepOptions& options, const TopKGradients& grads,
                                  TopKTrainStepWorkspace* workspace);

// The step after the encoder, for a code selected elsewhere (BatchTopK's
// batch-wide selection): code.values [batch, K] pre-activations of
// x_c = centered (= x - b_dec), code.indices their latents; slots with
// z <= 0 are inactive (contribute nothing). The first options.k slots are
// the main code; with Multi-TopK all K feed the multi decode. AuxK reads
// code.aux_values / aux_indices when defined.
TopKTrainStepResult TopKTrainStepFromCode(const torch::Tensor& x, const torch::Tensor& centered,
                                          const TopKParameters& params, const TopKCode& code,
                                          const TopKTrainStepOptions& options,
                                          const TopKGradients& grads,
                                          TopKTrainStepWorkspace* workspace);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_TOPK_TRAIN_STEP_H_
