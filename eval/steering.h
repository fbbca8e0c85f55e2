// Steering by clamping one latent (Anthropic, "Scaling Monosemanticity": the
// Golden Gate Bridge feature): find the latent of a concept from contrasting
// texts, clamp it to multiples of its largest observed activation while the
// model generates (error term kept, so only the edit changes the model), and
// measure how often the continuations show the concept and what the clamp
// costs in fluency.
//
//   ASSIGN_OR_RETURN(ConceptTexts texts, BuiltinConceptTexts("scripture", tokenizer, 64, 256));
//   ASSIGN_OR_RETURN(ConceptLatent found, FindConceptLatent(model, hook, sae, texts));
//   ASSIGN_OR_RETURN(SteeringScores scores,
//                    SteerLatent(model, tokenizer, hook, sae, found, texts.pattern, config, seed));
//   scores.WriteTo(sae_result);
//
// Concept rate: the fraction of continuations in which the concept's RE2
// pattern matches. Fluency loss: the mean next-token cross-entropy of the
// continuation tokens under the clean model (no SAE), given the prompt; the
// unsteered model's continuations are the reference. Every continuation is
// seeded by (prompt, sample) only, so the clamp value is the one thing that
// differs between rows of the table.
#ifndef SAELAB_EVAL_STEERING_H_
#define SAELAB_EVAL_STEERING_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "eval/eval_config.pb.h"
#include "harness/result.pb.h"
#include "sae/sae.h"

namespace saelab {

struct ConceptTexts {
  std::string concept;
  std::string pattern;      // RE2, matched against a continuation's text
  torch::Tensor concept_contexts;   // [N, L] int64, BOS first
  torch::Tensor contrast_contexts;  // [M, L] int64, BOS first
};

// "scripture": KJV vs Brown and nlp-corpus; "german": German fortunes vs the
// fortunes of the other languages. Each side's documents are joined with
// <|endoftext|> and cut into up to `max_contexts` contexts of `context_length`.
// InvalidArgument naming an unknown concept (and the known ones).
absl::StatusOr<ConceptTexts> BuiltinConceptTexts(const std::string& concept,
                                                 const BpeTokenizer& tokenizer,
                                                 int64_t context_length, int64_t max_contexts);

struct ConceptLatent {
  int64_t latent = -1;
  // Firing rates (fraction of tokens, BOS excluded) and mean activations.
  double concept_rate = 0, contrast_rate = 0;
  double concept_mean = 0, contrast_mean = 0;
  double max_activation = 0;  // on the concept's texts: the clamp unit
};

// The latent whose firing rate on the concept's tokens exceeds its rate on
// the contrast tokens the most (ties: the larger mean difference, then the
// lower id). Errors: the hook's and the SAE's (wrong d_in), empty contexts.
absl::StatusOr<ConceptLatent> FindConceptLatent(const Gpt2Model& model,
                                                const std::string& hook_name, Sae& sae,
                                                const ConceptTexts& texts);

struct SteeringRow {
  double multiple = 0, clamp_value = 0;
  double concept_rate = 0, fluency_loss = 0;
  int64_t continuations = 0;
  std::string example;
};

struct SteeringScores {
  std::string concept, pattern;
  ConceptLatent latent;
  SteeringRow unsteered;
  std::vector<SteeringRow> rows;  // one per clamp multiple

  // result->steering and metrics steering_concept_rate (at the largest
  // multiple), steering_fluency_cost (its fluency loss minus the unsteered
  // one) and unsteered_concept_rate.
  void WriteTo(SaeResult* result) const;
};

// Generates from config.prompts() (or built-in neutral prompts) with the
// latent clamped to each of config.clamp_multiples() (default 0, 1, 2, 3,
// 5) times latent.max_activation. Errors: a latent out of range
// (CheckLatent), an invalid pattern (naming it), an unknown hook, a wrong
// d_in, generation errors (prompt + max_new_tokens beyond the context).
absl::StatusOr<SteeringScores> SteerLatent(const Gpt2Model& model, const BpeTokenizer& tokenizer,
                                           const std::string& hook_name, Sae& sae,
                                           const ConceptLatent& latent, const std::string& pattern,
                                           const SteeringEvalConfig& config, uint64_t seed);

// BuiltinConceptTexts(config.concept()), FindConceptLatent, SteerLatent with
// config.concept_pattern() or the concept's pattern.
absl::StatusOr<SteeringScores> EvaluateSteering(const Gpt2Model& model,
                                                const BpeTokenizer& tokenizer,
                                                const std::string& hook_name, Sae& sae,
                                                const SteeringEvalConfig& config, uint64_t seed);

}  // namespace saelab

#endif  // SAELAB_EVAL_STEERING_H_
