// Test helpers for the subject-model experiment tests: what a finished run
// left in its cache, read back the way the run read it.
//
//   ASSIGN_OR_RETURN(torch::Tensor contexts,
//                    CachedValidationContexts(cache_dir, model, /*context_length=*/32, 32));
#ifndef SAELAB_EXPERIMENTS_INTERNAL_SUBJECT_RUN_TESTING_H_
#define SAELAB_EXPERIMENTS_INTERNAL_SUBJECT_RUN_TESTING_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"

namespace saelab::experiments_testing {

// The paths of the files directly in `dir` whose names end with `suffix`
// (none if `dir` cannot be read).
std::vector<std::string> FilesEndingWith(const std::string& dir, const std::string& suffix);

// The first `n` validation contexts a subject_sae run with
// activations.cache_dir = `cache_dir` packed: its one cached validation
// token shard (<cache_dir>/shards/*-val.tokshard), packed into contexts of
// `context_length` tokens that start with the model's <|endoftext|>.
// [n, context_length] int64. FailedPrecondition unless exactly one
// validation shard is cached.
absl::StatusOr<torch::Tensor> CachedValidationContexts(const std::string& cache_dir,
                                                       const Gpt2Model& model,
                                                       int64_t context_length, int64_t n);

}  // namespace saelab::experiments_testing

#endif  // SAELAB_EXPERIMENTS_INTERNAL_SUBJECT_RUN_TESTING_H_
