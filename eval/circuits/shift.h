// SHIFT (Marks et al. 2024, "Sparse Feature Circuits", section 4): removing
// a classifier's reliance on a spurious cue by ablating the SAE latents that
// carry the cue, found by attribution rather than by retraining on
// de-confounded data.
//
// The setting is planted, so that the answer is known: contexts of two
// document sets (the label) hold pronouns of one grammatical gender (the
// cue: "he" as written, or swapped to "she"), and in the probe's training
// data the cue always matches the label, as the paper's professions were
// confounded with gender. A logistic
// probe on the model's activation (averaged over the text positions) learns
// the cue as well as the text. On test contexts half of each class carries
// the other class's form of the cue; a probe that reads the cue fails on that half
// ("conflicting accuracy"). SHIFT finds the latents through which the cue
// reaches the probe, by attribution over pairs of contexts that differ only
// in the cue (integrated gradients over the pronoun swap), zero-ablates them at every site (error terms kept), and
// scores the same probe again, against ablating as many random live
// latents.
//
//   ASSIGN_OR_RETURN(ShiftResult shift,
//                    RunShift(config.shift(), config.ig_steps(), model, tokenizer, sites, seed));
#ifndef SAELAB_EVAL_CIRCUITS_SHIFT_H_
#define SAELAB_EVAL_CIRCUITS_SHIFT_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/corpus.h"
#include "eval/circuits/attribution.h"
#include "eval/eval_config.pb.h"
#include "harness/result.pb.h"

namespace saelab {

// Contexts [N, 1 + context_tokens] int64 (BOS, text) with labels [N] int64
// (1 = positive) and whether each one's cue is the other class's form.
struct ShiftContexts {
  torch::Tensor tokens;
  torch::Tensor labels;
  torch::Tensor conflicting;  // [N] bool
};

// Which form of the cue each context takes.
enum class CueForms {
  kConfounded,  // each class its own: positive as written, negative swapped
  kBalanced,    // every other context of a class takes the other class's form
  kAsWritten,   // every context as written
};

// `per_class` contexts of each class from `splits`: non-overlapping windows
// of context_tokens tokens of the class's documents that hold a cue `from`
// token and no `to` token, shuffled by `seed`, the classes interleaved.
// InvalidArgument naming the class and split when it has too few windows,
// or for a cue swap that is not one token to one token.
absl::StatusOr<ShiftContexts> BuildShiftContexts(const ShiftEvalConfig& config,
                                                 const BpeTokenizer& tokenizer,
                                                 const std::vector<Split>& splits,
                                                 int64_t per_class, CueForms forms, uint64_t seed,
                                                 const std::string& corpus_dir = "");

// The whole SHIFT evaluation over `sites` (SAEs, forward order); the probe
// reads config.probe_hook (empty: the last site), and the sites past it are
// left out. `ig_steps` ranks the cue's latents by integrated gradients.
absl::StatusOr<ShiftResult> RunShift(const ShiftEvalConfig& config, int ig_steps,
                                     const Gpt2Model& model, const BpeTokenizer& tokenizer,
                                     const std::vector<CircuitSite>& sites, uint64_t seed,
                                     const std::string& corpus_dir = "");

}  // namespace saelab

#endif  // SAELAB_EVAL_CIRCUITS_SHIFT_H_
