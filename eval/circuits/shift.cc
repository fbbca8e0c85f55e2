#include "eval/circuits/shift.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "eval/linear_probe.h"
#include "harness/provenance.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

// The cue's swaps as token ids: from -> to, and every `to` token.
struct CueTokens {
  absl::flat_hash_map<int64_t, int64_t> swap;
  absl::flat_hash_set<int64_t> to;
};

absl::StatusOr<CueTokens> ResolveCue(const ShiftEvalConfig& config, const BpeTokenizer& tokenizer) {
  std::vector<std::pair<std::string, std::string>> swaps;
  for (const CueSwap& swap : config.cue_swaps()) swaps.push_back({swap.from(), swap.to()});
  if (swaps.empty()) {
    swaps = {{" he", " she"}, {" him", " her"}, {" his", " her"}, {" He", " She"}, {" His", " Her"}};
  }
  CueTokens cue;
  for (const auto& [from, to] : swaps) {
    std::optional<int32_t> from_id = tokenizer.TokenId(from), to_id = tokenizer.TokenId(to);
    if (!from_id || !to_id) {
      return absl::InvalidArgumentError(absl::StrCat("shift: the cue swap \"", from, "\" -> \"", to,
                                                     "\" is not one token to one token"));
    }
    cue.swap[*from_id] = *to_id;
    cue.to.insert(*to_id);
  }
  for (const auto& [from, to] : cue.swap) {
    if (cue.to.contains(from)) {
      return absl::InvalidArgumentError("shift: a cue swap's `from` token is another's `to` token");
    }
  }
  return cue;
}

// The configured class, or the default: Brown's non-fiction genres
// (positive) against its fiction genres (negative), which the reference
// model's activations tell apart well short of perfectly, so that a probe
// has a reason to lean on the cue.
ShiftClass ClassOf(const ShiftEvalConfig& config, bool positive) {
  // (An empty corpus counts as unset: the as-run config fills in every
  // message it holds.)
  const ShiftClass& configured = positive ? config.positive() : config.negative();
  if (!configured.corpus().empty()) return configured;
  ShiftClass c;
  c.set_corpus("brown");
  c.set_label_key("genre");
  const std::vector<const char*> genres =
      positive ? std::vector<const char*>{"news", "editorial", "reviews", "religion", "hobbies",
                                          "lore", "belles_lettres", "government", "learned"}
               : std::vector<const char*>{"fiction", "mystery", "science_fiction", "adventure",
                                          "romance", "humor"};
  for (const char* genre : genres) c.add_label_values(genre);
  return c;
}

std::string ClassName(const ShiftClass& c) {
  return c.label_key().empty()
             ? c.corpus()
             : absl::StrCat(c.corpus(), " ", c.label_key(), "=", absl::StrJoin(c.label_values(), "|"));
}

// Every non-overlapping window of `length` tokens of the class's documents
// in `split` that holds a cue `from` token and no `to` token, shuffled by
// `seed`.
absl::StatusOr<std::vector<std::vector<int64_t>>> Windows(const ShiftClass& c, const CueTokens& cue,
                                                          const BpeTokenizer& tokenizer,
                                                          const std::vector<Split>& splits,
                                                          int64_t length, uint64_t seed,
                                                          const std::string& corpus_dir) {
  ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus(c.corpus(), corpus_dir));
  std::vector<std::vector<int64_t>> windows;
  std::vector<const Document*> documents;
  for (const Split split : splits) {
    for (const Document* document : DocumentsInSplit(corpus, split)) documents.push_back(document);
  }
  for (const Document* document : documents) {
    if (!c.label_key().empty()) {
      auto it = document->labels.find(c.label_key());
      if (it == document->labels.end() ||
          std::find(c.label_values().begin(), c.label_values().end(), it->second) ==
              c.label_values().end()) {
        continue;
      }
    }
    const std::vector<int32_t> ids = tokenizer.Encode(document->text);
    for (size_t start = 0; start + length <= ids.size(); start += length) {
      std::vector<int64_t> window(ids.begin() + start, ids.begin() + start + length);
      bool has_from = false, has_to = false;
      for (int64_t id : window) {
        has_from |= cue.swap.contains(id);
        has_to |= cue.to.contains(id);
      }
      if (has_from && !has_to) windows.push_back(std::move(window));
    }
  }
  std::mt19937_64 rng(seed);
  std::shuffle(windows.begin(), windows.end(), rng);
  return windows;
}

// The probe's input: the activation at `probe_hook` (after any hook of
// `hooks` there), averaged over the text positions (after BOS): [N, d].
absl::StatusOr<torch::Tensor> Pooled(const Gpt2Model& model, const std::string& probe_hook,
                                     HookLocation probe_location, const torch::Tensor& tokens,
                                     const HookSet& hooks) {
  HookSet composed = hooks;
  HookFn inner;
  if (auto it = composed.hooks.find(probe_hook); it != composed.hooks.end()) inner = it->second;
  torch::Tensor captured;
  composed.hooks[probe_hook] = [&](const torch::Tensor& x) {
    torch::Tensor y = inner ? inner(x) : x;
    captured = y;
    return y;
  };
  ForwardOptions options;
  options.stop_at = probe_location;
  RETURN_IF_ERROR(model.Forward(tokens, composed, options).status());
  return captured.slice(1, 1).mean(1);
}

// Sets latents[s] (indices) at each site s to `values[s]` ([n_latents]: 0
// for zero-ablation, the latents' means for mean-ablation), error terms
// kept.
HookSet AblationHooks(const std::vector<CircuitSite>& sites,
                      const std::vector<std::vector<int64_t>>& latents,
                      const std::vector<torch::Tensor>& values) {
  HookSet hooks;
  for (size_t s = 0; s < sites.size(); ++s) {
    if (latents[s].empty()) continue;
    Sae* sae = sites[s].sae;
    torch::Tensor keep = torch::ones({sae->n_latents()});
    for (int64_t i : latents[s]) keep[i] = 0;
    const torch::Tensor fill = (1 - keep) * values[s];
    hooks.hooks[sites[s].hook] = [sae, keep, fill](const torch::Tensor& x) {
      const torch::Tensor rows = x.slice(1, 1).reshape({-1, x.size(2)});
      const torch::Tensor f = sae->Encode(rows);
      const torch::Tensor change = (sae->Decode(f * keep + fill) - sae->Decode(f))
                                       .reshape({x.size(0), x.size(1) - 1, x.size(2)});
      return torch::cat({x.slice(1, 0, 1), x.slice(1, 1) + change}, 1);
    };
  }
  return hooks;
}

// Each site's mean latent activation over the text positions of `tokens`.
absl::StatusOr<std::vector<torch::Tensor>> MeanLatents(const Gpt2Model& model,
                                                       const std::vector<CircuitSite>& sites,
                                                       const torch::Tensor& tokens,
                                                       HookLocation last) {
  std::vector<torch::Tensor> captured(sites.size());
  HookSet hooks;
  for (size_t s = 0; s < sites.size(); ++s) hooks.hooks[sites[s].hook] = CaptureInto(&captured[s]);
  ForwardOptions options;
  options.stop_at = last;
  RETURN_IF_ERROR(model.Forward(tokens, hooks, options).status());
  std::vector<torch::Tensor> means;
  for (size_t s = 0; s < sites.size(); ++s) {
    means.push_back(sites[s].sae->Encode(captured[s].slice(1, 1).reshape({-1, captured[s].size(2)})).mean(0));
  }
  return means;
}

struct Accuracy {
  double all = 0, conflicting = 0;
};

Accuracy Score(const LinearClassifier& probe, const torch::Tensor& x, const ShiftContexts& data) {
  const torch::Tensor right = probe.Predict(x).eq(data.labels).to(torch::kFloat64);
  return {right.mean().item<double>(), right.index({data.conflicting}).mean().item<double>()};
}

}  // namespace

absl::StatusOr<ShiftContexts> BuildShiftContexts(const ShiftEvalConfig& config,
                                                 const BpeTokenizer& tokenizer,
                                                 const std::vector<Split>& splits,
                                                 int64_t per_class, CueForms forms,
                                                 uint64_t seed, const std::string& corpus_dir) {
  if (config.context_tokens() < 1 || per_class < 1) {
    return absl::InvalidArgumentError("shift: context_tokens and example counts must be >= 1");
  }
  if (!tokenizer.eos_id()) return absl::InvalidArgumentError("the tokenizer has no <|endoftext|>");
  ASSIGN_OR_RETURN(const CueTokens cue, ResolveCue(config, tokenizer));
  const int64_t width = 1 + config.context_tokens();
  ShiftContexts data;
  data.tokens = torch::empty({2 * per_class, width}, torch::kInt64);
  data.labels = torch::empty({2 * per_class}, torch::kInt64);
  data.conflicting = torch::zeros({2 * per_class}, torch::kBool);
  auto tokens = data.tokens.accessor<int64_t, 2>();
  for (const int label : {1, 0}) {
    const ShiftClass c = ClassOf(config, label == 1);
    ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> windows,
                     Windows(c, cue, tokenizer, splits, config.context_tokens(), seed + label,
                             corpus_dir));
    if (static_cast<int64_t>(windows.size()) < per_class) {
      return absl::InvalidArgumentError(
          absl::StrCat("shift: the ", SplitName(splits[0]), splits.size() > 1 ? " and other" : "",
                       " split of ", ClassName(c), " has ",
                       windows.size(), " windows of ", config.context_tokens(),
                       " tokens with the cue; ", per_class, " wanted"));
    }
    for (int64_t i = 0; i < per_class; ++i) {
      // Classes interleaved, so any prefix of the set is balanced.
      const int64_t row = 2 * i + (label == 1 ? 0 : 1);
      const bool conflicting = forms == CueForms::kBalanced && i % 2 == 1;
      // The positive class's own form is the text as written (the `from`
      // tokens); the negative class's is the swapped one.
      const bool swapped = forms != CueForms::kAsWritten && (label == 0) != conflicting;
      tokens[row][0] = *tokenizer.eos_id();
      for (int64_t t = 0; t < config.context_tokens(); ++t) {
        const int64_t id = windows[i][t];
        auto it = cue.swap.find(id);
        tokens[row][1 + t] = swapped && it != cue.swap.end() ? it->second : id;
      }
      data.labels[row] = label;
      data.conflicting[row] = conflicting;
    }
  }
  return data;
}

absl::StatusOr<ShiftResult> RunShift(const ShiftEvalConfig& config, int ig_steps,
                                     const Gpt2Model& model, const BpeTokenizer& tokenizer,
                                     const std::vector<CircuitSite>& all_sites, uint64_t seed,
                                     const std::string& corpus_dir) {
  if (all_sites.empty()) return absl::InvalidArgumentError("shift needs at least one site");
  if (config.ablate_latents() < 1 || config.random_draws() < 1 || config.cue_pairs() < 2) {
    return absl::InvalidArgumentError(
        "shift needs ablate_latents >= 1, random_draws >= 1 and cue_pairs >= 2");
  }
  if (config.ablation() != "zero" && config.ablation() != "mean") {
    return absl::InvalidArgumentError(
        absl::StrCat("shift.ablation \"", config.ablation(), "\" is neither \"zero\" nor \"mean\""));
  }
  PhaseClock clock;
  const int64_t n_layer = model.config().n_layer;
  const std::string probe_hook = config.probe_hook().empty() ? all_sites.back().hook
                                                             : config.probe_hook();
  ASSIGN_OR_RETURN(const HookLocation probe_location, ParseHookName(probe_hook, n_layer));
  std::vector<CircuitSite> sites;
  for (const CircuitSite& site : all_sites) {
    ASSIGN_OR_RETURN(const HookLocation location, ParseHookName(site.hook, n_layer));
    if (location.index() <= probe_location.index()) sites.push_back(site);
  }
  if (sites.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shift: no circuit site at or before the probe hook ", probe_hook));
  }
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(ShiftContexts train,
                   BuildShiftContexts(config, tokenizer, {Split::kTrain},
                                      config.train_examples_per_class(), CueForms::kConfounded, seed,
                                      corpus_dir));
  ASSIGN_OR_RETURN(ShiftContexts oracle_train,
                   BuildShiftContexts(config, tokenizer, {Split::kTrain},
                                      config.train_examples_per_class(), CueForms::kBalanced, seed,
                                      corpus_dir));
  ASSIGN_OR_RETURN(ShiftContexts test,
                   BuildShiftContexts(config, tokenizer, {Split::kVal, Split::kTest},
                                      config.test_examples_per_class(), CueForms::kBalanced, seed + 2,
                                      corpus_dir));
  ASSIGN_OR_RETURN(ShiftContexts val,
                   BuildShiftContexts(config, tokenizer, {Split::kTrain}, (config.cue_pairs() + 1) / 2,
                                      CueForms::kAsWritten, seed + 4, corpus_dir));
  const auto pooled = [&](const torch::Tensor& tokens, const HookSet& hooks) {
    return Pooled(model, probe_hook, probe_location, tokens, hooks);
  };
  LogisticOptions probe_options;
  probe_options.penalty = Penalty::kL2;

  ShiftResult result;
  result.set_probe_hook(probe_hook);
  result.set_train_examples(train.labels.size(0));
  result.set_test_examples(test.labels.size(0));
  ASSIGN_OR_RETURN(torch::Tensor train_x, pooled(train.tokens, {}));
  ASSIGN_OR_RETURN(torch::Tensor test_x, pooled(test.tokens, {}));
  ASSIGN_OR_RETURN(LinearClassifier probe, FitLogisticRegression(train_x, train.labels, probe_options));
  const Accuracy original = Score(probe, test_x, test);
  result.set_accuracy(original.all);
  result.set_conflicting_accuracy(original.conflicting);
  {
    ASSIGN_OR_RETURN(torch::Tensor oracle_x, pooled(oracle_train.tokens, {}));
    ASSIGN_OR_RETURN(LinearClassifier oracle,
                     FitLogisticRegression(oracle_x, oracle_train.labels, probe_options));
    const Accuracy oracle_accuracy = Score(oracle, test_x, test);
    result.set_oracle_accuracy(oracle_accuracy.all);
    result.set_oracle_conflicting_accuracy(oracle_accuracy.conflicting);
  }

  // The cue pairs: the same text as written and swapped; m = the probe's
  // decision value on the text as written.
  ContrastivePairs pairs;
  const int64_t n_pairs = std::min<int64_t>(config.cue_pairs(), val.tokens.size(0));
  {
    ASSIGN_OR_RETURN(const CueTokens cue, ResolveCue(config, tokenizer));
    pairs.clean = val.tokens.slice(0, 0, n_pairs).clone();
    pairs.patch = pairs.clean.clone();
    auto patch = pairs.patch.accessor<int64_t, 2>();
    for (int64_t p = 0; p < n_pairs; ++p) {
      for (int64_t t = 1; t < pairs.patch.size(1); ++t) {
        if (auto it = cue.swap.find(patch[p][t]); it != cue.swap.end()) patch[p][t] = it->second;
      }
    }
  }
  pairs.clean_answer = pairs.patch_answer = torch::zeros({n_pairs}, torch::kInt64);
  result.set_cue_pairs(n_pairs);
  const torch::Tensor weight = probe.weight.reshape({-1}).to(torch::kFloat32);
  const float bias = static_cast<float>(probe.bias.item<double>());
  const CircuitMetric decision = [weight, bias](const torch::Tensor& pooled_x,
                                                const ContrastivePairs&) {
    return torch::mv(pooled_x, weight) + bias;
  };
  const HookedForward forward = [&](const torch::Tensor& tokens, const HookSet& hooks) {
    return pooled(tokens, hooks);
  };
  ASSIGN_OR_RETURN(CircuitAnalysis analysis,
                   CircuitAnalysis::Create(forward, sites, pairs, decision));
  ASSIGN_OR_RETURN(NodeEffects effects, analysis.IntegratedGradients(ig_steps));

  // The cue's latents: the top ones by |effect|.
  std::vector<std::pair<double, NodeId>> ranked;
  for (int s = 0; s < static_cast<int>(sites.size()); ++s) {
    const torch::Tensor values = effects.latent[s].contiguous();
    for (int64_t i = 0; i < values.size(0); ++i) {
      const double effect = values[i].item<double>();
      if (effect != 0) ranked.push_back({effect, {s, i}});
    }
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return std::abs(a.first) > std::abs(b.first);
  });
  ranked.resize(std::min<size_t>(ranked.size(), config.ablate_latents()));
  std::vector<std::vector<int64_t>> cue_latents(sites.size());
  for (const auto& [effect, node] : ranked) {
    cue_latents[node.site].push_back(node.latent);
    CircuitNode* out = result.add_ablated();
    out->set_site(sites[node.site].hook);
    out->set_latent(node.latent);
    out->set_effect(effect);
    out->set_ig_effect(effect);
  }
  std::vector<torch::Tensor> fill;
  if (config.ablation() == "mean") {
    ASSIGN_OR_RETURN(fill, MeanLatents(model, sites, train.tokens, probe_location));
  } else {
    for (const CircuitSite& site : sites) fill.push_back(torch::zeros({site.sae->n_latents()}));
  }
  const HookSet ablate = AblationHooks(sites, cue_latents, fill);
  ASSIGN_OR_RETURN(torch::Tensor ablated_test_x, pooled(test.tokens, ablate));
  const Accuracy ablated = Score(probe, ablated_test_x, test);
  result.set_ablated_accuracy(ablated.all);
  result.set_ablated_conflicting_accuracy(ablated.conflicting);
  {
    ASSIGN_OR_RETURN(torch::Tensor ablated_train_x, pooled(train.tokens, ablate));
    ASSIGN_OR_RETURN(LinearClassifier retrained,
                     FitLogisticRegression(ablated_train_x, train.labels, probe_options));
    const Accuracy accuracy = Score(retrained, ablated_test_x, test);
    result.set_retrained_accuracy(accuracy.all);
    result.set_retrained_conflicting_accuracy(accuracy.conflicting);
  }
  // How much the cue alone still moves the probe.
  {
    const auto sensitivity = [&](const HookSet& hooks) -> absl::StatusOr<double> {
      ASSIGN_OR_RETURN(torch::Tensor clean_x, pooled(pairs.clean, hooks));
      ASSIGN_OR_RETURN(torch::Tensor patch_x, pooled(pairs.patch, hooks));
      return (probe.DecisionValues(clean_x) - probe.DecisionValues(patch_x)).abs().mean().item<double>();
    };
    ASSIGN_OR_RETURN(double unedited, sensitivity({}));
    ASSIGN_OR_RETURN(double edited, sensitivity(ablate));
    result.set_cue_sensitivity(unedited);
    result.set_ablated_cue_sensitivity(edited);
  }
  // Random live latents, as many per site.
  std::mt19937_64 rng(seed + 6);
  double random_all = 0, random_conflicting = 0;
  for (int draw = 0; draw < config.random_draws(); ++draw) {
    std::vector<std::vector<int64_t>> random_latents(sites.size());
    for (size_t s = 0; s < sites.size(); ++s) {
      const torch::Tensor live = analysis.ActiveLatents(static_cast<int>(s)).nonzero().reshape({-1});
      std::vector<int64_t> candidates(live.data_ptr<int64_t>(), live.data_ptr<int64_t>() + live.numel());
      std::shuffle(candidates.begin(), candidates.end(), rng);
      candidates.resize(std::min(candidates.size(), cue_latents[s].size()));
      random_latents[s] = candidates;
    }
    ASSIGN_OR_RETURN(torch::Tensor random_x, pooled(test.tokens, AblationHooks(sites, random_latents, fill)));
    const Accuracy accuracy = Score(probe, random_x, test);
    random_all += accuracy.all;
    random_conflicting += accuracy.conflicting;
  }
  result.set_random_accuracy(random_all / config.random_draws());
  result.set_random_conflicting_accuracy(random_conflicting / config.random_draws());
  result.set_wall_seconds(clock.Seconds());
  return result;
}

}  // namespace saelab
