// The SAE trainer: one loop for every architecture.
//
// Deterministic given (config, seed, source) on CPU, and resumable: with
// checkpoint_every_steps > 0 it writes <dir>/train_state.safetensors
// (parameters, Adam moments, dead-latent counters, next step) atomically,
// and a rerun after a kill at any point continues from it to a final SAE
// bit-identical to an uninterrupted run. The final SAE goes to <dir> via
// SaveSae; a rerun finding it loads it instead of training.
//
// Each step: x = input_scale * batch(step); TrainForward; backward;
// BeforeOptimizerStep (e.g. decoder-gradient projection); clip the global
// gradient norm; Adam with the step's learning rate (linear decay to 0 over
// the last lr_decay_fraction); AfterOptimizerStep (e.g. renormalise);
// update the steps-since-fired counters that define dead latents.
//
// Data-parallel over the ranks of a Communicator (harness/distributed.h):
// every rank reads the same global batch, takes its equal shard of the
// rows, and computes the loss and gradients of the shard; one all-reduce
// per step averages the gradients (and sums the loss and the fired
// latents), so every rank applies the same update and the weights stay
// bit-identical across ranks. For losses that are means over rows (ReLU-L1,
// Gated, JumpReLU's L0 penalty), for the TopK family's NMSE and AuxK (whose
// batch sums are averaged over shards, ShardMean in sae/sae.h) and for
// JumpReLU's target-L0 term and batch-silent latents (ShardMean, ShardSum)
// the averaged gradient is the whole batch's gradient up to float rounding;
// the BatchTopK family selects over the global batch (ShardGather). Rank 0
// alone reads and writes the directory (checkpoints, the final SAE) and sends the state it resumed
// from to the others, so a run checkpointed on any number of ranks resumes
// on any other.
//
//   TrainOptions options;
//   options.dir = run_dir + "/saes/" + config.name();
//   ASSIGN_OR_RETURN(TrainResult trained, TrainSae(config, source, seed, options));
#ifndef SAELAB_SAE_TRAINER_H_
#define SAELAB_SAE_TRAINER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sae/sae_config.pb.h"
#include "data/activations/activation_source.h"
#include "harness/distributed.h"
#include "sae/sae.h"

namespace saelab {

struct TrainOptions {
  // Where checkpoints and the final SAE go; empty means keep nothing on disk.
  std::string dir;
  // Stop after this many steps of this call without saving anything more,
  // as a kill would (-1: run to the end). For kill-and-resume tests.
  int64_t stop_after_steps = -1;
  // Progress label; empty means the SAE's name.
  std::string label;
  // The ranks to train data-parallel over; null: ProcessCommunicator()
  // (itself null, one process, unless a worker set it). Not owned.
  Communicator* communicator = nullptr;
};

// The training state after `tokens` tokens, recorded at every progress line.
struct TrainingCurvePoint {
  int64_t tokens = 0;
  double loss = 0;
  // Fraction of latents not fired for trainer.dead_after_tokens tokens.
  double dead_fraction = 0;
};

struct TrainResult {
  std::unique_ptr<Sae> sae;
  // The resolved config the SAE was trained with.
  SaeConfig config;
  int64_t steps = 0;
  // True if the final SAE was already on disk and was loaded, not trained.
  bool loaded_from_disk = false;
  // True if training started from a checkpoint.
  bool resumed = false;
  // False if stop_after_steps ended the call early.
  bool finished = false;
  double wall_seconds = 0;
  // Loss terms of the last step.
  std::map<std::string, double> last_terms;
  // A point at each step with a progress line (step % log_every_steps == 0)
  // and at the last step; kept in the train state across a resume and in
  // <dir>/training_curve.safetensors beside the final SAE (so a loaded SAE
  // has it too; empty for SAEs saved before the curve existed).
  std::vector<TrainingCurvePoint> curve;
};

// Trains `config` (resolved here with ResolveSaeConfig) on `source`, with
// autograd on whatever the caller's grad mode.
// Errors: an invalid config; a source error; an unreadable or mismatched
// checkpoint (a train_state file whose config hash differs is refused);
// data-parallel: a batch size the ranks do not divide (InvalidArgument), a
// peer that died or timed out (Unavailable).
absl::StatusOr<TrainResult> TrainSae(SaeConfig config, ActivationSource& source, uint64_t seed,
                                     const TrainOptions& options = {});

// One SAE of a joint run: what TrainSae takes.
struct TrainJob {
  SaeConfig config;
  uint64_t seed = 0;
  TrainOptions options;
};

// Trains several SAEs (sizes, k, architectures, seeds) from one activation
// stream: each step's batch is read once and every SAE still training steps
// on it, in job order. What is shared is reading the batch (for a model
// source, the forward pass; for a store, the gather); each SAE's training,
// checkpoints, resume and final files are TrainSae's for its job, and its
// weights are bit-identical to training it alone (the same operations on
// the same batches, on CPU). Jobs resumed at different steps are stepped
// earliest first. Returns one result per job, in job order.
// Errors: no jobs; SAEs still to train with different trainer.batch_size
// (InvalidArgument naming both); any job's TrainSae error (the first stops
// every job; each keeps its last checkpoint).
//
//   std::vector<TrainJob> jobs = {{topk_k16, 1, {dir + "/k16"}}, {topk_k32, 2, {dir + "/k32"}}};
//   ASSIGN_OR_RETURN(std::vector<TrainResult> trained, TrainSaes(jobs, source));
absl::StatusOr<std::vector<TrainResult>> TrainSaes(const std::vector<TrainJob>& jobs,
                                                   ActivationSource& source);

// The learning rate at `step`: lr, decaying linearly to 0 over the final
// lr_decay_fraction of total_steps.
double LearningRateAt(const TrainerConfig& trainer, int64_t step, int64_t total_steps);

}  // namespace saelab

#endif  // SAELAB_SAE_TRAINER_H_
