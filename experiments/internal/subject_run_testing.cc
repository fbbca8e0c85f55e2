#include "experiments/internal/subject_run_testing.h"

#include <dirent.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/text/token_shard.h"
#include "harness/status_macros.h"

namespace saelab::experiments_testing {

std::vector<std::string> FilesEndingWith(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* entry = readdir(d)) {
      if (absl::EndsWith(entry->d_name, suffix)) out.push_back(dir + "/" + entry->d_name);
    }
    closedir(d);
  }
  return out;
}

absl::StatusOr<torch::Tensor> CachedValidationContexts(const std::string& cache_dir,
                                                       const Gpt2Model& model,
                                                       int64_t context_length, int64_t n) {
  const std::vector<std::string> shards = FilesEndingWith(cache_dir + "/shards", "-val.tokshard");
  if (shards.size() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(cache_dir, "/shards holds ", shards.size(),
                                                      " validation shards, expected one"));
  }
  ASSIGN_OR_RETURN(TokenShard shard, TokenShard::Open(shards[0]));
  const int32_t eot = static_cast<int32_t>(model.config().eos_token_id);
  return PackContexts(shard, context_length, eot, eot, n);
}

}  // namespace saelab::experiments_testing
