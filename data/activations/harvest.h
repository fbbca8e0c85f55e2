// Harvesting: running the subject model over packed contexts once and
// writing a hook point's activations as an activation store
// (data/activations/store_format.h), resumably.
//
//   ASSIGN_OR_RETURN(ActivationStore store, HarvestActivations(model, contexts, key, dir));
#ifndef SAELAB_DATA_ACTIVATIONS_HARVEST_H_
#define SAELAB_DATA_ACTIVATIONS_HARVEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "data/activations/activation_store.h"
#include "data/activations/activation_store.pb.h"
#include "data/subject_model/gpt2_model.h"

namespace saelab {

struct HarvestOptions {
  // Contexts per chunk file (the last chunk may hold fewer).
  int64_t contexts_per_chunk = 256;
  // Contexts per forward pass.
  int64_t batch_contexts = 32;
  // Simulates a kill, for tests: after writing this many new chunks,
  // HarvestActivations returns Aborted. -1: run to the end.
  int64_t stop_after_chunks = -1;
  // Shown in the progress line ("harvest <label>"); empty: the hook name.
  std::string label;
  // Distributed harvesting: with shard_count > 1, compute only the chunks
  // c with c % shard_count == shard_rank (each rank its share, into the
  // same directories), write no manifest and return no store. Once every
  // rank is done, one call with shard_count 1 verifies the chunks, computes
  // any that are missing and writes the complete manifest.
  int shard_rank = 0;
  int shard_count = 1;
};

// Harvests key.hook_name's activations over contexts[key.context_begin,
// key.context_end) into `dir` (created if needed) and returns the opened
// store. contexts: [N, context_length] int64, the packed contexts (e.g.
// PackContexts of the shard whose sha256 is key.shard_sha256). The hook
// name is parsed here, once.
//
// Resumable and idempotent: chunk files already in `dir` that validate
// (header, key hash, index, size and checksum) are kept, the rest are
// computed, so a rerun after a kill produces exactly the files an
// uninterrupted harvest would, byte for byte (given the same batch_contexts
// and thread count, the forward passes are the same computations). A
// complete store with this key is returned as it is. Shows progress in
// tokens/s on stderr.
//
// Errors: InvalidArgument for a bad range, context_length != contexts.size(1),
// options < 1, or an unknown hook name; FailedPrecondition, naming the
// directory and the field with both values, if `dir` holds a manifest with a
// different key or contexts_per_chunk (refuses to overwrite another store);
// DataLoss naming the manifest if an existing one cannot be read (remove the
// directory to start over); Aborted after options.stop_after_chunks new
// chunks; I/O errors name the file.
absl::StatusOr<ActivationStore> HarvestActivations(const Gpt2Model& model,
                                                   const torch::Tensor& contexts,
                                                   const ActivationStoreKey& key,
                                                   const std::string& dir,
                                                   const HarvestOptions& options = {});

// Several stores from one pass over the model: keys[i] into dirs[i], each
// chunk's forward pass run once (as far as the last hook any store still
// needs) for every store that lacks that chunk. The keys may differ in
// hook_name, target_hook_name and dtype; they must share the context range
// and drop_bos (InvalidArgument otherwise). Each store's files are byte for
// byte those HarvestActivations would write alone (a hook's activations do
// not depend on what the forward computes after it), so stores harvested
// together or apart, killed or not, are interchangeable. Returns the opened
// stores in key order. Errors as HarvestActivations, naming the store;
// stop_after_chunks counts chunks with any store written.
absl::StatusOr<std::vector<ActivationStore>> HarvestActivationsAtHooks(
    const Gpt2Model& model, const torch::Tensor& contexts,
    const std::vector<ActivationStoreKey>& keys, const std::vector<std::string>& dirs,
    const HarvestOptions& options = {});

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_HARVEST_H_
