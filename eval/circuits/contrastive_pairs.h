// Contrastive prompt pairs for circuit discovery (eval/circuits/), built
// reproducibly from the pinned corpora: a prompt is the `context_tokens`
// tokens of a document that end in a subject token whose next token in the
// text is its answer (" thou" -> " art"); its partner is the same prompt
// with the subject swapped for its counterpart (" he"), which calls for the
// counter answer (" is"). The two prompts of a pair have the same length,
// so every position of one lines up with the other's.
//
//   ASSIGN_OR_RETURN(CircuitTaskConfig task, BuiltinCircuitTask("kjv_thou"));
//   ASSIGN_OR_RETURN(ContrastivePairs pairs,
//                    BuildContrastivePairs(task, tokenizer, Split::kVal));
//   ASSIGN_OR_RETURN(TaskAccuracy accuracy, MeasureTaskAccuracy(model, pairs));
#ifndef SAELAB_EVAL_CIRCUITS_CONTRASTIVE_PAIRS_H_
#define SAELAB_EVAL_CIRCUITS_CONTRASTIVE_PAIRS_H_

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/corpus.h"
#include "eval/eval_config.pb.h"

namespace saelab {

struct ContrastivePairs {
  // [pairs, 1 + context_tokens] int64, BOS first; `patch` differs from
  // `clean` in the last position only.
  torch::Tensor clean;
  torch::Tensor patch;
  // [pairs] int64: the answer each prompt calls for.
  torch::Tensor clean_answer;
  torch::Tensor patch_answer;
  // "<document id>:<token index of the subject>" per pair, for the result.
  std::vector<std::string> sources;
  int64_t size() const { return clean.defined() ? clean.size(0) : 0; }
};

// The built-in tasks:
//   "kjv_thou"         KJV; " thou" -> " art" / " hast" vs " he" -> " is" / " hath"
//                      (archaic second-person verb agreement)
//   "brown_agreement"  Brown; " he" -> " was" / " is" / " has" vs " they" ->
//                      " were" / " are" / " have" (number agreement)
// InvalidArgument for another name (listing these).
absl::StatusOr<CircuitTaskConfig> BuiltinCircuitTask(const std::string& name);
std::vector<std::string> BuiltinCircuitTaskNames();

// The pairs of `task` from the documents of task.corpus in `split`
// (LoadCorpus(task.corpus, corpus_dir)): every occurrence of a swap's
// subject followed by its answer (and of its counter subject followed by
// its counter answer, partnered the other way), in corpus order, taken
// round-robin over the four (swap, direction) lists up to task.max_pairs.
// InvalidArgument naming the task and the string for a swap token that is
// not one token of `tokenizer`, for context_tokens < 1 or max_pairs < 1,
// or when no pair is found; the corpus's errors as LoadCorpus.
absl::StatusOr<ContrastivePairs> BuildContrastivePairs(const CircuitTaskConfig& task,
                                                       const BpeTokenizer& tokenizer, Split split,
                                                       const std::string& corpus_dir = "");

// The metric of every pair: logits[:, -1, clean_answer] -
// logits[:, -1, patch_answer] of `logits` [pairs, seq, vocab] -> [pairs].
torch::Tensor LogitDifference(const torch::Tensor& logits, const ContrastivePairs& pairs);

struct TaskAccuracy {
  // Fraction of clean prompts whose answer outscores the partner's answer,
  // and of patch prompts whose answer outscores the clean one's.
  double clean = 0;
  double patch = 0;
  // Mean metric on clean prompts (logit(answer) - logit(counter answer))
  // and on patch prompts (the same difference: negative when right).
  double clean_logit_difference = 0;
  double patch_logit_difference = 0;
};

// How well `model` does the task (no grad).
absl::StatusOr<TaskAccuracy> MeasureTaskAccuracy(const Gpt2Model& model,
                                                 const ContrastivePairs& pairs);

}  // namespace saelab

#endif  // SAELAB_EVAL_CIRCUITS_CONTRASTIVE_PAIRS_H_
