// The SAE interface every architecture implements.
//
// Notation (docs/design.md): x in R^d_in, n latents, f in R^n,
// x_hat = W_dec f + b_dec. Storage follows the SAELens layout so weights
// move between saelab and the Python tools without transposes:
//   W_enc [d_in, n_latents]   (column i is latent i's encoder direction)
//   W_dec [n_latents, d_in]   (row i is latent i's decoder direction,
//                              i.e. column i of W_dec in the papers)
//   b_enc [n_latents], b_dec [d_in]
//
// Inputs are scaled by one scalar, input_scale, so that E||x||_2 = sqrt(d_in)
// on the training distribution. The public Encode/Decode/Reconstruct take
// and return activations in the model's own units; the *Scaled methods work
// in the normalised space the SAE was trained in.
//
//   std::unique_ptr<Sae> sae = ...;            // from CreateSae or a checkpoint
//   torch::Tensor f = sae->Encode(x);          // [batch, n_latents]
//   torch::Tensor x_hat = sae->Decode(f);      // [batch, d_in]
#ifndef SAELAB_SAE_SAE_H_
#define SAELAB_SAE_SAE_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace saelab {

// Data-parallel training (sae/trainer.h) splits each batch into equal
// shards, one per rank; each rank computes the loss of its shard and the
// trainer averages the gradients. That average is the whole batch's
// gradient when the loss is a mean over rows. A loss that divides by a sum
// over the batch (NMSE's sum ||x||^2) divides by the mean over shards of
// that sum instead, which this maps a shard's value to (a collective: every
// rank calls it, in the same order). Unset for one process: the shard is
// the batch, and the losses run exactly as without it.
using ShardMean = std::function<double(double)>;
// The same for a tensor: its elementwise sum over the shards (e.g. how many
// shards a latent fired on). Unset for one process.
using ShardSum = std::function<torch::Tensor(const torch::Tensor&)>;
// Every shard's tensor concatenated along dim 0 in rank order (the first
// dimension may differ between shards): what a batch-wide selection (the
// BatchTopK family's top k * batch) gathers to select over the global batch.
// Rank r holds the global batch's rows [r * rows, (r + 1) * rows).
struct ShardGather {
  std::function<torch::Tensor(const torch::Tensor&)> gather;
  int64_t rank = 0;
  int64_t count = 1;
  explicit operator bool() const { return static_cast<bool>(gather); }
};

// What the trainer tells an SAE about the current step.
struct TrainStepInfo {
  int64_t step = 0;         // 0-based
  int64_t total_steps = 1;  // steps in the whole run
  // [n_latents] bool: latents that have not fired for dead_after_tokens
  // (for auxiliary losses against dead latents); may be undefined.
  torch::Tensor dead_mask;
  // [batch, d_in] (scaled): what x_hat should reconstruct, for a
  // transcoder (SaeConfig.transcoder); undefined: x itself.
  torch::Tensor target;
  // Data-parallel training: batch sums to their mean over shards, tensors
  // to their sum over shards, the shards' tensors gathered; unset for one
  // process.
  ShardMean shard_mean;
  ShardSum shard_sum;
  ShardGather shard_gather;
};

// One training forward pass, in scaled space.
struct TrainOutput {
  torch::Tensor x_hat;  // [batch, d_in]
  // [batch, n_latents], latent activations; undefined after a sparse step
  // (TrainStepGradients), which sets `fired` instead.
  torch::Tensor f;
  // [n_latents] bool: latents active on some token of the batch; when
  // undefined, the trainer reads (f != 0).any(0).
  torch::Tensor fired;
  torch::Tensor loss;   // [] scalar to minimise
  // Named scalar components of the loss, detached, for logging.
  std::map<std::string, double> terms;
};

// What every architecture's training loss reads. Each architecture defines
// its loss as one pure function of this shape (the single definition its
// TrainForward uses, and what the tests differentiate):
//
//   LossOutput TopKLoss(const LossInputs& inputs, const TopKLossOptions& options);
//   LossOutput out = ReluL1Loss({x, W_enc, b_enc, W_dec, b_dec}, {/*l1_coefficient=*/0.5});
//
// Shapes: x [batch, d_in] (scaled), W_enc [d_in, n], b_enc [n],
// W_dec [n, d_in], b_dec [d_in]; any one float dtype.
struct LossInputs {
  torch::Tensor x;
  torch::Tensor W_enc;
  torch::Tensor b_enc;
  torch::Tensor W_dec;
  torch::Tensor b_dec;
  // The architecture's own parameters by their registered names (jumprelu:
  // log_threshold; gated: r_mag, b_mag).
  std::map<std::string, torch::Tensor> extra;
  // [n] bool: latents that have not fired for dead_after_tokens (AuxK
  // reads it); may be undefined.
  torch::Tensor dead_mask;
  // [batch, d_in]: what x_hat should reconstruct (a transcoder's target);
  // undefined: x. Losses read it through Target().
  torch::Tensor target;
  // TrainStepInfo::shard_mean, shard_sum and shard_gather; unset for one
  // process.
  ShardMean shard_mean;
  ShardSum shard_sum;
  ShardGather shard_gather;

  // extra.at(name); throws (c10::Error) naming the tensor if absent.
  const torch::Tensor& Extra(const std::string& name) const;
  // target if defined, else x.
  const torch::Tensor& Target() const { return target.defined() ? target : x; }
};

// What every architecture's training loss returns.
struct LossOutput {
  torch::Tensor loss;   // [] the scalar to minimise
  torch::Tensor f;      // [batch, n], latent activations
  torch::Tensor x_hat;  // [batch, d_in]
  // Named scalar components of the loss (each architecture's header lists
  // them), undetached unless the header says otherwise.
  std::map<std::string, torch::Tensor> terms;
};

// The TrainOutput of a loss: the same tensors, the terms read out as doubles.
TrainOutput TrainOutputFrom(const LossOutput& loss);

// For an architecture's TrainStepGradients (a hand-written sparse step):
// true when x and every parameter are contiguous CPU float32 (the kernels
// read them as plain arrays), after giving each parameter a grad buffer
// (zeros) if it has none. False otherwise, touching nothing.
//
//   if (!PrepareSparseStep(x, {&W_enc, &b_enc, &W_dec, &b_dec})) return false;
bool PrepareSparseStep(const torch::Tensor& x, std::initializer_list<torch::Tensor*> params);

class Sae : public torch::nn::Module {
 public:
  Sae(int64_t d_in, int64_t n_latents);
  ~Sae() override = default;

  int64_t d_in() const { return d_in_; }
  int64_t n_latents() const { return n_latents_; }

  // "relu_l1", "topk", ... (the SaeConfig.architecture oneof case name).
  virtual std::string architecture() const = 0;

  // ---- Model units. x: [batch, d_in] float32. ----
  // Latent activations [batch, n_latents].
  torch::Tensor Encode(const torch::Tensor& x);
  // Reconstruction [batch, d_in] from latents [batch, n_latents].
  torch::Tensor Decode(const torch::Tensor& f);
  // ReconstructScaled in model units: Decode(Encode(x)), plus the skip
  // connection of a skip transcoder (a transcoder's reconstruction is its
  // estimate of the target, e.g. the MLP's output).
  torch::Tensor Reconstruct(const torch::Tensor& x);
  // The code the training forward gives x [batch, d_in], the rows taken as
  // one training batch, for the architectures whose training code differs
  // from Encode's: BatchTopK keeps the k * batch largest activations of the
  // whole batch in training and thresholds each token at inference.
  // Undefined for the others. Updates no state (BatchTopK's threshold
  // stays).
  torch::Tensor EncodeAsTrained(const torch::Tensor& x);

  // ---- Scaled space (x already multiplied by input_scale). ----
  virtual torch::Tensor EncodeScaled(const torch::Tensor& x) = 0;
  virtual torch::Tensor DecodeScaled(const torch::Tensor& f) = 0;
  // DecodeScaled(EncodeScaled(x)); a skip transcoder adds its linear map of x.
  virtual torch::Tensor ReconstructScaled(const torch::Tensor& x) {
    return DecodeScaled(EncodeScaled(x));
  }
  // EncodeAsTrained in scaled space; undefined unless overridden.
  virtual torch::Tensor EncodeAsTrainedScaled(const torch::Tensor& x) {
    (void)x;
    return {};
  }
  // True for a transcoder (SaeConfig.transcoder): it reconstructs a paired
  // target, not its input.
  virtual bool is_transcoder() const { return false; }
  virtual TrainOutput TrainForward(const torch::Tensor& x, const TrainStepInfo& info) = 0;
  // A hand-written training step (sae/kernels/), where the architecture has
  // one and its config enables it: computes the loss of TrainForward and
  // writes every parameter's gradient into its grad() buffer (allocated on
  // the first call, overwritten in place after), without autograd, and
  // returns true with *out filled (f may be undefined; fired is set).
  // Returns false, touching nothing, where there is none; the trainer then
  // runs TrainForward and backward().
  virtual bool TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                                  TrainOutput* out) {
    (void)x, (void)info, (void)out;
    return false;
  }

  // One-time data-dependent initialisation on a sample [samples, d_in]
  // (scaled) of what the SAE reconstructs (a transcoder's target), before
  // the first step; e.g. TopK's b_dec = geometric median.
  virtual void InitFromSample(const torch::Tensor& x) { (void)x; }
  // Called between backward() and the optimiser step (e.g. to project out
  // the gradient component along unit-norm decoder rows).
  virtual void BeforeOptimizerStep() {}
  // Called after the optimiser step (e.g. to renormalise decoder rows).
  virtual void AfterOptimizerStep() {}
  // After the last step, before the final save: how many of the run's last
  // training batches the SAE wants to see again with its final weights
  // (0: none), and the call that gets them (scaled, in step order). E.g.
  // BatchTopK sets its inference threshold from them.
  virtual int64_t CalibrationBatches() const { return 0; }
  virtual void Calibrate(const std::vector<torch::Tensor>& x) { (void)x; }

  // Decoder directions [n_latents, d_in] (rows are latents), detached.
  torch::Tensor DecoderDirections() const { return W_dec.detach(); }

  // The scalar input scale (1 when normalisation is off).
  double input_scale() const { return input_scale_.item<double>(); }
  void set_input_scale(double scale);

  // Parameters and buffers by their stable names (W_enc, b_enc, W_dec,
  // b_dec, input_scale, ...), for checkpoints and interchange.
  std::map<std::string, torch::Tensor> NamedTensors();

  // The shared parameters; architectures may register more.
  torch::Tensor W_enc;  // [d_in, n_latents]
  torch::Tensor b_enc;  // [n_latents]
  torch::Tensor W_dec;  // [n_latents, d_in]
  torch::Tensor b_dec;  // [d_in]

  // Replaces W_enc with independent random directions (isotropic Gaussian
  // from `seed`), each column keeping the norm it had: the untied init
  // (SaeConfig.encoder_init RANDOM) against which Gao et al. measured the
  // tied one. Call before training.
  void UntieEncoder(uint64_t seed);

 protected:
  // The loss inputs of a training step: x, the four shared parameters,
  // every other registered parameter (in `extra`, by name) and info's dead
  // mask.
  LossInputs LossInputsFor(const torch::Tensor& x, const TrainStepInfo& info);

  // Registers the four shared parameters with the init most SAE recipes
  // share: decoder rows random directions (isotropic Gaussian, from `seed`)
  // of norm `decoder_row_norm`, W_enc = W_dec^T, b_enc = b_dec = 0.
  void RegisterTiedParameters(uint64_t seed, double decoder_row_norm);
  // For unit-norm decoders: removes the gradient component along each
  // decoder row (call before the optimiser step) ...
  void ProjectDecoderGradient();
  // ... and renormalises the rows (call after it).
  void RenormalizeDecoderRows();

  int64_t d_in_;
  int64_t n_latents_;
  torch::Tensor input_scale_;  // [] float32 buffer
};

// The input scale that makes E||x||_2 = sqrt(d_in) on `sample` [samples, d_in].
double EstimateInputScale(const torch::Tensor& sample);

// Removes from grad [n, d] the component parallel to each (unit) row of
// weight [n, d]: grad_i -= <grad_i, w_i> w_i.
void ProjectOutParallelGradient(const torch::Tensor& weight, torch::Tensor& grad);

// The sum of all elements of `t`, differentiable, with bits that do not
// depend on LibTorch's intra-op thread count. ATen sums a tensor of 32768+
// elements into one value by splitting it among its threads and adding
// their partial sums, so t.sum() changes in the last bits with
// --threads; a sum along the rows of a matrix runs each row on one thread.
// So the elements are summed in rows of 8192, then the row sums.
torch::Tensor SumAnyThreadCount(const torch::Tensor& t);

// sum of squares of `t`'s elements in float64, thread-count independent as
// SumAnyThreadCount (per-row norms of 8192-element rows, then their squares
// summed in order), without a temporary of t's size.
double SquaredNormAnyThreadCount(const torch::Tensor& t);

// Scatter of per-row top-k values into a dense [batch, n] tensor of zeros.
// values, indices: [batch, k].
torch::Tensor ScatterTopK(const torch::Tensor& values, const torch::Tensor& indices, int64_t n);

}  // namespace saelab

#endif  // SAELAB_SAE_SAE_H_
