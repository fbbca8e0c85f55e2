// BatchTopK SAE: Bussmann, Leask and Nanda, "BatchTopK Sparse Autoencoders"
// (2024), as in docs/design.md. TopK (sae/topk.h) with the top-k taken over the
// whole batch instead of per token:
//
//   z = (x - b_dec) W_enc + b_enc                     [B, n]  (b_dec = b_pre)
//   training:  f = the k*B largest entries of ReLU(z) over all of [B, n],
//              zeros elsewhere (the L0 varies per token and averages k)
//   inference: f = z * 1[z > threshold]                (per token)
//   x_hat = f W_dec + b_dec
//   loss = NMSE(x_hat, x) + auxk_coefficient * AuxK   (AuxK as in TopK)
//
// With config.sparse_decode (the default) training decodes the kept entries
// by gather-and-sum (SparseDecodeRagged, sae/kernels/sparse_decode.h: rows
// own varying numbers of entries, possibly none) instead of the dense
// [B, n] x [n, d] product, which stays as the reference (sparse_decode
// false); the two agree up to summation order.
//
// `threshold` is one scalar per SAE (a buffer, saved with the weights). Each
// TrainForward sets m = the smallest positive activation kept in the batch
// and updates threshold <- decay * threshold + (1 - decay) * m; the first
// update (threshold still 0) sets threshold = m, and a batch with nothing
// kept leaves it unchanged (dictionary_learning's BatchTopKTrainer tracks
// it so; here from step 0). After the last step the trainer calls
// Calibrate, which replaces it with the mean smallest kept activation of
// the run's last batches under the final weights: the paper's estimate
// (E[min kept activation]) without the moving average's lag. Until the
// first update the threshold is 0 and inference is plain ReLU.
//
// Decoder rows have unit norm (gradient component along each row removed
// before the step, rows renormalised after). Init: random unit decoder
// rows, W_enc = W_dec^T, b_enc = 0, b_dec = geometric median of a sample.
//
//   BatchTopKSae sae(d_in, n_latents, config.batch_topk(), seed);
//   sae.InitFromSample(sample);
//   TrainOutput out = sae.TrainForward(x, info);   // batch top-k; tracks threshold
//   torch::Tensor f = sae.EncodeScaled(x);         // thresholded, per token
#ifndef SAELAB_SAE_BATCH_TOPK_H_
#define SAELAB_SAE_BATCH_TOPK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sae/architecture.h"
#include "sae/kernels/topk_train_step.h"
#include "sae/sae_config.pb.h"
#include "sae/sae.h"

namespace saelab {

class BatchTopKSae : public Sae {
 public:
  // config.k and config.k_aux must be set and in [1, n_latents] (see
  // ResolveSaeConfig); checked by the caller.
  BatchTopKSae(int64_t d_in, int64_t n_latents, const BatchTopKConfig& config, uint64_t seed)
      : BatchTopKSae(d_in, n_latents, config, /*prefix_widths=*/{}, seed) {}

  std::string architecture() const override { return "batch_topk"; }
  int64_t k() const { return config_.k(); }

  // The tracked inference threshold (scaled units).
  double threshold() const { return threshold_.item<double>(); }

  // Inference: f = z * 1[z > threshold], each token on its own.
  torch::Tensor EncodeScaled(const torch::Tensor& x) override;
  torch::Tensor DecodeScaled(const torch::Tensor& f) override;
  // Training's code: the batch top-k of ReLU(z) over all rows of x.
  torch::Tensor EncodeAsTrainedScaled(const torch::Tensor& x) override;
  // Batch top-k activations; updates the threshold (without gradient).
  // terms: "nmse", "auxk" (0 when no latent is dead), "threshold" (after
  // this step's update), "dead_latents".
  TrainOutput TrainForward(const torch::Tensor& x, const TrainStepInfo& info) override;
  // The sparse step of sae/kernels/batch_topk_train_step.h (the trainer's
  // default; config sparse_decode false turns it off): the same loss and
  // threshold update as TrainForward, gradients equal to within float32
  // rounding, no [batch, n] tensor.
  bool TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                          TrainOutput* out) override;

  void InitFromSample(const torch::Tensor& x) override;
  void BeforeOptimizerStep() override;
  void AfterOptimizerStep() override;
  // threshold = the mean over the batches of the smallest activation the
  // batch top-k keeps (config.threshold_calibration_batches of them).
  int64_t CalibrationBatches() const override { return config_.threshold_calibration_batches(); }
  void Calibrate(const std::vector<torch::Tensor>& x) override;

 protected:
  // With prefix_widths (strictly increasing, each in [1, n_latents)): the
  // Matryoshka loss (BatchTopKLossOptions::prefix_widths), trained through
  // autograd (TrainStepGradients declines). For MatryoshkaBatchTopKSae.
  BatchTopKSae(int64_t d_in, int64_t n_latents, const BatchTopKConfig& config,
               std::vector<int64_t> prefix_widths, uint64_t seed);
  const std::vector<int64_t>& prefix_widths() const { return prefix_widths_; }

 private:
  BatchTopKConfig config_;
  std::vector<int64_t> prefix_widths_;
  torch::Tensor threshold_;  // [] float32 buffer "threshold"
  // The sparse step's buffers, reused from step to step.
  std::unique_ptr<TopKTrainStepWorkspace> workspace_;
};

// Keeps the min(k * B, B * n) largest entries of ReLU(z) over the whole
// batch z [B, n] (flattened), zeros elsewhere. Returns [B, n]. With
// shard_gather set (data-parallel, z being one shard of the global batch),
// the entries of this shard among the global batch's largest
// k * B * shards, ties going to the lower global flat index.
torch::Tensor BatchTopKActivations(const torch::Tensor& z, int64_t k,
                                   const ShardGather& shard_gather = {});

// The knobs of BatchTopKLoss.
struct BatchTopKLossOptions {
  int64_t k = 32;
  int64_t k_aux = 256;
  double auxk_coefficient = 1.0 / 32;
  // Decode the kept entries with SparseDecodeRagged; false: the dense
  // product f W_dec (the reference).
  bool sparse_decode = true;
  // Matryoshka (sae/matryoshka_batch_topk.h): inner widths m_1 < m_2 < ...
  // (each in [1, n)) whose prefix reconstructions f[:, :m] W_dec[:m] + b_dec
  // each add their NMSE to the loss. Empty: plain BatchTopK.
  std::vector<int64_t> prefix_widths;
};

// Reads the options from a resolved BatchTopKConfig.
BatchTopKLossOptions BatchTopKLossOptionsFrom(const BatchTopKConfig& config);

// The BatchTopK training loss as a pure function (for gradient checks and
// as the single definition TrainForward uses); reads inputs.dead_mask ([n]
// bool or undefined). Returns loss = nmse + auxk_coefficient * auxk, f
// [B, n] (the batch top-k activations; detached when sparse_decode, as the
// loss does not go through it), x_hat [B, d] and terms "nmse" and "auxk"
// (undetached scalars; auxk is 0 when auxk_coefficient is 0), and with
// prefix widths "prefix_nmse_<m>" for each m, added to the loss with
// weight 1. AuxK's target, the residual x - x_hat of the full width, is
// detached.
LossOutput BatchTopKLoss(const LossInputs& inputs, const BatchTopKLossOptions& options);

// One threshold update from training activations f [B, n]: with m the
// smallest positive entry of f, returns m if threshold <= 0 (not yet set),
// else decay * threshold + (1 - decay) * m. Returns threshold unchanged if
// f has no positive entry. With shard_gather set (data-parallel), m is the
// smallest over every shard's f, so every rank tracks the same threshold.
double NextBatchTopKThreshold(double threshold, const torch::Tensor& f, double decay,
                              const ShardGather& shard_gather = {});
// The same update from m itself (m <= 0: nothing was kept, no update).
double NextBatchTopKThresholdFromSmallest(double threshold, double smallest, double decay);

// Checks config (k, k_aux, auxk_coefficient, threshold_decay,
// threshold_calibration_batches) for an SAE of n_latents latents and fills
// k_aux's default. `field` names the message in errors ("batch_topk").
absl::Status ResolveBatchTopKConfig(int64_t d_in, int64_t n_latents, const std::string& field,
                                    BatchTopKConfig* config);

// The architecture table's row (sae/architecture.h): TopK's recipe
// (sae/topk.h); SAELens "jumprelu" with the scalar threshold repeated per
// latent, which is how SAELens saves BatchTopK SAEs for inference
// (BatchTopKTrainingSAE.process_state_dict_for_saving_inference), encoding
// x - b_dec (apply_b_dec_to_input true). SAELens "jumprelu" files import as
// batch_topk only when their "saelab" object says so, and their thresholds
// must then be one value.
const SaeArchitecture& BatchTopKArchitecture();

}  // namespace saelab

#endif  // SAELAB_SAE_BATCH_TOPK_H_
