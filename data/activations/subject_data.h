// The one entry point from a SubjectActivationsConfig to everything an
// experiment on a subject model's activations needs: the model and its
// tokenizer, the packed train and validation contexts, the hook parsed once
// into a typed location, the validation rows for evaluation, and the
// training stream (an activation store harvested once and cached, or
// streaming from the model), with every input's hash in the provenance.
//
//   ASSIGN_OR_RETURN(SubjectData data,
//                    OpenSubjectData(config.activations(), seeds->Derive("data/train_stream"),
//                                    result->mutable_provenance()));
//   TrainSae(sae_config, *data.source, seed, options);    // [batch, d_in] rows
//   EvaluateReconstruction(*sae, data.eval_rows);         // [rows, d_in]
//   data.model.Forward(data.val_contexts, hooks);         // splice at data.hook_name
#ifndef SAELAB_DATA_ACTIVATIONS_SUBJECT_DATA_H_
#define SAELAB_DATA_ACTIVATIONS_SUBJECT_DATA_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "data/activations/activation_store.h"
#include "data/activations/activations_config.pb.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "data/text/bpe_tokenizer.h"
#include "harness/result.pb.h"

namespace saelab {

struct SubjectData {
  // The resolved model directory and the sha256 of its model.safetensors.
  std::string model_dir;
  std::string model_sha256;
  Gpt2Model model;
  BpeTokenizer tokenizer;
  // config.hook_name, parsed against the model once.
  std::string hook_name;
  HookLocation hook_location;
  // config.target_hook_name, parsed; empty / unset for plain rows. When set,
  // eval_rows and the training stream hold paired rows [input | target].
  std::string target_hook_name;
  std::optional<HookLocation> target_location;
  // Packed contexts, each starting with <|endoftext|> as BOS:
  // [n, context_length] int64.
  torch::Tensor train_contexts;
  torch::Tensor val_contexts;
  // The hook's activations over val_contexts, as store rows (BOS dropped
  // when config.drop_bos): [n_val * rows_per_context, d_in] float32
  // ([..., 2 d_in] paired rows with a target hook).
  torch::Tensor eval_rows;
  // The store the training stream reads (null when streaming).
  std::unique_ptr<ActivationStore> store;
  // The training stream: a seeded shuffling source over the store, or the
  // model itself (config.use_store false).
  std::unique_ptr<ActivationSource> source;
  // What was opened, for the result (model hash, hook, sizes, store).
  ActivationDataResult summary;
};

// Opens the model in config.model_dir (absolute, relative to the working
// directory, or a runfile), its tokenizer, the corpora's train and val
// splits (token shards cached under SaelabCacheDir(config.cache_dir)), packs
// them, parses the hook, computes the evaluation rows, and opens the
// training stream (harvesting the store on first use; resumes a killed
// harvest). `data_seed` seeds the stream's shuffling. Records the model,
// tokenizer, corpus, shard and store hashes and the phases' wall times in
// `provenance`.
//
// Errors name the field: NotFound for a model_dir without config.json;
// InvalidArgument for an unknown hook_name (listing the valid names), a
// context_length outside [2, n_positions], a tokenizer without
// <|endoftext|>, or splits that pack into no context; the store's errors
// (a store of another key in the way, corrupt chunks) as HarvestActivations.
//
// harvest_also: other hook names whose stores (the same config otherwise)
// are harvested in the same pass over the model as hook_name's, when a
// store is harvested at all; a later OpenSubjectData at one of them finds
// its store complete.
absl::StatusOr<SubjectData> OpenSubjectData(const SubjectActivationsConfig& config,
                                            uint64_t data_seed, Provenance* provenance,
                                            const std::vector<std::string>& harvest_also = {});

// The cache folder for token shards and activation stores: `configured` if
// set, else ${XDG_CACHE_HOME:-$HOME/.cache}/saelab.
std::string SaelabCacheDir(const std::string& configured);

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_SUBJECT_DATA_H_
