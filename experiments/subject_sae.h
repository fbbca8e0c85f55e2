// subject_sae: SAEs on a subject language model's real activations.
//
// Opens the subject data (data/activations/subject_data.h: the model,
// default the committed reference model data/models/saelab-ref-lm, its
// tokenizer, cached token shards, packed contexts, and an activation store
// harvested once and cached, or streaming from the model); trains every SAE
// of the sweeps from the seeded training stream; evaluates NMSE, FVU, L0
// and dead fraction on the validation split's activations.
//
//   RETURN_IF_ERROR(RunSubjectSae(config, run_dir, &seeds, &result));
#ifndef SAELAB_EXPERIMENTS_SUBJECT_SAE_H_
#define SAELAB_EXPERIMENTS_SUBJECT_SAE_H_

#include <string>

#include "absl/status/status.h"
#include "experiments/experiment_config.pb.h"
#include "harness/result.pb.h"
#include "harness/seed.h"

namespace saelab {

// `config` has its defaults filled in. Appends to result->saes, groups and
// series; fills result->activation_data; records model, tokenizer, corpus,
// shard and store hashes in the provenance.
absl::Status RunSubjectSae(const SubjectSaeConfig& config, const std::string& run_dir,
                           SeedTree* seeds, ExperimentResult* result);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_SUBJECT_SAE_H_
