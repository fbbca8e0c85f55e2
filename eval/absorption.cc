#include "eval/absorption.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "data/subject_model/hooks.h"
#include "data/text/corpus.h"
#include "eval/linear_probe.h"
#include "harness/status_macros.h"
#include "re2/re2.h"

namespace saelab {
namespace {

constexpr double kFiringEpsilon = 1e-8;

// [N, classes] decision values, also for a binary classifier (one row).
torch::Tensor AllDecisionValues(const LinearClassifier& classifier, const torch::Tensor& x) {
  const torch::Tensor d = classifier.DecisionValues(x);
  return classifier.classes == 2 ? torch::stack({-d, d}, 1) : d;
}

// Rows of `probe`'s weight per class (binary: -w, w), [classes, d].
torch::Tensor ClassDirections(const LinearClassifier& classifier) {
  return classifier.classes == 2 ? torch::cat({-classifier.weight, classifier.weight})
                                 : classifier.weight;
}

}  // namespace

torch::Tensor ModelUnitDecoder(Sae& sae) {
  torch::NoGradGuard no_grad;
  const torch::Tensor zero = sae.Decode(torch::zeros({1, sae.n_latents()}));
  return sae.Decode(torch::eye(sae.n_latents())) - zero;
}

absl::StatusOr<FirstLetterData> BuildFirstLetterData(const Gpt2Model& model,
                                                     const BpeTokenizer& tokenizer,
                                                     const std::string& hook_name,
                                                     const AbsorptionEvalConfig& config) {
  ASSIGN_OR_RETURN(HookLocation location, ParseHookName(hook_name, model.config().n_layer));
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError("absorption: the tokenizer has no <|endoftext|> for BOS");
  }
  static const RE2* word = new RE2("^ [A-Za-z]{2,}$");
  FirstLetterData data;
  std::vector<int64_t> ids, letters;
  std::vector<bool> is_test;
  SplitFractions fractions;
  fractions.val = 0;
  fractions.test = config.test_fraction();
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const absl::string_view bytes = tokenizer.TokenBytes(id);
    if (!RE2::FullMatch(re2::StringPiece(bytes.data(), bytes.size()), *word)) continue;
    data.words.emplace_back(bytes);
    ids.push_back(id);
    letters.push_back(std::tolower(static_cast<unsigned char>(bytes[1])) - 'a');
    is_test.push_back(SplitOf(absl::StrCat("word/", bytes), fractions) == Split::kTest);
  }
  if (ids.empty()) {
    return absl::InvalidArgumentError("absorption: the vocabulary has no word tokens");
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens =
      torch::stack({torch::full({static_cast<int64_t>(ids.size())}, *tokenizer.eos_id(),
                                torch::kLong),
                    torch::tensor(ids, torch::kLong)},
                   1);  // [W, 2]: BOS, word
  ASSIGN_OR_RETURN(torch::Tensor acts, model.RunToHook(tokens, location));
  data.rows = acts.select(1, 1).contiguous();
  data.letters = torch::tensor(letters, torch::kLong);
  data.is_test = torch::zeros({static_cast<int64_t>(ids.size())}, torch::kBool);
  for (size_t i = 0; i < is_test.size(); ++i) data.is_test[i] = static_cast<bool>(is_test[i]);
  return data;
}

WordVerdict WordAbsorption(const torch::Tensor& f, const torch::Tensor& proj,
                           const torch::Tensor& cos, double activation_projection,
                           const std::vector<int64_t>& main_latents,
                           const AbsorptionEvalConfig& config) {
  WordVerdict verdict;
  if (activation_projection <= 0) return verdict;  // the probe's direction is absent
  const torch::Tensor main = torch::tensor(main_latents, torch::kLong);
  const double main_projection = proj.index_select(0, main).sum().item<double>();
  torch::Tensor candidates = torch::ones({proj.numel()}, torch::kBool);
  candidates.index_fill_(0, main, false);
  candidates = candidates & (cos >= config.fraction_cosine_threshold()) & (proj > 0);
  const torch::Tensor absorbing = proj.index({candidates});
  const int64_t take = std::min<int64_t>(config.max_absorbing_latents(), absorbing.numel());
  const double absorbed_total =
      take > 0 ? std::get<0>(absorbing.topk(take)).sum().item<double>() : 0.0;
  if (main_projection >= activation_projection ||
      absorbed_total / activation_projection < config.projection_threshold()) {
    verdict.absorption_fraction = 0;
  } else if (main_projection <= 0) {
    verdict.absorption_fraction = 1;
  } else {
    const double absorbed = std::min(absorbed_total, activation_projection - main_projection);
    verdict.absorption_fraction =
        std::clamp(absorbed / (absorbed + main_projection), 0.0, 1.0);
  }
  // Full absorption: no main latent fires, and the single latent projecting
  // most onto the probe is aligned with it and carries enough of it.
  const bool main_silent = (f.index_select(0, main) < kFiringEpsilon).all().item<bool>();
  const int64_t top = proj.argmax().item<int64_t>();
  verdict.full_absorption = main_silent &&
                            cos[top].item<double>() >= config.full_cosine_threshold() &&
                            proj[top].item<double>() / activation_projection >=
                                config.projection_threshold();
  return verdict;
}

absl::StatusOr<AbsorptionScores> EvaluateAbsorption(Sae& sae, const FirstLetterData& data,
                                                    const AbsorptionEvalConfig& config) {
  if (data.rows.dim() != 2 || data.rows.size(1) != sae.d_in()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "absorption: word activations are ",
        data.rows.dim() == 2 ? absl::StrCat(data.rows.size(1), " wide") : "not a matrix",
        " but the SAE's d_in is ", sae.d_in()));
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor train = data.is_test.logical_not(), test = data.is_test;
  const torch::Tensor x_train = data.rows.index({train}), x_test = data.rows.index({test});
  const torch::Tensor l_train = data.letters.index({train}), l_test = data.letters.index({test});
  // Compact class ids over the letters present in train.
  const torch::Tensor train_counts = torch::bincount(l_train, {}, 26);
  std::vector<int64_t> class_of_letter(26, -1);
  int64_t classes = 0;
  for (int64_t letter = 0; letter < 26; ++letter) {
    if (train_counts[letter].item<int64_t>() > 0) class_of_letter[letter] = classes++;
  }
  if (classes < 2) {
    return absl::InvalidArgumentError("absorption: fewer than two first letters among the words");
  }
  const torch::Tensor lookup = torch::tensor(class_of_letter, torch::kLong);
  // The ground-truth probe reads the raw activation as SAEBench's does, not
  // standardised: per-dimension scaling would blow up directions along which
  // the training words barely vary.
  LogisticOptions probe_options;
  probe_options.c = config.probe_c();
  probe_options.standardize = false;
  ASSIGN_OR_RETURN(LinearClassifier probe,
                   FitLogisticRegression(x_train, lookup.index_select(0, l_train), probe_options));
  LogisticOptions options;
  options.c = config.probe_c();
  const torch::Tensor test_classes = lookup.index_select(0, l_test);  // -1: unseen letter
  const torch::Tensor decision = AllDecisionValues(probe, x_test);   // [Wt, classes]
  AbsorptionScores scores;
  scores.probe_accuracy =
      (decision.argmax(1) == test_classes).to(torch::kFloat64).mean().item<double>();
  const torch::Tensor directions = ClassDirections(probe);  // [classes, d]

  const torch::Tensor f_train = sae.Encode(x_train), f_test = sae.Encode(x_test);
  const torch::Tensor decoder = ModelUnitDecoder(sae).to(torch::kFloat64);  // [n, d]
  const torch::Tensor decoder_norm = decoder.norm(2, 1);
  for (int64_t letter = 0; letter < 26; ++letter) {
    const int64_t c = class_of_letter[letter];
    if (c < 0 || train_counts[letter].item<int64_t>() < config.min_words_per_letter()) continue;
    const torch::Tensor y_train = (l_train == letter).to(torch::kLong);
    const torch::Tensor y_test = (l_test == letter).to(torch::kLong);
    if (y_test.sum().item<int64_t>() == 0) continue;
    // Main latents by SAEBench's feature-splitting rule.
    const torch::Tensor positive = y_train == 1;
    const torch::Tensor difference = f_train.index({positive}).to(torch::kFloat64).mean(0) -
                                     f_train.index({positive.logical_not()}).to(torch::kFloat64).mean(0);
    const torch::Tensor ranked =
        std::get<1>(difference.sort(/*stable=*/true, 0, /*descending=*/true));
    auto f1_of = [&](int64_t k) -> absl::StatusOr<double> {
      const torch::Tensor chosen = ranked.slice(0, 0, k);
      ASSIGN_OR_RETURN(LinearClassifier sparse,
                       FitLogisticRegression(f_train.index_select(1, chosen), y_train, options));
      return ScoreBinary(sparse.DecisionValues(f_test.index_select(1, chosen)), y_test).f1;
    };
    int64_t k = 1;
    ASSIGN_OR_RETURN(double f1, f1_of(1));
    while (k < std::min<int64_t>(config.max_main_latents(), sae.n_latents())) {
      ASSIGN_OR_RETURN(const double next, f1_of(k + 1));
      if (next - f1 <= config.f1_jump_threshold()) break;
      ++k;
      f1 = next;
    }
    LetterScores letter_scores;
    letter_scores.letter = static_cast<char>('a' + letter);
    letter_scores.main_latents.assign(ranked.data_ptr<int64_t>(), ranked.data_ptr<int64_t>() + k);
    letter_scores.main_latents_f1 = f1;
    // The letter's unit probe direction and every latent's relation to it.
    const torch::Tensor p = directions[c] / directions[c].norm();
    const torch::Tensor dp = torch::matmul(decoder, p);  // [n]
    const torch::Tensor cos = torch::where(decoder_norm > 0, dp / decoder_norm, torch::zeros_like(dp));
    const torch::Tensor true_positive = (l_test == letter) & (decision.select(1, c) > 0);
    const torch::Tensor words = true_positive.nonzero().reshape({-1});
    double fraction_sum = 0;
    int64_t full = 0;
    for (int64_t i = 0; i < words.numel(); ++i) {
      const int64_t w = words[i].item<int64_t>();
      const torch::Tensor f = f_test[w].to(torch::kFloat64);
      const WordVerdict verdict =
          WordAbsorption(f, f * dp, cos, torch::dot(x_test[w].to(torch::kFloat64), p).item<double>(),
                         letter_scores.main_latents, config);
      fraction_sum += verdict.absorption_fraction;
      full += verdict.full_absorption;
    }
    letter_scores.probe_true_positives = words.numel();
    if (words.numel() > 0) {
      letter_scores.absorption_fraction = fraction_sum / static_cast<double>(words.numel());
      letter_scores.full_absorption_rate =
          static_cast<double>(full) / static_cast<double>(words.numel());
    }
    scores.letters.push_back(std::move(letter_scores));
  }
  if (scores.letters.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "absorption: no letter has ", config.min_words_per_letter(),
        " training words and a test word (", data.words.size(), " words)"));
  }
  for (const LetterScores& l : scores.letters) {
    if (l.probe_true_positives < config.min_true_positives()) continue;
    scores.mean_absorption_fraction += l.absorption_fraction;
    scores.mean_full_absorption_rate += l.full_absorption_rate;
    ++scores.letters_scored;
  }
  scores.mean_absorption_fraction /= static_cast<double>(scores.letters_scored);  // 0/0: NaN
  scores.mean_full_absorption_rate /= static_cast<double>(scores.letters_scored);
  return scores;
}

void AbsorptionScores::WriteTo(SaeResult* result) const {
  AbsorptionResult* r = result->mutable_absorption();
  r->set_mean_absorption_fraction(mean_absorption_fraction);
  r->set_mean_full_absorption_rate(mean_full_absorption_rate);
  r->set_probe_accuracy(probe_accuracy);
  r->set_letters_scored(letters_scored);
  for (const LetterScores& l : letters) {
    LetterAbsorption* out = r->add_letters();
    out->set_letter(std::string(1, l.letter));
    out->set_probe_true_positives(l.probe_true_positives);
    for (int64_t latent : l.main_latents) out->add_main_latents(latent);
    out->set_main_latents_f1(l.main_latents_f1);
    out->set_absorption_fraction(l.absorption_fraction);
    out->set_full_absorption_rate(l.full_absorption_rate);
  }
  auto& metrics = *result->mutable_metrics();
  metrics["absorption_fraction"] = mean_absorption_fraction;
  metrics["full_absorption_rate"] = mean_full_absorption_rate;
  metrics["absorption_probe_accuracy"] = probe_accuracy;
}

}  // namespace saelab
