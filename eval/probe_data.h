// Labelled activation sets for probes and classifiers, built from the real
// labels of the pinned corpora (data/text/corpus.h) and read at a hook of the
// subject model.
//
//   ASSIGN_OR_RETURN(std::vector<ProbeDataset> tasks,
//                    BuildProbeDatasets(model, tokenizer, hook_name, config.probe(), seed));
//   for (const ProbeDataset& task : tasks) {
//     torch::Tensor f = PoolByExample(sae.Encode(task.train.rows), task.train);  // [N, n]
//   }
//
// The built-in tasks (ProbeEvalConfig.tasks names them; empty = the binary
// ones):
//   token level (one example = one token, read where the token sits):
//     brown_noun        Brown words tagged nn* (common nouns) vs other words,
//                       at each word's last token
//     digit_token       tokens whose text contains [0-9] vs others (Brown)
//     capitalized_token tokens whose text is [ ]?[A-Z]... vs others (Brown)
//     in_quotation      tokens of words between `` and '' vs others (Brown)
//   document level (one example = the mean over the tokens of one context of a
//   document, BOS excluded):
//     brown_fiction     Brown's fiction genres vs its non-fiction ones
//     fortunes_german   German fortunes vs the seven other languages
//     kjv_scripture     KJV chapters vs Brown documents and nlp-corpus sentences
//   multi-class, document level (feature-based classification):
//     brown_genre       Brown's 15 genres
//     fortunes_language the fortunes' 8 languages
// Brown text is tokenised word by word (" " + word, `` and '' as ") so that
// every token belongs to one tagged word. Documents are split into train and
// test by a hash of their id (corpus.h's SplitOf with test_fraction), so no
// document gives examples to both; each class is sampled (seeded) to at most
// the configured number of examples per split.
#ifndef SAELAB_EVAL_PROBE_DATA_H_
#define SAELAB_EVAL_PROBE_DATA_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "eval/eval_config.pb.h"

namespace saelab {

struct ProbeDataset {
  std::string name;                      // "brown_noun"
  std::string description;               // what the positive class is
  bool pooled = false;                   // document level: mean over the example's rows
  std::vector<std::string> class_names;  // binary: {negative, positive}

  struct Split {
    torch::Tensor rows;            // [R, d_in] float32, hook activations
    torch::Tensor example_of_row;  // [R] int64 in [0, N), non-decreasing
    torch::Tensor labels;          // [N] int64 in [0, classes)
    int64_t examples() const { return labels.numel(); }
  };
  Split train, test;
};

// features [R, m] (rows of `split`, e.g. SAE latents) -> [N, m]: the mean
// over each example's rows (the rows themselves for token-level sets).
torch::Tensor PoolByExample(const torch::Tensor& features, const ProbeDataset::Split& split);

// OkStatus if both splits' rows are [R, d_in]; else InvalidArgument
// "<evaluation> task <name>: activation rows are W wide but the SAE's d_in
// is D".
absl::Status CheckRowsWidth(const ProbeDataset& task, int64_t d_in, absl::string_view evaluation);

// One token sequence of a task with its labels, before it meets the model.
struct LabelledSequence {
  std::string document_id;           // decides the train/test split
  std::vector<int32_t> tokens;       // without BOS
  std::vector<int64_t> token_labels; // token level: per token, -1 = not an example
  int64_t label = -1;                // document level: the class of every context
};

// The sequences of a built-in task, the task's class names and level.
struct ProbeTaskText {
  std::string name, description;
  bool pooled = false;
  std::vector<std::string> class_names;
  std::vector<LabelledSequence> sequences;
};

// The built-in task names, binary tasks first.
std::vector<std::string> BuiltinProbeTasks(bool include_multiclass);

// Reads the corpora and builds the labelled sequences of the named built-in
// tasks; document-level sequences keep their first `max_document_tokens`
// tokens (-1: all). InvalidArgument naming an unknown task (and listing the
// known ones).
absl::StatusOr<std::vector<ProbeTaskText>> BuildProbeTaskTexts(
    const BpeTokenizer& tokenizer, const std::vector<std::string>& names,
    int64_t max_document_tokens = -1);

// Runs `task`'s sequences through the model to the hook and samples the
// examples: token level, packed contexts [BOS, tokens...] of
// config.context_length(); document level, up to config.contexts_per_document()
// contexts per sequence, each one example. InvalidArgument naming the task and
// split if a class ends up with no example there (a task with one class);
// the model's errors for a bad hook.
absl::StatusOr<ProbeDataset> BuildProbeDataset(const Gpt2Model& model, const std::string& hook_name,
                                               int64_t bos_token, const ProbeTaskText& task,
                                               const ProbeEvalConfig& config, uint64_t seed);

// BuildProbeTaskTexts then BuildProbeDataset for each (seeds derived from
// `seed` and the task's name). config.tasks() empty: the binary built-ins.
absl::StatusOr<std::vector<ProbeDataset>> BuildProbeDatasets(const Gpt2Model& model,
                                                             const BpeTokenizer& tokenizer,
                                                             const std::string& hook_name,
                                                             const ProbeEvalConfig& config,
                                                             uint64_t seed);

}  // namespace saelab

#endif  // SAELAB_EVAL_PROBE_DATA_H_
