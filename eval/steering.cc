#include "eval/steering.h"

#include <torch/nn/functional.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/subject_model/hooks.h"
#include "data/text/corpus.h"
#include "eval/splice.h"
#include "harness/seed.h"
#include "harness/status_macros.h"
#include "re2/re2.h"

namespace saelab {
namespace {

// Words that modern English rarely uses and the KJV uses on most lines.
constexpr char kScripturePattern[] =
    R"((?i)\b(thee|thou|thy|thine|ye|hath|doth|unto|shalt|saith|lord|israel)\b)";
// German function words (none is also an English word).
constexpr char kGermanPattern[] = R"(\b(der|die|das|und|ist|nicht|ich|ein|eine|mit|sie|den|auf)\b)";

// Neutral prompts: no corpus's style in particular.
const std::vector<std::string>& DefaultPrompts() {
  static const auto* prompts = new std::vector<std::string>{
      "The", "I think that", "In the morning", "She said", "It was a"};
  return *prompts;
}

std::vector<double> ClampMultiples(const SteeringEvalConfig& config) {
  std::vector<double> multiples(config.clamp_multiples().begin(), config.clamp_multiples().end());
  if (multiples.empty()) multiples = {0, 1, 2, 3, 5};
  return multiples;
}

// Documents joined with EOS, cut into [BOS, L - 1 tokens] contexts.
torch::Tensor PackContexts(const std::vector<const Document*>& docs,
                           const BpeTokenizer& tokenizer, int64_t context_length,
                           int64_t max_contexts) {
  const int64_t eos = *tokenizer.eos_id();
  const int64_t body = context_length - 1;
  std::vector<int64_t> stream;
  for (const Document* doc : docs) {
    if (static_cast<int64_t>(stream.size()) >= body * max_contexts) break;
    for (int32_t id : tokenizer.Encode(doc->text)) stream.push_back(id);
    stream.push_back(eos);
  }
  const int64_t n = std::min<int64_t>(max_contexts, static_cast<int64_t>(stream.size()) / body);
  torch::Tensor contexts = torch::full({n, context_length}, eos, torch::kLong);
  for (int64_t c = 0; c < n; ++c) {
    contexts[c].slice(0, 1).copy_(
        torch::tensor(std::vector<int64_t>(stream.begin() + c * body,
                                           stream.begin() + (c + 1) * body),
                      torch::kLong));
  }
  return contexts;
}

// Every latent's firing count, activation sum and max over the contexts'
// non-BOS tokens; returns the number of tokens.
absl::StatusOr<int64_t> LatentTotals(const Gpt2Model& model, HookLocation location, Sae& sae,
                                     const torch::Tensor& contexts, torch::Tensor* fired,
                                     torch::Tensor* sum, torch::Tensor* max) {
  torch::NoGradGuard no_grad;
  *fired = torch::zeros({sae.n_latents()}, torch::kFloat64);
  *sum = torch::zeros({sae.n_latents()}, torch::kFloat64);
  *max = torch::zeros({sae.n_latents()}, torch::kFloat32);
  int64_t tokens = 0;
  for (int64_t begin = 0; begin < contexts.size(0); begin += 32) {
    const torch::Tensor batch = contexts.slice(0, begin, std::min(contexts.size(0), begin + 32));
    ASSIGN_OR_RETURN(torch::Tensor acts, model.RunToHook(batch, location));
    const torch::Tensor f = sae.Encode(acts.slice(1, 1).reshape({-1, sae.d_in()}));
    *fired += (f > 0).sum(0).to(torch::kFloat64);
    *sum += f.sum(0).to(torch::kFloat64);
    *max = torch::maximum(*max, f.amax(0));
    tokens += f.size(0);
  }
  return tokens;
}

// Mean cross-entropy (nats) of `continuation` given `prompt` under the
// clean model; 0 tokens -> 0.
absl::StatusOr<double> ContinuationLoss(const Gpt2Model& model, const std::vector<int64_t>& prompt,
                                        const std::vector<int64_t>& continuation) {
  if (continuation.empty()) return 0.0;
  std::vector<int64_t> all = prompt;
  all.insert(all.end(), continuation.begin(), continuation.end());
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(torch::Tensor logits,
                   model.Forward(torch::tensor(all, torch::kLong).unsqueeze(0)));
  const int64_t p = static_cast<int64_t>(prompt.size());
  const torch::Tensor predicting = logits[0].slice(0, p - 1, static_cast<int64_t>(all.size()) - 1);
  const torch::Tensor targets = torch::tensor(continuation, torch::kLong);
  return torch::nn::functional::cross_entropy(predicting.to(torch::kFloat64), targets)
      .item<double>();
}

}  // namespace

absl::StatusOr<ConceptTexts> BuiltinConceptTexts(const std::string& concept,
                                                 const BpeTokenizer& tokenizer,
                                                 int64_t context_length, int64_t max_contexts) {
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError("steering: the tokenizer has no <|endoftext|> for BOS");
  }
  if (context_length < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("steering: context_length must be >= 2, got ", context_length));
  }
  ConceptTexts texts;
  texts.concept = concept;
  std::vector<const Document*> concept_docs, contrast_docs;
  std::vector<Corpus> corpora;
  if (concept == "scripture") {
    texts.pattern = kScripturePattern;
    for (const char* name : {"kjv", "brown", "nlp-corpus"}) {
      ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus(name));
      corpora.push_back(std::move(corpus));
    }
    for (const Document& d : corpora[0].documents) concept_docs.push_back(&d);
    // Interleave Brown documents and sentences so both kinds of modern
    // English reach the contexts.
    for (size_t i = 0; i < corpora[1].documents.size(); ++i) {
      contrast_docs.push_back(&corpora[1].documents[i]);
      for (size_t j = 0; j < 20 && 20 * i + j < corpora[2].documents.size(); ++j) {
        contrast_docs.push_back(&corpora[2].documents[20 * i + j]);
      }
    }
  } else if (concept == "german") {
    texts.pattern = kGermanPattern;
    ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus("fortunes"));
    corpora.push_back(std::move(corpus));
    for (const Document& d : corpora[0].documents) {
      (d.labels.at("language") == "de" ? concept_docs : contrast_docs).push_back(&d);
    }
    // Spread the contrast over the languages rather than the first ones.
    std::stable_sort(contrast_docs.begin(), contrast_docs.end(),
                     [](const Document* a, const Document* b) {
                       return DeriveSeed(0, a->id) < DeriveSeed(0, b->id);
                     });
  } else {
    return absl::InvalidArgumentError(absl::StrCat("steering: unknown concept \"", concept,
                                                   "\"; built-in concepts: scripture, german"));
  }
  texts.concept_contexts = PackContexts(concept_docs, tokenizer, context_length, max_contexts);
  texts.contrast_contexts = PackContexts(contrast_docs, tokenizer, context_length, max_contexts);
  return texts;
}

absl::StatusOr<ConceptLatent> FindConceptLatent(const Gpt2Model& model,
                                                const std::string& hook_name, Sae& sae,
                                                const ConceptTexts& texts) {
  ASSIGN_OR_RETURN(HookLocation location, ParseHookName(hook_name, model.config().n_layer));
  if (model.config().n_embd != sae.d_in()) {
    return absl::InvalidArgumentError(absl::StrCat("steering: the SAE's d_in is ", sae.d_in(),
                                                   " but hook ", hook_name, " is ",
                                                   model.config().n_embd, " wide"));
  }
  for (const torch::Tensor* c : {&texts.concept_contexts, &texts.contrast_contexts}) {
    if (c->dim() != 2 || c->size(0) == 0 || c->size(1) < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "steering: concept \"", texts.concept, "\" needs [N >= 1, L >= 2] contexts on both sides"));
    }
  }
  torch::Tensor concept_fired, concept_sum, concept_max, contrast_fired, contrast_sum, contrast_max;
  ASSIGN_OR_RETURN(const int64_t concept_tokens,
                   LatentTotals(model, location, sae, texts.concept_contexts, &concept_fired,
                                &concept_sum, &concept_max));
  ASSIGN_OR_RETURN(const int64_t contrast_tokens,
                   LatentTotals(model, location, sae, texts.contrast_contexts, &contrast_fired,
                                &contrast_sum, &contrast_max));
  const torch::Tensor rate_gap = concept_fired / concept_tokens - contrast_fired / contrast_tokens;
  const torch::Tensor mean_gap = concept_sum / concept_tokens - contrast_sum / contrast_tokens;
  // Lexicographic (rate gap, mean gap, -id): scan once.
  const double* rate = rate_gap.data_ptr<double>();
  const double* mean = mean_gap.data_ptr<double>();
  int64_t best = 0;
  for (int64_t i = 1; i < sae.n_latents(); ++i) {
    if (rate[i] > rate[best] || (rate[i] == rate[best] && mean[i] > mean[best])) best = i;
  }
  ConceptLatent found;
  found.latent = best;
  found.concept_rate = concept_fired[best].item<double>() / concept_tokens;
  found.contrast_rate = contrast_fired[best].item<double>() / contrast_tokens;
  found.concept_mean = concept_sum[best].item<double>() / concept_tokens;
  found.contrast_mean = contrast_sum[best].item<double>() / contrast_tokens;
  found.max_activation = concept_max[best].item<double>();
  return found;
}

absl::StatusOr<SteeringScores> SteerLatent(const Gpt2Model& model, const BpeTokenizer& tokenizer,
                                           const std::string& hook_name, Sae& sae,
                                           const ConceptLatent& latent, const std::string& pattern,
                                           const SteeringEvalConfig& config, uint64_t seed) {
  RETURN_IF_ERROR(CheckLatent(sae, latent.latent));
  const RE2 concept_re(pattern);
  if (!concept_re.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("steering: concept pattern \"", pattern,
                                                   "\" is not a valid RE2: ", concept_re.error()));
  }
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError("steering: the tokenizer has no <|endoftext|> for BOS");
  }
  std::vector<std::string> prompts(config.prompts().begin(), config.prompts().end());
  if (prompts.empty()) prompts = DefaultPrompts();
  std::vector<std::vector<int64_t>> prompt_ids;
  for (const std::string& prompt : prompts) {
    std::vector<int64_t> ids = {*tokenizer.eos_id()};
    for (int32_t id : tokenizer.Encode(prompt)) ids.push_back(id);
    prompt_ids.push_back(std::move(ids));
  }
  SteeringScores scores;
  scores.latent = latent;
  scores.pattern = pattern;
  GenerateOptions options;
  options.max_new_tokens = config.max_new_tokens();
  options.temperature = config.temperature();
  options.top_p = config.top_p();
  options.stop_token = *tokenizer.eos_id();
  // One row: every prompt, every sample, under `hooks`.
  auto run = [&](const HookSet& hooks, SteeringRow* row) -> absl::Status {
    double loss_sum = 0;
    int64_t matched = 0;
    for (size_t p = 0; p < prompt_ids.size(); ++p) {
      for (int s = 0; s < config.samples_per_prompt(); ++s) {
        options.seed = DeriveSeed(seed, absl::StrCat("prompt", p, "/sample", s));
        ASSIGN_OR_RETURN(GenerateResult out, model.Generate(prompt_ids[p], options, hooks));
        std::vector<int32_t> ids;
        for (int64_t id : out.tokens) {
          if (id != *tokenizer.eos_id()) ids.push_back(static_cast<int32_t>(id));
        }
        const std::string text = tokenizer.Decode(ids);
        matched += RE2::PartialMatch(text, concept_re);
        ASSIGN_OR_RETURN(const double loss, ContinuationLoss(model, prompt_ids[p], out.tokens));
        loss_sum += loss;
        if (p == 0 && s == 0) row->example = prompts[0] + text;
        ++row->continuations;
      }
    }
    row->concept_rate = static_cast<double>(matched) / static_cast<double>(row->continuations);
    row->fluency_loss = loss_sum / static_cast<double>(row->continuations);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(run(HookSet(), &scores.unsteered));
  for (double multiple : ClampMultiples(config)) {
    SteeringRow row;
    row.multiple = multiple;
    row.clamp_value = multiple * latent.max_activation;
    ASSIGN_OR_RETURN(HookSet hooks,
                     SpliceAt(model, hook_name, sae,
                              EditLatent(sae, latent.latent, LatentEdit::Clamp(row.clamp_value))));
    RETURN_IF_ERROR(run(hooks, &row));
    scores.rows.push_back(std::move(row));
  }
  return scores;
}

absl::StatusOr<SteeringScores> EvaluateSteering(const Gpt2Model& model,
                                                const BpeTokenizer& tokenizer,
                                                const std::string& hook_name, Sae& sae,
                                                const SteeringEvalConfig& config, uint64_t seed) {
  ASSIGN_OR_RETURN(ConceptTexts texts,
                   BuiltinConceptTexts(config.concept(), tokenizer, config.context_length(),
                                       config.finder_contexts()));
  ASSIGN_OR_RETURN(ConceptLatent latent, FindConceptLatent(model, hook_name, sae, texts));
  const std::string pattern =
      config.concept_pattern().empty() ? texts.pattern : config.concept_pattern();
  ASSIGN_OR_RETURN(SteeringScores scores,
                   SteerLatent(model, tokenizer, hook_name, sae, latent, pattern, config, seed));
  scores.concept = config.concept();
  return scores;
}

void SteeringScores::WriteTo(SaeResult* result) const {
  SteeringResult* r = result->mutable_steering();
  r->set_concept(concept);
  r->set_concept_pattern(pattern);
  r->set_latent(latent.latent);
  r->set_concept_mean_activation(latent.concept_mean);
  r->set_contrast_mean_activation(latent.contrast_mean);
  r->set_max_activation(latent.max_activation);
  auto fill = [](const SteeringRow& row, SteeringPoint* point) {
    point->set_multiple(row.multiple);
    point->set_clamp_value(row.clamp_value);
    point->set_concept_rate(row.concept_rate);
    point->set_fluency_loss(row.fluency_loss);
    point->set_continuations(row.continuations);
    point->set_example(row.example);
  };
  fill(unsteered, r->mutable_unsteered());
  for (const SteeringRow& row : rows) fill(row, r->add_points());
  auto& metrics = *result->mutable_metrics();
  metrics["unsteered_concept_rate"] = unsteered.concept_rate;
  if (!rows.empty()) {
    const auto strongest = std::max_element(
        rows.begin(), rows.end(),
        [](const SteeringRow& a, const SteeringRow& b) { return a.multiple < b.multiple; });
    metrics["steering_concept_rate"] = strongest->concept_rate;
    metrics["steering_fluency_cost"] = strongest->fluency_loss - unsteered.fluency_loss;
  }
}

}  // namespace saelab
