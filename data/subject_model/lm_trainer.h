// Next-token language-model training for the harness's own subject model:
// AdamW with a linear warm-up and cosine decay, global grad-norm clipping,
// a seeded batch order, periodic validation loss, resumable checkpoints.
//
// Deterministic given (model init, contexts, config, seed) on CPU: a batch
// is a pure function of the step (the contexts of a seeded per-epoch
// permutation), so a run killed at any point and resumed from
// <dir>/lm_train_state.safetensors ends with the same weights, bit for bit.
//
//   ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::RandomInit(shape, seeds.Derive("lm/init")));
//   LmTrainOptions options;
//   options.dir = run_dir + "/lm";
//   ASSIGN_OR_RETURN(LmTrainResult trained,
//                    TrainLanguageModel(config.trainer(), train_contexts, val_contexts,
//                                       seeds.Derive("lm/batches"), options, &model));
#ifndef SAELAB_DATA_SUBJECT_MODEL_LM_TRAINER_H_
#define SAELAB_DATA_SUBJECT_MODEL_LM_TRAINER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/subject_model_config.pb.h"

namespace saelab {

struct LmTrainOptions {
  // Where the resumable checkpoint goes; empty = keep nothing on disk.
  std::string dir;
  // Return after this many steps of this call, as a kill would (-1: run to
  // the end). For kill-and-resume tests.
  int64_t stop_after_steps = -1;
  std::string label = "train lm";
};

struct LmTrainResult {
  // Steps completed in total (== config.steps() when finished).
  int64_t steps = 0;
  bool finished = false;
  bool resumed = false;
  // Training loss (mean next-token cross-entropy, nats) of the first
  // record_first_losses steps, exactly as computed (float32).
  std::vector<float> first_losses;
  // Mean training loss over the last 50 steps.
  double final_train_loss = 0;
  // (step, validation loss) at every evaluation, the last one at the end.
  std::vector<std::pair<int64_t, double>> val_curve;
  double wall_seconds = 0;  // of this call
  int64_t tokens_per_step = 0;
};

// Trains `model` in place on `train_contexts` ([N, L] int64 token ids, each
// context starting with BOS; L = config.context_length()), evaluating on
// `val_contexts` ([M, L]). InvalidArgument for shapes or ids that do not fit
// the model or config; FailedPrecondition for a checkpoint of another config.
absl::StatusOr<LmTrainResult> TrainLanguageModel(const LmTrainerConfig& config,
                                                 const torch::Tensor& train_contexts,
                                                 const torch::Tensor& val_contexts, uint64_t seed,
                                                 const LmTrainOptions& options, Gpt2Model* model);

// The learning rate at `step` (0-based): linear warm-up over warmup_steps to
// lr, then cosine decay to min_lr_fraction * lr at the last step.
double LmLearningRateAt(const LmTrainerConfig& config, int64_t step);

// Mean next-token cross-entropy (nats) of `model` over every position of
// `contexts` [N, L] but the first (which has nothing to predict from), in
// batches of `batch_contexts`. Accumulated in float64 so the value does not
// depend on the batch size beyond float32 rounding of each batch's logits.
absl::StatusOr<double> LanguageModelLoss(const Gpt2Model& model, const torch::Tensor& contexts,
                                         int64_t batch_contexts = 32);

// Baselines on the same positions as LanguageModelLoss: the cross-entropy of
// a unigram model (token counts of `train_contexts` positions 1.., add-one
// smoothed over `vocab_size`) and of the uniform distribution (log V).
double UnigramLoss(const torch::Tensor& train_contexts, const torch::Tensor& val_contexts,
                   int64_t vocab_size);

}  // namespace saelab

#endif  // SAELAB_DATA_SUBJECT_MODEL_LM_TRAINER_H_
