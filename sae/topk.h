// k-sparse (TopK) SAE: Gao et al., "Scaling and evaluating sparse
// autoencoders" (OpenAI, 2024), as in docs/design.md.
//
//   z = W_enc^T (x - b_dec) + b_enc          (b_dec is Gao's b_pre)
//   f = ReLU(TopK_k(z))                      (exactly <= k non-zeros per row)
//   x_hat = W_dec^T f + b_dec
//   loss = NMSE(x_hat, x) + alpha * AuxK
//
// AuxK: the residual e = x - x_hat (detached) is reconstructed from the top
// k_aux pre-activations among dead latents, e_hat = W_dec^T ReLU(TopK_aux(z
// restricted to dead)), and AuxK = NMSE(e_hat, e). It gives dead latents a
// gradient. Decoder rows have unit norm: the gradient component along each
// row is removed before the optimiser step and rows are renormalised after.
// Init: random unit decoder rows, W_enc = W_dec^T, b_enc = 0, b_dec = the
// geometric median of a data sample.
//
//   TopKSae sae(d_in, n_latents, config.topk(), seed);
//   torch::Tensor f = sae.EncodeScaled(x);   // [batch, n], <= k non-zeros/row
#ifndef SAELAB_SAE_TOPK_H_
#define SAELAB_SAE_TOPK_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "sae/architecture.h"
#include "sae/kernels/topk_train_step.h"
#include "sae/sae_config.pb.h"
#include "sae/sae.h"

namespace saelab {

class TopKSae : public Sae {
 public:
  // config.k and config.k_aux must be set and in [1, n_latents] (see
  // ResolveSaeConfig); checked by the caller. With `transcoder` (not null)
  // it is a transcoder (sae_config.proto TranscoderConfig): no pre-encoder
  // bias, and with skip_connection a parameter W_skip [d_in, d_in], zero at
  // init.
  TopKSae(int64_t d_in, int64_t n_latents, const TopKConfig& config, uint64_t seed,
          const TranscoderConfig* transcoder = nullptr);

  std::string architecture() const override { return "topk"; }
  int64_t k() const { return config_.k(); }
  bool is_transcoder() const override { return transcoder_; }
  // The skip transcoder's W_skip [d_in, d_in]; undefined otherwise.
  torch::Tensor W_skip;

  torch::Tensor EncodeScaled(const torch::Tensor& x) override;
  torch::Tensor DecodeScaled(const torch::Tensor& f) override;
  // Decode(Encode(x)) + x W_skip for a skip transcoder.
  torch::Tensor ReconstructScaled(const torch::Tensor& x) override;
  // The sparse code of scaled x: values [batch, k] (after ReLU) and
  // *indices [batch, k], for SparseDecode.
  torch::Tensor EncodeTopK(const torch::Tensor& x, torch::Tensor* indices);
  // terms: "nmse", "auxk" (0 when no latent is dead), "dead_latents",
  // "multi_topk_nmse" (Multi-TopK only).
  TrainOutput TrainForward(const torch::Tensor& x, const TrainStepInfo& info) override;
  // The sparse step of sae/kernels/topk_train_step.h (the trainer's default;
  // config sparse_decode false turns it off): the same loss as
  // TrainForward, gradients equal to within float32 rounding, no
  // [batch, n] tensor and no backward GEMM. Not for transcoders (false).
  bool TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                          TrainOutput* out) override;

  void InitFromSample(const torch::Tensor& x) override;
  void BeforeOptimizerStep() override;
  void AfterOptimizerStep() override;

 private:
  TopKConfig config_;
  bool transcoder_ = false;
  // The sparse step's buffers, reused from step to step.
  std::unique_ptr<TopKTrainStepWorkspace> workspace_;
};

// sum ||a - b||^2 / sum ||b||^2 over the batch (a scalar tensor); with
// shard_mean (data-parallel), over sum ||b||^2's mean over shards.
torch::Tensor BatchNmse(const torch::Tensor& a, const torch::Tensor& b,
                        const ShardMean& shard_mean = nullptr);

// The knobs of the TopK training loss: the sparse step's (k, k_aux,
// auxk_coefficient, multi_topk_factor, multi_topk_coefficient; see
// sae/kernels/topk_train_step.h) and the dense path's decoder choice.
struct TopKLossOptions : TopKTrainStepOptions {
  // Decode by gather-and-sum over the active latents (sae/kernels/
  // sparse_decode.h) instead of a dense [batch, n] x [n, d] product.
  bool sparse_decode = true;
  // Encode x - b_dec (Gao's b_pre); false for a transcoder, which encodes x.
  bool apply_b_dec_to_input = true;
};

// For the architectures trained on a sparse TopK-family step (TopK,
// BatchTopK), in their TrainStepGradients:
//
//   if (!PrepareSparseTopKStep(config_.sparse_decode(), x, {&W_enc, &b_enc, &W_dec, &b_dec}))
//     return false;  // the dense autograd path
//   ... run the step into the grad buffers ...
//   *out = SparseTopKStepOutput(step, n_latents_, info);
//
// Prepare is true when the sparse step is on and x and the parameters are
// contiguous CPU float32 (the kernels read them as plain arrays); then each
// parameter has a grad buffer.
bool PrepareSparseTopKStep(bool sparse_decode, const torch::Tensor& x,
                           std::initializer_list<torch::Tensor*> params);
// x_hat, loss, fired (latents with a positive entry in the code), and the
// terms "nmse" and "dead_latents".
TrainOutput SparseTopKStepOutput(const TopKTrainStepResult& step, int64_t n_latents,
                                 const TrainStepInfo& info);

// Reads the options from a resolved TopKConfig.
TopKLossOptions TopKLossOptionsFrom(const TopKConfig& config);

// The TopK training loss as a pure function (for gradient checks and as the
// single definition TrainForward uses); reads inputs.dead_mask ([n] bool or
// undefined). f is the dense [batch, n] code (detached: the loss goes
// through the sparse values). The reconstruction is of inputs.Target(), and
// adds x W_skip when inputs.extra holds "W_skip" (a skip transcoder). terms: "nmse", "auxk" (when
// auxk_coefficient > 0) and "multi_topk_nmse" (when Multi-TopK is on).
LossOutput TopKLoss(const LossInputs& inputs, const TopKLossOptions& options);

// The AuxK term: reconstruct `residual` [batch, d] (the caller detaches it)
// from the top k_aux pre-activations z [batch, n] among dead latents
// (dead_mask [n] bool), through the decoder rows W_dec [n, d] without bias.
// Returns NMSE(e_hat, residual) (BatchNmse, with shard_mean); 0 if no
// latent is dead.
torch::Tensor AuxKLoss(const torch::Tensor& z, const torch::Tensor& W_dec,
                       const torch::Tensor& dead_mask, int64_t k_aux,
                       const torch::Tensor& residual, const ShardMean& shard_mean = nullptr);

// Gao et al.'s recipe, shared with BatchTopK: learning rate
// 2e-4 / sqrt(n_latents / 2^14), Adam eps 6.25e-10, and k_aux the power of
// two nearest d_in / 2 (ties go up), at least 1 and at most n_latents.
double TopKLearningRate(int64_t n_latents);
constexpr double kTopKAdamEps = 6.25e-10;
int64_t DefaultKAux(int64_t d_in, int64_t n_latents);

// The architecture table's row (sae/architecture.h): the recipe above;
// SAELens "topk" with "k" in cfg.json, which encodes x - b_dec
// (apply_b_dec_to_input true).
const SaeArchitecture& TopKArchitecture();

}  // namespace saelab

#endif  // SAELAB_SAE_TOPK_H_
