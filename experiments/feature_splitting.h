// Feature splitting across dictionary sizes (Anthropic 2023, "Towards
// Monosemanticity": one latent of a small dictionary becomes a family of
// more specific latents in a larger one, and latents of every size that
// share a concept sit together on a map of decoder directions).
//
// For each pair (smaller, larger) of the given SAEs, smallest with largest
// first and then each size with the next: every live latent of the larger
// dictionary gets its nearest live latent of the smaller one by decoder
// cosine and by Pearson correlation of activations over the evaluation
// rows; a large latent whose best cosine reaches the threshold joins that
// small latent's family. The largest families are reported with their top
// contexts, and a t-SNE map (harness/tsne.h) of decoder directions of all
// the dictionaries is drawn with the first pair's families marked.
//
//   std::vector<SplittingSae> saes = ...;   // one per dictionary size
//   RETURN_IF_ERROR(AnalyzeFeatureSplitting(config.feature_splitting(), saes, data.eval_rows,
//                                           data.val_contexts, data.tokenizer,
//                                           seeds->Derive("feature_splitting"),
//                                           result.mutable_feature_splitting()));
#ifndef SAELAB_EXPERIMENTS_FEATURE_SPLITTING_H_
#define SAELAB_EXPERIMENTS_FEATURE_SPLITTING_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/text/bpe_tokenizer.h"
#include "experiments/experiment_config.pb.h"
#include "harness/result.pb.h"
#include "sae/sae.h"

namespace saelab {

struct SplittingSae {
  std::unique_ptr<Sae> sae;
  // Its entry in the result: the name, and where the pair metrics of the
  // larger SAE of each consecutive pair go (split_mean_max_cosine,
  // split_fraction_matched, split_nearest_agreement, split_families, and
  // split_random_mean_max_cosine: the mean max cosine that random unit
  // directions reach against the same smaller dictionary, the chance level).
  SaeResult* result = nullptr;
};

// `eval_rows` [rows, d_in] are the hook activations of `val_contexts`
// [contexts, L] (rows per context = rows / contexts; a missing first
// position is the dropped BOS). InvalidArgument for fewer than two
// dictionary sizes, mismatched rows, or a bad config value.
absl::Status AnalyzeFeatureSplitting(const FeatureSplittingConfig& config,
                                     std::vector<SplittingSae>& saes,
                                     const torch::Tensor& eval_rows,
                                     const torch::Tensor& val_contexts,
                                     const BpeTokenizer& tokenizer, uint64_t seed,
                                     FeatureSplittingResult* out);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_FEATURE_SPLITTING_H_
