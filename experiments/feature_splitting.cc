#include "experiments/feature_splitting.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <torch/utils.h>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "harness/log.h"
#include "harness/status_macros.h"
#include "harness/tsne.h"

namespace saelab {
namespace {

constexpr int64_t kChunkRows = 2048;

// Unit decoder directions [n, d_in] float64.
torch::Tensor UnitDirections(const Sae& sae) {
  torch::Tensor w = sae.W_dec.detach().to(torch::kFloat64);
  return w / w.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
}

// What one pass over the evaluation rows gives for a pair.
struct PairStatistics {
  torch::Tensor density_small, density_large;  // [n] firing frequency
  torch::Tensor correlation;                   // [n_small, n_large]; NaN where a side is dead
};

PairStatistics Accumulate(Sae& small, Sae& large, const torch::Tensor& rows) {
  torch::NoGradGuard no_grad;
  const int64_t ns = small.n_latents(), nl = large.n_latents(), n = rows.size(0);
  torch::Tensor sum_s = torch::zeros({ns}, torch::kFloat64), sum_l = torch::zeros({nl}, torch::kFloat64);
  torch::Tensor sq_s = torch::zeros_like(sum_s), sq_l = torch::zeros_like(sum_l);
  torch::Tensor fire_s = torch::zeros_like(sum_s), fire_l = torch::zeros_like(sum_l);
  torch::Tensor cross = torch::zeros({ns, nl}, torch::kFloat64);
  for (int64_t begin = 0; begin < n; begin += kChunkRows) {
    const torch::Tensor x = rows.slice(0, begin, std::min(n, begin + kChunkRows));
    const torch::Tensor fs = small.Encode(x).to(torch::kFloat64);
    const torch::Tensor fl = large.Encode(x).to(torch::kFloat64);
    sum_s += fs.sum(0), sum_l += fl.sum(0);
    sq_s += (fs * fs).sum(0), sq_l += (fl * fl).sum(0);
    fire_s += (fs != 0).sum(0), fire_l += (fl != 0).sum(0);
    cross.addmm_(fs.t(), fl);
  }
  const double count = static_cast<double>(n);
  const torch::Tensor mean_s = sum_s / count, mean_l = sum_l / count;
  const torch::Tensor sd_s = (sq_s / count - mean_s * mean_s).clamp_min(0).sqrt();
  const torch::Tensor sd_l = (sq_l / count - mean_l * mean_l).clamp_min(0).sqrt();
  PairStatistics stats;
  stats.density_small = fire_s / count;
  stats.density_large = fire_l / count;
  torch::Tensor covariance = cross / count - mean_s.unsqueeze(1) * mean_l.unsqueeze(0);
  torch::Tensor denominator = sd_s.unsqueeze(1) * sd_l.unsqueeze(0);
  stats.correlation = torch::where(denominator > 0, covariance / denominator,
                                   torch::full_like(covariance, NAN));
  return stats;
}

// The highest activations of each of `latents` over the rows, as text
// windows with the token marked.
void TopContexts(Sae& sae, const std::vector<int64_t>& latents, const torch::Tensor& rows,
                 const torch::Tensor& contexts, const BpeTokenizer& tokenizer,
                 const FeatureSplittingConfig& config, std::vector<FamilyMember*>& members) {
  torch::NoGradGuard no_grad;
  const int64_t n = rows.size(0);
  const torch::Tensor index = torch::tensor(latents, torch::kInt64);
  std::vector<torch::Tensor> columns;
  for (int64_t begin = 0; begin < n; begin += kChunkRows) {
    columns.push_back(
        sae.Encode(rows.slice(0, begin, std::min(n, begin + kChunkRows))).index_select(1, index));
  }
  const torch::Tensor f = torch::cat(columns);  // [rows, latents]
  const int64_t rows_per_context = n / contexts.size(0);
  const int64_t offset = contexts.size(1) - rows_per_context;  // 1 when BOS was dropped
  const int64_t k = std::min<int64_t>(config.top_contexts(), n);
  auto [values, where] = f.topk(k, /*dim=*/0);  // [k, latents]
  for (size_t m = 0; m < latents.size(); ++m) {
    for (int64_t t = 0; t < k; ++t) {
      const float value = values[t][m].item<float>();
      if (value <= 0) break;
      const int64_t row = where[t][m].item<int64_t>();
      const int64_t context = row / rows_per_context, position = row % rows_per_context + offset;
      const torch::Tensor tokens = contexts[context];
      auto decode = [&](int64_t from, int64_t to) {
        std::vector<int32_t> ids;
        for (int64_t p = std::max<int64_t>(from, offset); p < std::min(to, contexts.size(1)); ++p) {
          ids.push_back(static_cast<int32_t>(tokens[p].item<int64_t>()));
        }
        return absl::StrReplaceAll(tokenizer.Decode(ids), {{"\n", " "}});
      };
      members[m]->add_top_contexts(absl::StrCat(
          decode(position - config.window_before(), position), "[[", decode(position, position + 1),
          "]]", decode(position + 1, position + 1 + config.window_after())));
      members[m]->add_top_activations(value);
    }
  }
}

}  // namespace

absl::Status AnalyzeFeatureSplitting(const FeatureSplittingConfig& config,
                                     std::vector<SplittingSae>& saes,
                                     const torch::Tensor& eval_rows,
                                     const torch::Tensor& val_contexts,
                                     const BpeTokenizer& tokenizer, uint64_t seed,
                                     FeatureSplittingResult* out) {
  std::sort(saes.begin(), saes.end(), [](const SplittingSae& a, const SplittingSae& b) {
    return a.sae->n_latents() < b.sae->n_latents();
  });
  if (saes.size() < 2 || saes.front().sae->n_latents() == saes.back().sae->n_latents()) {
    return absl::InvalidArgumentError(
        "feature_splitting needs SAEs of at least two dictionary sizes in its sweep");
  }
  if (val_contexts.dim() != 2 || val_contexts.size(0) == 0 ||
      eval_rows.size(0) % val_contexts.size(0) != 0 ||
      eval_rows.size(0) / val_contexts.size(0) > val_contexts.size(1)) {
    return absl::InvalidArgumentError("feature_splitting: evaluation rows do not match contexts");
  }
  if (!(config.cosine_threshold() > 0 && config.cosine_threshold() <= 1) ||
      config.families() < 0 || config.top_contexts() < 0 || config.map_latents_per_sae() < 0) {
    return absl::InvalidArgumentError(
        "feature_splitting: cosine_threshold must be in (0, 1] and the counts >= 0");
  }
  std::vector<std::pair<size_t, size_t>> pairs = {{0, saes.size() - 1}};
  for (size_t i = 0; i + 1 < saes.size(); ++i) {
    if (!(i == 0 && i + 1 == saes.size() - 1)) pairs.emplace_back(i, i + 1);
  }
  // Unit decoder directions, once per dictionary (pairs, chance level, map).
  std::vector<torch::Tensor> unit_directions;
  for (const SplittingSae& entry : saes) unit_directions.push_back(UnitDirections(*entry.sae));
  // Family members per SAE (for the map and the contexts).
  std::vector<std::set<int64_t>> mapped(saes.size());
  std::vector<torch::Tensor> live(saes.size());
  for (const auto& [s, l] : pairs) {
    Sae& small = *saes[s].sae;
    Sae& large = *saes[l].sae;
    PairStatistics stats = Accumulate(small, large, eval_rows);
    live[s] = stats.density_small > 0;
    live[l] = stats.density_large > 0;
    const torch::Tensor small_dead = live[s].logical_not().unsqueeze(0);  // [1, ns]
    // [nl, ns], dead small latents never chosen.
    const torch::Tensor cosine =
        unit_directions[l].mm(unit_directions[s].t()).masked_fill(small_dead, -2);
    const torch::Tensor correlation =
        stats.correlation.t().nan_to_num(-2).masked_fill(small_dead, -2);
    auto [max_cosine, nearest_cosine] = cosine.max(1);
    auto [max_correlation, nearest_correlation] = correlation.max(1);
    const torch::Tensor large_live = live[l];
    const double live_count = large_live.sum().item<double>();
    DictionaryPair* pair = out->add_pairs();
    pair->set_small(saes[s].result->name());
    pair->set_large(saes[l].result->name());
    pair->set_small_latents(small.n_latents());
    pair->set_large_latents(large.n_latents());
    pair->set_cosine_threshold(config.cosine_threshold());
    const torch::Tensor matched = large_live & (max_cosine >= config.cosine_threshold());
    if (live_count > 0) {
      pair->set_mean_max_cosine(max_cosine.masked_select(large_live).mean().item<double>());
      pair->set_fraction_matched(matched.sum().item<double>() / live_count);
      pair->set_mean_max_correlation(
          max_correlation.masked_select(large_live).mean().item<double>());
      pair->set_nearest_agreement(
          ((nearest_cosine == nearest_correlation) & large_live).sum().item<double>() / live_count);
    }
    // Families: matched large latents grouped by their nearest small latent.
    std::map<int64_t, std::vector<int64_t>> children;
    const torch::Tensor matched_latents = matched.nonzero().flatten();
    for (int64_t i = 0; i < matched_latents.size(0); ++i) {
      const int64_t j = matched_latents[i].item<int64_t>();
      children[nearest_cosine[j].item<int64_t>()].push_back(j);
    }
    std::vector<std::pair<int64_t, double>> ranked;  // (parent, summed cosine)
    double members = 0;
    for (const auto& [parent, kids] : children) {
      if (kids.size() < 2) continue;
      double sum = 0;
      for (int64_t j : kids) sum += max_cosine[j].item<double>();
      ranked.emplace_back(parent, sum);
      members += static_cast<double>(kids.size());
    }
    pair->set_split_families(static_cast<int64_t>(ranked.size()));
    if (!ranked.empty()) pair->set_mean_family_size(members / static_cast<double>(ranked.size()));
    std::sort(ranked.begin(), ranked.end(), [&](const auto& a, const auto& b) {
      const size_t na = children[a.first].size(), nb = children[b.first].size();
      return na != nb ? na > nb : a.second > b.second;
    });
    if (ranked.size() > static_cast<size_t>(config.families())) ranked.resize(config.families());
    std::vector<int64_t> parent_latents, child_latents;
    std::vector<FamilyMember*> parent_members, child_members;
    for (const auto& [parent, unused] : ranked) {
      SplitFamily* family = pair->add_families();
      FamilyMember* p = family->mutable_parent();
      p->set_latent(parent);
      p->set_cosine(1);
      p->set_correlation(1);
      p->set_density(stats.density_small[parent].item<double>());
      parent_latents.push_back(parent);
      parent_members.push_back(p);
      mapped[s].insert(parent);
      for (int64_t j : children[parent]) {
        FamilyMember* c = family->add_children();
        c->set_latent(j);
        c->set_cosine(cosine[j][parent].item<double>());
        c->set_correlation(stats.correlation[parent][j].item<double>());
        c->set_density(stats.density_large[j].item<double>());
        child_latents.push_back(j);
        child_members.push_back(c);
        mapped[l].insert(j);
      }
    }
    if (!parent_latents.empty()) {
      TopContexts(small, parent_latents, eval_rows, val_contexts, tokenizer, config, parent_members);
      TopContexts(large, child_latents, eval_rows, val_contexts, tokenizer, config, child_members);
    }
    // The chance level of mean_max_cosine: as many random unit directions
    // as the large dictionary has live latents, against the same small one.
    double random_mean_max_cosine = 0;
    {
      auto generator = at::detail::createCPUGenerator(seed + l);
      torch::Tensor random = at::randn({std::max<int64_t>(1, static_cast<int64_t>(live_count)),
                                        eval_rows.size(1)},
                                       generator, torch::kFloat64);
      random = random / random.norm(2, {1}, /*keepdim=*/true);
      random_mean_max_cosine = std::get<0>(
          random.mm(unit_directions[s].t()).masked_fill(small_dead, -2).max(1))
                                   .mean()
                                   .item<double>();
    }
    Log("feature splitting %s -> %s: mean max cosine %.3f (random directions %.3f), matched "
        "%.3f, agreement %.3f, %lld families of mean size %.2f",
        pair->small().c_str(), pair->large().c_str(), pair->mean_max_cosine(),
        random_mean_max_cosine, pair->fraction_matched(), pair->nearest_agreement(),
        static_cast<long long>(pair->split_families()), pair->mean_family_size());
    // The three largest families, one context per member, for the log.
    for (int f = 0; f < std::min(3, pair->families_size()); ++f) {
      const SplitFamily& family = pair->families(f);
      auto first_context = [](const FamilyMember& m) {
        return m.top_contexts().empty() ? std::string("-") : m.top_contexts(0);
      };
      Log("  family of %s latent %lld: %s", pair->small().c_str(),
          static_cast<long long>(family.parent().latent()), first_context(family.parent()).c_str());
      for (const FamilyMember& child : family.children()) {
        Log("    %s latent %-6lld cos %.2f  corr %.2f  %s", pair->large().c_str(),
            static_cast<long long>(child.latent()), child.cosine(), child.correlation(),
            first_context(child).c_str());
      }
    }
    // The larger SAE's metrics against the next smaller dictionary.
    if (l == s + 1) {
      auto& metrics = *saes[l].result->mutable_metrics();
      metrics["split_mean_max_cosine"] = pair->mean_max_cosine();
      metrics["split_fraction_matched"] = pair->fraction_matched();
      metrics["split_nearest_agreement"] = pair->nearest_agreement();
      metrics["split_families"] = static_cast<double>(pair->split_families());
      metrics["split_random_mean_max_cosine"] = random_mean_max_cosine;
    }
  }

  // The map: every family member plus a seeded sample of live latents.
  DecoderMap* map = out->mutable_map();
  std::vector<torch::Tensor> directions;
  auto generator = at::detail::createCPUGenerator(seed);
  std::map<std::pair<size_t, int64_t>, int32_t> family_of;  // first pair's families
  if (out->pairs_size() > 0) {
    const DictionaryPair& first = out->pairs(0);
    for (int f = 0; f < first.families_size(); ++f) {
      family_of[{pairs[0].first, first.families(f).parent().latent()}] = f;
      for (const FamilyMember& c : first.families(f).children()) {
        family_of[{pairs[0].second, c.latent()}] = f;
      }
    }
  }
  for (size_t i = 0; i < saes.size(); ++i) {
    map->add_saes(saes[i].result->name());
    std::set<int64_t> chosen = mapped[i];
    const torch::Tensor candidates = live[i].nonzero().flatten();
    const torch::Tensor order = torch::randperm(candidates.size(0), generator);
    for (int64_t t = 0; t < order.size(0) &&
                        static_cast<int64_t>(chosen.size()) < config.map_latents_per_sae();
         ++t) {
      chosen.insert(candidates[order[t]].item<int64_t>());
    }
    const std::vector<int64_t> latents(chosen.begin(), chosen.end());
    directions.push_back(unit_directions[i].index_select(0, torch::tensor(latents)));
    for (int64_t latent : latents) {
      map->add_sae_index(static_cast<int32_t>(i));
      map->add_latent(latent);
      auto it = family_of.find({i, latent});
      map->add_family(it == family_of.end() ? -1 : it->second);
    }
  }
  const torch::Tensor unit = torch::cat(directions);
  const int64_t points = unit.size(0);
  map->set_perplexity(std::min(config.map_perplexity(), (points - 1) / 3.0));
  if (points >= 4) {
    TsneOptions options;
    options.perplexity = map->perplexity();
    options.iterations = config.map_iterations();
    options.seed = seed;
    // |u - v|^2 = 2 - 2 cos for unit vectors: t-SNE on cosine distance.
    const torch::Tensor squared = (2.0 - 2.0 * unit.mm(unit.t())).clamp_min(0).fill_diagonal_(0);
    ASSIGN_OR_RETURN(torch::Tensor xy, Tsne(squared, options));
    for (int64_t i = 0; i < points; ++i) {
      map->add_x(static_cast<float>(xy[i][0].item<double>()));
      map->add_y(static_cast<float>(xy[i][1].item<double>()));
    }
  }
  return absl::OkStatus();
}

}  // namespace saelab
