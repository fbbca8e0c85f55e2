// train_subject_lm: the harness's own reference subject model.
//
// Loads the pinned corpora, learns a BPE vocabulary on the training split,
// tokenizes train and validation splits into token shards, packs them into
// contexts that start with <|endoftext|> (BOS), trains a GPT-2-architecture
// model with AdamW (data/subject_model/lm_trainer.h), and writes an HF-format directory
// (config.json, model.safetensors, vocab.json, merges.txt) to
// <run_dir>/model. Reports validation loss beside unigram and uniform
// baselines, and the first steps' losses bit-exact for reproduction checks.
//
//   RETURN_IF_ERROR(RunTrainSubjectLm(config, run_dir, &seeds, &result));
#ifndef SAELAB_EXPERIMENTS_TRAIN_SUBJECT_LM_H_
#define SAELAB_EXPERIMENTS_TRAIN_SUBJECT_LM_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "experiments/experiment_config.pb.h"
#include "harness/result.pb.h"
#include "harness/seed.h"

namespace saelab {

struct TrainSubjectLmOptions {
  // Stop LM training after this many steps and return without a model, as a
  // kill would (-1: run to the end). For reproduction tests.
  int64_t stop_after_steps = -1;
};

// `config` has its defaults filled in. Fills result->language_model, a
// "val loss vs step" series, and input hashes and phase timings in the
// provenance.
absl::Status RunTrainSubjectLm(const TrainSubjectLmConfig& config, const std::string& run_dir,
                               SeedTree* seeds, ExperimentResult* result,
                               const TrainSubjectLmOptions& options = {});

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_TRAIN_SUBJECT_LM_H_
