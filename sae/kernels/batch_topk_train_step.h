// BatchTopK's training step (Bussmann et al. 2024) on the sparse kernels:
// the batch keeps its k * batch largest ReLU(z) entries, any number per row,
// found without the [batch, n] pre-activation.
//
// Selection: TopKEncode (sae/kernels/topk_encode.h) gives each row its top
// K' candidates (K' = 2k to start); the batch-wide top k * batch is taken
// among them, ordered by value, then flat index (row * n + latent), lower
// first. A row whose last candidate is kept may hold more entries above the
// cut than it was given, so such rows, and only they, are encoded again
// with twice the candidates, until no row is saturated or K' = n: the
// selection is the dense one. Unkept candidates become inactive slots, and
// the step continues as TopKTrainStepFromCode
// (sae/kernels/topk_train_step.h), with AuxK as in TopK.
//
// Bits: the re-encoded rows go through a GEMM over fewer rows, and OpenBLAS's
// AVX2 kernel (the one saelab's binaries pin) can round a row's
// pre-activations differently in the last bit when the GEMM has another
// number of rows. So the kept set is the batch top-k of the values as
// computed, and candidates_per_row is among what fixes the bits (runs
// differ by about 3e-4 relative in the final loss between 2k and 4k).
// Why 2k: on the reference model's activations (n 1024, k 16 and 64) 2k
// trained at 71k and 37k tokens/s against 62k and 29k with 4k, although
// with 2k a saturated row turned up in most steps (1.4 and 1.0 extra
// rounds per step, 6% and 0.7% of the rows re-encoded).
//
// The dense reference is BatchTopKLoss (sae/batch_topk.h) through autograd.
//
//   BatchTopKTrainStepResult r = BatchTopKTrainStep(x, params, dead_mask, options, grads, &ws);
//   // r.values [batch, K'] (zeros where unkept), r.indices; r.candidate_rounds
#ifndef SAELAB_SAE_KERNELS_BATCH_TOPK_TRAIN_STEP_H_
#define SAELAB_SAE_KERNELS_BATCH_TOPK_TRAIN_STEP_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "sae/kernels/topk_train_step.h"

namespace saelab {

struct BatchTopKTrainStepOptions {
  int64_t k = 32;  // mean kept entries per row
  int64_t k_aux = 256;
  double auxk_coefficient = 1.0 / 32;
  // First K' (0: 2k), at most n.
  int64_t candidates_per_row = 0;
  // Data-parallel training: this batch is shard `shard_rank` of
  // `shard_count` equal shards of the global batch (rows
  // [shard_rank * batch, (shard_rank + 1) * batch) of it), and the
  // selection keeps the global batch's top k * batch * shard_count, as one
  // process would over the whole batch. shard_gather concatenates every
  // shard's tensor along dim 0 in rank order (a collective: every shard
  // calls it the same number of times). Unset: this batch alone.
  std::function<torch::Tensor(const torch::Tensor&)> shard_gather;
  // Data-parallel: as TopKTrainStepOptions::shard_mean (the NMSE and AuxK
  // denominators' mean over shards).
  std::function<double(double)> shard_mean;
  int64_t shard_rank = 0;
  int64_t shard_count = 1;
};

struct BatchTopKTrainStepResult : TopKTrainStepResult {
  // The smallest kept value over the (global) batch; 0 when nothing is kept.
  float min_kept = 0.0f;
  // How many times the encoder ran (1 unless a row was saturated).
  int64_t candidate_rounds = 0;
  // Rows encoded again, summed over the rounds after the first.
  int64_t reencoded_rows = 0;
};

// One candidate of a batch-wide top-k: a ReLU'd value (float32 or float64,
// held exactly) and its flat index row * n + latent in the global batch.
struct BatchCandidate {
  double value;
  int64_t flat;
};
// The selection order: larger value first, then lower flat index.
inline bool BatchCandidateBefore(const BatchCandidate& a, const BatchCandidate& b) {
  return a.value > b.value || (a.value == b.value && a.flat < b.flat);
}
// The cut of a batch-wide top-`kept` over `local` (this shard's candidates)
// or, with shard_gather set, over every shard's (gathered in rank order, so
// every shard finds the same cut): the kept-th candidate in the selection
// order, or flat -1 when there are at most `kept` (all are kept). *pool
// gets the candidates cut (reordered). The one cut that BatchTopK's sparse
// step and its autograd loss (sae/batch_topk.h) both use.
BatchCandidate BatchTopKCut(std::vector<BatchCandidate> local, int64_t kept,
                            const std::function<torch::Tensor(const torch::Tensor&)>& shard_gather,
                            std::vector<BatchCandidate>* pool);

// The selection alone, on centered = x - b_dec [batch, d]: code.values /
// indices [batch, K'] (ReLU(z), zero where not kept; AuxK's code as
// TopKEncode gives it when options.auxk_coefficient > 0 and dead_mask is
// set), min_kept the smallest kept value over the (global) batch (the cut;
// 0 when nothing is kept). BatchTopKSae calibrates and tracks its
// inference threshold with it.
struct BatchTopKSelection {
  TopKCode code;
  float min_kept = 0.0f;
  int64_t candidate_rounds = 0;
  int64_t reencoded_rows = 0;
};
BatchTopKSelection SelectBatchTopK(const torch::Tensor& centered, const TopKParameters& params,
                                   const torch::Tensor& dead_mask,
                                   const BatchTopKTrainStepOptions& options,
                                   TopKEncodeWorkspace* workspace);

// Shapes and buffers as TopKTrainStep's. result.values / indices are
// [batch, K'] (ReLU(z), zero where the entry was not kept).
BatchTopKTrainStepResult BatchTopKTrainStep(const torch::Tensor& x, const TopKParameters& params,
                                            const torch::Tensor& dead_mask,
                                            const BatchTopKTrainStepOptions& options,
                                            const TopKGradients& grads,
                                            TopKTrainStepWorkspace* workspace);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_BATCH_TOPK_TRAIN_STEP_H_
