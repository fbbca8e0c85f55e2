#include "eval/circuits/contrastive_pairs.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

ContrastiveSwap Swap(const char* subject, const char* answer, const char* counter_subject,
                     const char* counter_answer) {
  ContrastiveSwap swap;
  swap.set_subject(subject);
  swap.set_answer(answer);
  swap.set_counter_subject(counter_subject);
  swap.set_counter_answer(counter_answer);
  return swap;
}

absl::StatusOr<int32_t> SingleToken(const BpeTokenizer& tokenizer, const std::string& text,
                                    const CircuitTaskConfig& task) {
  std::optional<int32_t> id = tokenizer.TokenId(text);
  if (!id) {
    return absl::InvalidArgumentError(absl::StrCat("circuit task \"", task.name(), "\": \"", text,
                                                   "\" is not one token of the vocabulary"));
  }
  return *id;
}

// One direction of one swap, as token ids.
struct Direction {
  int32_t subject, answer, counter_subject, counter_answer;
};

struct Candidate {
  std::vector<int64_t> clean;  // context_tokens ids, the subject last
  const Direction* direction;
  std::string source;
};

}  // namespace

std::vector<std::string> BuiltinCircuitTaskNames() { return {"kjv_thou", "brown_agreement"}; }

absl::StatusOr<CircuitTaskConfig> BuiltinCircuitTask(const std::string& name) {
  CircuitTaskConfig task;
  task.set_name(name);
  if (name == "kjv_thou") {
    task.set_corpus("kjv");
    *task.add_swaps() = Swap(" thou", " art", " he", " is");
    *task.add_swaps() = Swap(" thou", " hast", " he", " hath");
  } else if (name == "brown_agreement") {
    task.set_corpus("brown");
    *task.add_swaps() = Swap(" he", " was", " they", " were");
    *task.add_swaps() = Swap(" he", " is", " they", " are");
    *task.add_swaps() = Swap(" he", " has", " they", " have");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown circuit task \"", name, "\"; the built-in tasks are ",
                     absl::StrJoin(BuiltinCircuitTaskNames(), ", ")));
  }
  return task;
}

absl::StatusOr<ContrastivePairs> BuildContrastivePairs(const CircuitTaskConfig& task,
                                                       const BpeTokenizer& tokenizer, Split split,
                                                       const std::string& corpus_dir) {
  const std::string what = absl::StrCat("circuit task \"", task.name(), "\"");
  if (task.context_tokens() < 1 || task.max_pairs() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": context_tokens and max_pairs must be >= 1"));
  }
  if (task.swaps().empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no swaps"));
  if (!tokenizer.eos_id()) {
    return absl::InvalidArgumentError("the tokenizer has no <|endoftext|> to use as BOS");
  }
  std::vector<Direction> directions;
  for (const ContrastiveSwap& swap : task.swaps()) {
    ASSIGN_OR_RETURN(int32_t subject, SingleToken(tokenizer, swap.subject(), task));
    ASSIGN_OR_RETURN(int32_t answer, SingleToken(tokenizer, swap.answer(), task));
    ASSIGN_OR_RETURN(int32_t counter_subject, SingleToken(tokenizer, swap.counter_subject(), task));
    ASSIGN_OR_RETURN(int32_t counter_answer, SingleToken(tokenizer, swap.counter_answer(), task));
    if (answer == counter_answer || subject == counter_subject) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": a swap's two subjects and two answers must differ"));
    }
    directions.push_back({subject, answer, counter_subject, counter_answer});
    directions.push_back({counter_subject, counter_answer, subject, answer});
  }
  ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus(task.corpus(), corpus_dir));
  const int64_t context = task.context_tokens();
  std::vector<std::vector<Candidate>> found(directions.size());
  for (const Document* document : DocumentsInSplit(corpus, split)) {
    const std::vector<int32_t> ids = tokenizer.Encode(document->text);
    for (int64_t i = context - 1; i + 1 < static_cast<int64_t>(ids.size()); ++i) {
      for (size_t d = 0; d < directions.size(); ++d) {
        if (ids[i] != directions[d].subject || ids[i + 1] != directions[d].answer) continue;
        found[d].push_back({std::vector<int64_t>(ids.begin() + (i - context + 1),
                                                 ids.begin() + i + 1),
                            &directions[d], absl::StrCat(document->id, ":", i)});
      }
    }
  }
  // Round-robin over the directions, so that no answer dominates the set.
  std::vector<const Candidate*> chosen;
  for (size_t round = 0; static_cast<int64_t>(chosen.size()) < task.max_pairs(); ++round) {
    bool any = false;
    for (const auto& list : found) {
      if (round >= list.size() || static_cast<int64_t>(chosen.size()) >= task.max_pairs()) continue;
      chosen.push_back(&list[round]);
      any = true;
    }
    if (!any) break;
  }
  if (chosen.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no subject followed by its answer in the ",
                                                   SplitName(split), " split of ", task.corpus()));
  }
  const int64_t n = static_cast<int64_t>(chosen.size());
  ContrastivePairs pairs;
  pairs.clean = torch::full({n, context + 1}, static_cast<int64_t>(*tokenizer.eos_id()), torch::kInt64);
  pairs.clean_answer = torch::empty({n}, torch::kInt64);
  pairs.patch_answer = torch::empty({n}, torch::kInt64);
  auto clean = pairs.clean.accessor<int64_t, 2>();
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t t = 0; t < context; ++t) clean[p][t + 1] = chosen[p]->clean[t];
    pairs.clean_answer[p] = chosen[p]->direction->answer;
    pairs.patch_answer[p] = chosen[p]->direction->counter_answer;
    pairs.sources.push_back(chosen[p]->source);
  }
  pairs.patch = pairs.clean.clone();
  for (int64_t p = 0; p < n; ++p) pairs.patch[p][context] = chosen[p]->direction->counter_subject;
  return pairs;
}

torch::Tensor LogitDifference(const torch::Tensor& logits, const ContrastivePairs& pairs) {
  using torch::indexing::Slice;
  const torch::Tensor last = logits.select(1, logits.size(1) - 1);  // [pairs, vocab]
  return last.gather(1, pairs.clean_answer.unsqueeze(1)).squeeze(1) -
         last.gather(1, pairs.patch_answer.unsqueeze(1)).squeeze(1);
}

absl::StatusOr<TaskAccuracy> MeasureTaskAccuracy(const Gpt2Model& model,
                                                 const ContrastivePairs& pairs) {
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(torch::Tensor clean_logits, model.Forward(pairs.clean));
  ASSIGN_OR_RETURN(torch::Tensor patch_logits, model.Forward(pairs.patch));
  const torch::Tensor clean = LogitDifference(clean_logits, pairs);
  const torch::Tensor patch = LogitDifference(patch_logits, pairs);
  TaskAccuracy accuracy;
  accuracy.clean = (clean > 0).to(torch::kFloat64).mean().item<double>();
  accuracy.patch = (patch < 0).to(torch::kFloat64).mean().item<double>();
  accuracy.clean_logit_difference = clean.to(torch::kFloat64).mean().item<double>();
  accuracy.patch_logit_difference = patch.to(torch::kFloat64).mean().item<double>();
  return accuracy;
}

}  // namespace saelab
