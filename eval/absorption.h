// Feature absorption (Chanin et al., "A is for Absorption"), measured as
// SAEBench does on first-letter tasks: a latent that should fire for "starts
// with S" stays silent on some S-words because a more specific latent (say
// " short") has absorbed the direction.
//
//   ASSIGN_OR_RETURN(FirstLetterData words,
//                    BuildFirstLetterData(model, tokenizer, hook_name, config));
//   ASSIGN_OR_RETURN(AbsorptionScores scores, EvaluateAbsorption(sae, words, config));
//   scores.WriteTo(sae_result);   // mean_absorption_fraction, full_absorption_rate
//
// The words are the vocabulary's word tokens (" " followed by two or more
// ASCII letters), each read at position 1 of the context [BOS, word], split
// into train and test by a hash of the word. Then:
//  1. a ground-truth probe: a 26-way logistic regression (one-vs-rest, L2)
//     on the raw, unstandardised activations of the training words predicts
//     the first letter;
//  2. per letter, its main latents: the latents ranked by mean difference
//     (letter's words minus the rest) on train; a k-sparse probe on the top k
//     for k = 1, 2, ... while the test F1 grows by more than
//     f1_jump_threshold (SAEBench's feature-splitting rule);
//  3. per test word of the letter that the ground-truth probe recognises,
//     with p the unit probe direction, proj(x) = x . p and proj_i = f_i
//     (d_i . p) each latent's share (d_i its model-unit decoder direction):
//     the absorption fraction and whether it is a full absorption
//     (WordAbsorption below; docs/metrics.md has the formulas).
// The letter's scores are means over its words; the SAE's are means over
// the letters with at least min_true_positives such words.
#ifndef SAELAB_EVAL_ABSORPTION_H_
#define SAELAB_EVAL_ABSORPTION_H_

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

struct FirstLetterData {
  std::vector<std::string> words;  // the token texts, e.g. " short"
  torch::Tensor rows;              // [W, d_in] float32, the hook activation of each word
  torch::Tensor letters;           // [W] int64, 0 = 'a' ... 25 = 'z'
  torch::Tensor is_test;           // [W] bool
};

// The vocabulary's word tokens through the model. InvalidArgument for an
// unknown hook or a tokenizer without <|endoftext|>.
absl::StatusOr<FirstLetterData> BuildFirstLetterData(const Gpt2Model& model,
                                                     const BpeTokenizer& tokenizer,
                                                     const std::string& hook_name,
                                                     const AbsorptionEvalConfig& config);

// One word's verdict, from (for every latent) its activation f [n], its
// share of the probe projection proj [n] = f_i (d_i . p), the cosine of its
// decoder direction with the probe cos [n], the word's own projection
// x . p, and the letter's main latents.
struct WordVerdict {
  double absorption_fraction = 0;
  bool full_absorption = false;
};
WordVerdict WordAbsorption(const torch::Tensor& f, const torch::Tensor& proj,
                           const torch::Tensor& cos, double activation_projection,
                           const std::vector<int64_t>& main_latents,
                           const AbsorptionEvalConfig& config);

struct LetterScores {
  char letter = 'a';
  int64_t probe_true_positives = 0;
  std::vector<int64_t> main_latents;
  double main_latents_f1 = 0;
  double absorption_fraction = 0;    // mean over the probe's true positives
  double full_absorption_rate = 0;   // fraction of them fully absorbed
};

struct AbsorptionScores {
  // Means over the letters with config.min_true_positives() recognised test
  // words (NaN if there are none).
  double mean_absorption_fraction = 0;
  double mean_full_absorption_rate = 0;
  int letters_scored = 0;
  double probe_accuracy = 0;
  std::vector<LetterScores> letters;

  // result->absorption, and metrics absorption_fraction,
  // full_absorption_rate, absorption_probe_accuracy.
  void WriteTo(SaeResult* result) const;
};

// InvalidArgument for rows whose width is not sae.d_in(), or when no letter
// has config.min_words_per_letter training words and a test word.
absl::StatusOr<AbsorptionScores> EvaluateAbsorption(Sae& sae, const FirstLetterData& data,
                                                    const AbsorptionEvalConfig& config);

// Each latent's decoder direction in model units, [n_latents, d_in]:
// Decode(e_i) - Decode(0), whatever the architecture's scaling.
torch::Tensor ModelUnitDecoder(Sae& sae);

}  // namespace saelab

#endif  // SAELAB_EVAL_ABSORPTION_H_
