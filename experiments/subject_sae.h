// subject_sae: SAEs on a subject language model's real activations.
//
// Loads the subject model (default: the committed reference model,
// data/models/saelab-ref-lm) and its tokenizer; tokenizes the train and
// validation splits of the corpora into token shards (cached, keyed by
// tokenizer and corpus hashes); packs them into contexts; harvests the
// hook's activations over the training contexts into an activation store
// (cached, keyed by model hash, hook, shard, range, context length, dtype,
// BOS handling; resumes after a kill) or streams them from the model; trains
// every SAE of the sweeps from a seeded shuffling buffer; evaluates NMSE,
// FVU, L0 and dead fraction on the validation split's activations.
//
//   RETURN_IF_ERROR(RunSubjectSae(config, run_dir, &seeds, &result));
#ifndef SAELAB_EXPERIMENTS_SUBJECT_SAE_H_
#define SAELAB_EXPERIMENTS_SUBJECT_SAE_H_

#include <string>

#include "absl/status/status.h"
#include "harness/config.pb.h"
#include "harness/result.pb.h"
#include "harness/seed.h"

namespace saelab {

// `config` has its defaults filled in. Appends to result->saes, groups and
// series; fills result->activation_data; records model, tokenizer, corpus,
// shard and store hashes in the provenance.
absl::Status RunSubjectSae(const SubjectSaeConfig& config, const std::string& run_dir,
                           SeedTree* seeds, ExperimentResult* result);

// The cache folder for token shards and activation stores: `configured` if
// set, else ${XDG_CACHE_HOME:-$HOME/.cache}/saelab.
std::string SaelabCacheDir(const std::string& configured);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_SUBJECT_SAE_H_
