// A TopK SAE whose latents are split across the ranks of a Communicator
// (harness/distributed.h), as OpenAI sharded theirs: rank r holds a
// contiguous block of latents (its columns of W_enc, entries of b_enc, rows
// of W_dec) and every rank holds b_dec and sees the whole batch. Per batch:
//
//   z_r  = (x - b_dec) W_enc_r + b_enc_r            [batch, n_r], local
//   top-k: each rank's k best per row (value, global index) are all-gathered
//          and the k best of the N k candidates kept (the global top-k);
//   x_hat = b_dec + all-reduce over r of sum_{selected latents of r} ReLU(z) W_dec row
//
// so no rank ever holds more than its n / N latents' weights, and the
// traffic per batch is the candidates (batch * k * 8 B per rank) and one
// [batch, d] all-reduce, whatever n is (docs/scaling.md). Loss() is
// differentiable: its backward all-reduces the [batch, d] gradient that
// reaches x - b_dec, so every rank gets its own shard's gradients and the
// same b_dec gradient as one process would.
//
// Status: the encode, decode, loss with gradients and a training loop
// (TrainLatentShardedTopK), checked against the unsharded SAE; no
// checkpoints yet, and the experiments do not use it.
//
//   LatentShardedTopK sharded = *LatentShardedTopK::FromFull(full_sae, comm);
//   ASSIGN_OR_RETURN(LatentShardedTopK::Code code, sharded.Encode(x));  // global top-k
//   ASSIGN_OR_RETURN(torch::Tensor loss, sharded.Loss(x));
//   RETURN_IF_ERROR(sharded.Backward(loss));   // grads in sharded.W_enc.grad(), ...
//   // Or train one, each rank holding 1/N of it:
//   ASSIGN_OR_RETURN(ShardedTrainResult trained,
//                    TrainLatentShardedTopK(config, source, seed, comm));
#ifndef SAELAB_SAE_LATENT_SHARDING_H_
#define SAELAB_SAE_LATENT_SHARDING_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "harness/distributed.h"
#include "sae/sae_config.pb.h"
#include "sae/topk.h"

namespace saelab {

class LatentShardedTopK {
 public:
  // Latents [begin, end) of rank `rank` of `world` for n latents: blocks of
  // ceil(n / world), the last one shorter (possibly empty).
  static std::pair<int64_t, int64_t> ShardRange(int64_t n, int rank, int world);

  // This rank's shard of `full` (a plain TopK SAE, not a transcoder), as
  // leaf tensors that require grad. A shard with fewer than k latents
  // offers what it has. Errors: a transcoder.
  static absl::StatusOr<LatentShardedTopK> FromFull(TopKSae& full, Communicator& comm);
  // This rank's shard of the SAE CreateSae(config, d_in, seed) creates
  // (the same bits), without ever holding the whole: the decoder's random
  // rows are drawn in blocks and only this rank's are kept. config must be
  // resolved (ResolveSaeConfig), TopK, tied, not a transcoder.
  static absl::StatusOr<LatentShardedTopK> Create(const SaeConfig& config, int64_t d_in,
                                                  uint64_t seed, Communicator& comm);

  // The global code of x [batch, d] (scaled space): ReLU'd values and
  // global latent indices [batch, k], best first: the latents TopKSae's
  // top-k picks (ties between equal values aside), the values to the
  // rounding of a GEMM over this rank's columns.
  struct Code {
    torch::Tensor values;   // [batch, k] float
    torch::Tensor indices;  // [batch, k] int64
  };
  absl::StatusOr<Code> Encode(const torch::Tensor& x);
  // x_hat [batch, d], the same on every rank.
  absl::StatusOr<torch::Tensor> Reconstruct(const torch::Tensor& x);
  // NMSE(x_hat, x) over the batch, the same on every rank; differentiable
  // in this rank's W_enc, b_enc, W_dec and in b_dec.
  absl::StatusOr<torch::Tensor> Loss(const torch::Tensor& x);
  // loss.backward() on every rank (its collectives must run everywhere).
  absl::Status Backward(const torch::Tensor& loss);

  // The training loss of TopKLoss (sae/topk.h) without Multi-TopK: NMSE,
  // plus auxk_coefficient times AuxK over the top min(k_aux, dead) of the
  // latents dead on any shard (dead: this shard's [end - begin] bool mask;
  // undefined or a 0 coefficient: no AuxK).
  struct LossTerms {
    torch::Tensor loss, nmse, auxk;  // auxk undefined when off
    torch::Tensor fired;             // [end - begin] bool: this shard's latents active in the code
  };
  absl::StatusOr<LossTerms> LossWithAuxK(const torch::Tensor& x, const torch::Tensor& dead,
                                         int64_t k_aux, double auxk_coefficient);

  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

  torch::Tensor W_enc;  // [d, end - begin]
  torch::Tensor b_enc;  // [end - begin]
  torch::Tensor W_dec;  // [end - begin, d]
  torch::Tensor b_dec;  // [d], replicated

 private:
  // The global top-k of this batch and, for this rank, the differentiable
  // ReLU'd values of the entries it owns (0 elsewhere) with their local
  // indices.
  struct Selection {
    Code code;
    torch::Tensor own_values;   // [batch, k], differentiable
    torch::Tensor own_indices;  // [batch, k] local, 0 where not owned
  };
  // z [batch, size] = (x - b_dec) W_enc + b_enc, differentiable.
  torch::Tensor PreActivations(const torch::Tensor& x);
  // The global top-k of z among this shard's `eligible` latents ([size]
  // bool; undefined: all) and every other rank's.
  absl::StatusOr<Selection> Select(const torch::Tensor& z, int64_t k,
                                   const torch::Tensor& eligible);
  // sum over ranks of each rank's selected entries' decode, no bias [batch, d].
  absl::StatusOr<torch::Tensor> DecodeOwn(const Selection& selection, int64_t d);

  Communicator* comm_ = nullptr;
  int64_t k_ = 0;
  int64_t begin_ = 0, end_ = 0;
};

struct ShardedTrainResult {
  LatentShardedTopK shard;
  SaeConfig config;  // resolved
  double input_scale = 1;
  int64_t steps = 0;         // the steps done (all of them unless stopped)
  int64_t resumed_from = 0;  // the step a checkpoint resumed it from (0: none)
  double last_loss = 0;
  bool finished = false;  // false when stopped by stop_after_steps
};

// Where and how often a latent-sharded training checkpoints.
struct ShardedTrainOptions {
  // Each rank keeps its shard's train state (weights, Adam moments,
  // dead-latent counters, the step) in
  // <dir>/shard-<rank>-of-<world>.step-<S>.safetensors every
  // trainer.checkpoint_every_steps; a run started again in the same dir on
  // as many ranks resumes from the newest step every rank has, bit for bit.
  // Empty: no checkpoints.
  std::string dir;
  // Stops before this step as a kill would (for tests); -1: run to the end.
  int64_t stop_after_steps = -1;
};

// Trains a TopK SAE (no Multi-TopK, tied init, not a transcoder) with its
// latents sharded over comm's ranks, by TrainSae's recipe (sae/trainer.h):
// input scale and geometric-median b_dec from the init sample, the step's
// batch on every rank, NMSE + AuxK, decoder-gradient projection, the global
// gradient-norm clip (one all-reduce of the shards' squared norms), Adam
// with the linear-decay schedule, unit decoder rows, dead latents per
// shard. Equal to TrainSae's SAE to float rounding (the test holds the two
// within 1e-4 relative). Checkpoints per shard (options); no rank ever
// holds more than its shard. The caller gets the shard (GatherOnRankZero
// assembles the whole).
// Errors: an unsupported config (InvalidArgument); a source error; a
// failed collective (Unavailable); a non-finite loss (FailedPrecondition);
// a shard checkpoint of another config or compute settings
// (FailedPrecondition, naming the file).
absl::StatusOr<ShardedTrainResult> TrainLatentShardedTopK(SaeConfig config,
                                                          ActivationSource& source, uint64_t seed,
                                                          Communicator& comm,
                                                          const ShardedTrainOptions& options = {});

// A latent-sharded training through to the saved SAE, as `saelab train
// --shard_latents` and the experiments' --shard_latents run it:
// TrainLatentShardedTopK with its shard states in <dir>/shard_states (a
// killed run started again resumes there), the SAE assembled on rank 0 and
// saved at `dir` (SaveSae), then the shard states removed. Every rank
// passes rank 0's `dir`. Returns the training and, on rank 0, the
// assembled SAE (null on the others).
//   ASSIGN_OR_RETURN(SavedShardedTraining saved,
//                    TrainLatentShardedTopKAndSave(config, source, seed, comm, out));
struct SavedShardedTraining {
  ShardedTrainResult trained;
  std::unique_ptr<Sae> sae;
};
absl::StatusOr<SavedShardedTraining> TrainLatentShardedTopKAndSave(const SaeConfig& config,
                                                                   ActivationSource& source,
                                                                   uint64_t seed,
                                                                   Communicator& comm,
                                                                   const std::string& dir);

// The whole SAE of a sharded training, assembled on rank 0 (a TopKSae with
// trained.config, its weights and input scale); null on the other ranks.
// Rank 0 needs the whole SAE's memory; every rank must call it.
absl::StatusOr<std::unique_ptr<Sae>> GatherOnRankZero(const ShardedTrainResult& trained,
                                                      int64_t d_in, Communicator& comm);

}  // namespace saelab

#endif  // SAELAB_SAE_LATENT_SHARDING_H_
