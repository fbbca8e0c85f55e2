#include "eval/circuits/attribution.h"

#include <torch/autograd.h>
#include <torch/types.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

using torch::indexing::Slice;

// Positions after BOS: [pairs, seq, d] -> [pairs, seq - 1, d].
torch::Tensor Rows(const torch::Tensor& activation) { return activation.slice(1, 1); }

// Prepends BOS's position, unchanged, to edited rows.
torch::Tensor WithBos(const torch::Tensor& activation, const torch::Tensor& rows) {
  return torch::cat({activation.slice(1, 0, 1), rows}, 1);
}

// Encode/Decode over [pairs, positions, width] tensors.
torch::Tensor EncodeRows(Sae& sae, const torch::Tensor& rows) {
  return sae.Encode(rows.reshape({-1, rows.size(2)})).reshape({rows.size(0), rows.size(1), -1});
}
torch::Tensor DecodeRows(Sae& sae, const torch::Tensor& latents) {
  return sae.Decode(latents.reshape({-1, latents.size(2)}))
      .reshape({latents.size(0), latents.size(1), -1});
}

// torch::autograd::grad with unused inputs as zeros.
std::vector<torch::Tensor> Gradients(const torch::Tensor& output,
                                     const std::vector<torch::Tensor>& inputs, bool retain_graph) {
  std::vector<torch::Tensor> grads = torch::autograd::grad(
      {output}, inputs, /*grad_outputs=*/{}, retain_graph, /*create_graph=*/false,
      /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) grads[i] = torch::zeros_like(inputs[i]);
  }
  return grads;
}

}  // namespace

HookedForward ForwardOf(const Gpt2Model& model) {
  return [&model](const torch::Tensor& tokens, const HookSet& hooks) {
    return model.Forward(tokens, hooks);
  };
}

double NodeEffects::Of(const NodeId& node) const {
  return node.is_error() ? error[node.site] : latent[node.site][node.latent].item<double>();
}

absl::StatusOr<CircuitAnalysis> CircuitAnalysis::Create(HookedForward forward,
                                                        std::vector<CircuitSite> sites,
                                                        const ContrastivePairs& pairs,
                                                        CircuitMetric metric) {
  if (sites.empty()) return absl::InvalidArgumentError("a circuit needs at least one site");
  if (pairs.size() == 0 || pairs.clean.size(1) < 2) {
    return absl::InvalidArgumentError("circuit pairs need at least one pair of two tokens or more");
  }
  absl::flat_hash_set<std::string> hooks;
  for (const CircuitSite& site : sites) {
    if (site.sae == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("circuit site ", site.hook, " has no SAE"));
    }
    if (!hooks.insert(site.hook).second) {
      return absl::InvalidArgumentError(absl::StrCat("two circuit sites at ", site.hook));
    }
  }
  CircuitAnalysis analysis;
  analysis.forward_ = std::move(forward);
  analysis.metric_ = metric ? std::move(metric) : CircuitMetric(LogitDifference);
  analysis.sites_ = std::move(sites);
  analysis.pairs_ = pairs;
  const size_t n_sites = analysis.sites_.size();
  torch::NoGradGuard no_grad;
  for (const bool clean : {true, false}) {
    std::vector<torch::Tensor> captured(n_sites);
    HookSet capture;
    for (size_t s = 0; s < n_sites; ++s) {
      capture.hooks[analysis.sites_[s].hook] = CaptureInto(&captured[s]);
    }
    ASSIGN_OR_RETURN(torch::Tensor logits,
                     analysis.forward_(clean ? pairs.clean : pairs.patch, capture));
    std::vector<SiteValues>& values = clean ? analysis.clean_ : analysis.patch_;
    for (size_t s = 0; s < n_sites; ++s) {
      Sae& sae = *analysis.sites_[s].sae;
      if (!captured[s].defined()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the forward pass never reached circuit site ", analysis.sites_[s].hook));
      }
      if (captured[s].size(2) != sae.d_in()) {
        return absl::InvalidArgumentError(
            absl::StrCat("circuit site ", analysis.sites_[s].hook, " is ", captured[s].size(2),
                         " wide, its SAE reads ", sae.d_in()));
      }
      SiteValues site;
      site.activation = captured[s].clone();
      site.latents = EncodeRows(sae, Rows(site.activation));
      site.error = Rows(site.activation) - DecodeRows(sae, site.latents);
      values.push_back(std::move(site));
    }
    if (clean) analysis.metric_clean_ = analysis.metric_(logits, pairs).mean().item<double>();
  }
  for (const SiteValues& site : analysis.clean_) {
    analysis.mean_latents_.push_back(site.latents.mean(0));
    analysis.mean_error_.push_back(site.error.mean(0));
  }
  return analysis;
}

absl::Status CircuitAnalysis::CheckNode(const NodeId& node) const {
  if (node.site < 0 || node.site >= static_cast<int>(sites_.size()) ||
      node.latent < NodeId::kErrorNode ||
      node.latent >= sites_[node.site].sae->n_latents()) {
    return absl::InvalidArgumentError(absl::StrCat("no circuit node (site ", node.site,
                                                   ", latent ", node.latent, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> CircuitAnalysis::MetricSum(const torch::Tensor& tokens,
                                                         const HookSet& hooks) const {
  ASSIGN_OR_RETURN(torch::Tensor output, forward_(tokens, hooks));
  return metric_(output, pairs_).sum();
}

torch::Tensor CircuitAnalysis::LatentGradient(int s, const torch::Tensor& gradient) const {
  torch::AutoGradMode grad_mode(true);
  Sae& sae = *sites_[s].sae;
  const torch::Tensor latents = clean_[s].latents.detach().requires_grad_(true);
  const torch::Tensor projected = (DecodeRows(sae, latents) * gradient.detach()).sum();
  return Gradients(projected, {latents}, /*retain_graph=*/false)[0];
}

absl::Status CircuitAnalysis::RestrictEffectsToPositions(int64_t begin, int64_t end) {
  const int64_t seq = pairs_.clean.size(1);
  if (begin < 1 || end <= begin || end > seq) {
    return absl::InvalidArgumentError(absl::StrCat("positions [", begin, ", ", end,
                                                   ") are not node positions (1 to ", seq - 1, ")"));
  }
  counted_positions_ = torch::zeros({1, seq - 1, 1});
  counted_positions_.slice(1, begin - 1, end - 1).fill_(1);
  return absl::OkStatus();
}

void CircuitAnalysis::EffectsAt(int s, const torch::Tensor& gradient, NodeEffects* effects) const {
  const double pairs = static_cast<double>(pairs_.size());
  torch::Tensor latent_delta = patch_[s].latents - clean_[s].latents;
  torch::Tensor error_delta = patch_[s].error - clean_[s].error;
  if (counted_positions_.defined()) {
    latent_delta = latent_delta * counted_positions_;
    error_delta = error_delta * counted_positions_;
  }
  effects->latent[s] =
      (latent_delta * LatentGradient(s, gradient)).to(torch::kFloat64).sum(std::vector<int64_t>{0, 1}) / pairs;
  effects->error[s] = (error_delta * gradient).to(torch::kFloat64).sum().item<double>() / pairs;
}

absl::StatusOr<NodeEffects> CircuitAnalysis::AttributionPatching() {
  torch::AutoGradMode grad_mode(true);
  const size_t n_sites = sites_.size();
  std::vector<torch::Tensor> at(n_sites);
  HookSet hooks;
  for (size_t s = 0; s < n_sites; ++s) {
    hooks.hooks[sites_[s].hook] = [&at, s](const torch::Tensor& x) {
      // The first site reached starts the graph; later ones are in it.
      at[s] = x.requires_grad() ? x : x.detach().requires_grad_(true);
      return at[s];
    };
  }
  ASSIGN_OR_RETURN(torch::Tensor metric, MetricSum(pairs_.clean, hooks));
  const std::vector<torch::Tensor> grads = Gradients(metric, at, /*retain_graph=*/false);
  NodeEffects effects;
  effects.latent.resize(n_sites);
  effects.error.resize(n_sites);
  clean_gradient_.assign(n_sites, {});
  for (size_t s = 0; s < n_sites; ++s) {
    clean_gradient_[s] = Rows(grads[s]);
    EffectsAt(static_cast<int>(s), clean_gradient_[s], &effects);
  }
  return effects;
}

absl::StatusOr<NodeEffects> CircuitAnalysis::IntegratedGradients(int steps) {
  if (steps < 1) return absl::InvalidArgumentError("integrated gradients needs steps >= 1");
  torch::AutoGradMode grad_mode(true);
  const size_t n_sites = sites_.size();
  NodeEffects effects;
  effects.latent.resize(n_sites);
  effects.error.resize(n_sites);
  for (size_t s = 0; s < n_sites; ++s) {
    const torch::Tensor clean = clean_[s].activation;
    const torch::Tensor delta = patch_[s].activation - clean;
    torch::Tensor mean_gradient = torch::zeros_like(Rows(clean));
    for (int k = 0; k < steps; ++k) {
      const double alpha = (k + 0.5) / steps;
      const torch::Tensor point = (clean + alpha * delta).detach().requires_grad_(true);
      HookSet hooks;
      hooks.hooks[sites_[s].hook] = [&point](const torch::Tensor&) { return point; };
      ASSIGN_OR_RETURN(torch::Tensor metric, MetricSum(pairs_.clean, hooks));
      mean_gradient += Rows(Gradients(metric, {point}, /*retain_graph=*/false)[0]);
    }
    EffectsAt(static_cast<int>(s), mean_gradient / steps, &effects);
  }
  return effects;
}

absl::StatusOr<double> CircuitAnalysis::ExactEffect(const NodeId& node) {
  RETURN_IF_ERROR(CheckNode(node));
  torch::NoGradGuard no_grad;
  Sae& sae = *sites_[node.site].sae;
  torch::Tensor delta;
  if (node.is_error()) {
    delta = patch_[node.site].error - clean_[node.site].error;
  } else {
    const torch::Tensor clean = clean_[node.site].latents;
    torch::Tensor edited = clean.clone();
    edited.select(2, node.latent).copy_(patch_[node.site].latents.select(2, node.latent));
    delta = DecodeRows(sae, edited) - DecodeRows(sae, clean);
  }
  HookSet hooks;
  hooks.hooks[sites_[node.site].hook] = [&delta](const torch::Tensor& x) {
    return WithBos(x, Rows(x) + delta);
  };
  ASSIGN_OR_RETURN(torch::Tensor metric, MetricSum(pairs_.clean, hooks));
  return metric.item<double>() / pairs_.size() - metric_clean_;
}

absl::StatusOr<double> CircuitAnalysis::ExactSiteEffect(int site) {
  RETURN_IF_ERROR(CheckNode({site, NodeId::kErrorNode}));
  torch::NoGradGuard no_grad;
  const torch::Tensor patched = patch_[site].activation;
  HookSet hooks;
  hooks.hooks[sites_[site].hook] = [&patched](const torch::Tensor&) { return patched; };
  ASSIGN_OR_RETURN(torch::Tensor metric, MetricSum(pairs_.clean, hooks));
  return metric.item<double>() / pairs_.size() - metric_clean_;
}

torch::Tensor CircuitAnalysis::ActiveLatents(int site) const {
  return (clean_[site].latents != 0).flatten(0, 1).any(0);
}

NodeMask CircuitAnalysis::EmptyMask() const {
  NodeMask mask;
  for (const CircuitSite& site : sites_) {
    mask.latent.push_back(torch::zeros({site.sae->n_latents()}, torch::kBool));
    mask.error.push_back(false);
  }
  return mask;
}

NodeMask CircuitAnalysis::MaskOf(const std::vector<NodeId>& nodes, bool complement) const {
  NodeMask mask = EmptyMask();
  for (const NodeId& node : nodes) {
    if (node.is_error()) {
      mask.error[node.site] = true;
    } else {
      mask.latent[node.site][node.latent] = true;
    }
  }
  if (complement) {
    for (size_t s = 0; s < sites_.size(); ++s) {
      mask.latent[s] = mask.latent[s].logical_not();
      mask.error[s] = !mask.error[s];
    }
  }
  return mask;
}

absl::StatusOr<double> CircuitAnalysis::MetricWithNodes(const NodeMask& keep) {
  if (keep.latent.size() != sites_.size() || keep.error.size() != sites_.size()) {
    return absl::InvalidArgumentError("a node mask needs one entry per circuit site");
  }
  for (size_t s = 0; s < sites_.size(); ++s) {
    if (keep.latent[s].dim() != 1 || keep.latent[s].size(0) != sites_[s].sae->n_latents()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the node mask of site ", sites_[s].hook, " is not [n_latents]"));
    }
  }
  torch::NoGradGuard no_grad;
  HookSet hooks;
  for (size_t s = 0; s < sites_.size(); ++s) {
    Sae& sae = *sites_[s].sae;
    const torch::Tensor keep_latents = keep.latent[s].to(torch::kBool);
    const bool keep_error = keep.error[s];
    const torch::Tensor mean_latents = mean_latents_[s];
    const torch::Tensor mean_error = mean_error_[s];
    hooks.hooks[sites_[s].hook] = [&sae, keep_latents, keep_error, mean_latents,
                                   mean_error](const torch::Tensor& x) {
      const torch::Tensor rows = Rows(x);
      const torch::Tensor latents = EncodeRows(sae, rows);
      const torch::Tensor kept = torch::where(keep_latents, latents, mean_latents);
      const torch::Tensor error =
          keep_error ? rows - DecodeRows(sae, latents) : mean_error.expand_as(rows);
      return WithBos(x, DecodeRows(sae, kept) + error);
    };
  }
  ASSIGN_OR_RETURN(torch::Tensor metric, MetricSum(pairs_.clean, hooks));
  return metric.item<double>() / pairs_.size();
}

absl::StatusOr<double> CircuitAnalysis::MetricEmpty() { return MetricWithNodes(EmptyMask()); }

absl::StatusOr<std::vector<EdgeEffect>> CircuitAnalysis::EdgeEffects(
    const std::vector<NodeId>& nodes) {
  for (const NodeId& node : nodes) RETURN_IF_ERROR(CheckNode(node));
  if (clean_gradient_.empty()) RETURN_IF_ERROR(AttributionPatching().status());
  torch::AutoGradMode grad_mode(true);
  const int n_sites = static_cast<int>(sites_.size());
  std::vector<std::vector<NodeId>> by_site(n_sites);
  for (const NodeId& node : nodes) by_site[node.site].push_back(node);
  const double pairs = static_cast<double>(pairs_.size());
  std::vector<EdgeEffect> edges;
  for (int t = 0; t < n_sites; ++t) {
    if (by_site[t].empty()) continue;
    // Every site reached before t returns a fresh leaf, so that a gradient
    // at a leaf is the derivative along paths through no other site.
    std::vector<torch::Tensor> leaves(n_sites);
    std::vector<bool> upstream(n_sites, false);
    torch::Tensor at_t;
    bool reached_t = false;
    HookSet hooks;
    for (int s = 0; s < n_sites; ++s) {
      hooks.hooks[sites_[s].hook] = [&, s](const torch::Tensor& x) {
        if (s == t) {
          at_t = x;
          reached_t = true;
          return x;
        }
        if (reached_t) return x;  // downstream of t: not needed
        upstream[s] = true;
        leaves[s] = x.detach().requires_grad_(true);
        return leaves[s];
      };
    }
    RETURN_IF_ERROR(forward_(pairs_.clean, hooks).status());
    std::vector<int> sources;
    std::vector<torch::Tensor> inputs;
    for (int s = 0; s < n_sites; ++s) {
      if (upstream[s] && !by_site[s].empty()) {
        sources.push_back(s);
        inputs.push_back(leaves[s]);
      }
    }
    if (sources.empty()) continue;
    Sae& sae = *sites_[t].sae;
    const torch::Tensor rows = Rows(at_t);
    const torch::Tensor latents = EncodeRows(sae, rows);
    const torch::Tensor latent_weight = LatentGradient(t, clean_gradient_[t]);
    for (const NodeId& down : by_site[t]) {
      // grad_down m (fixed) times the downstream node's value.
      const torch::Tensor weighted =
          down.is_error()
              ? (clean_gradient_[t] * (rows - DecodeRows(sae, latents))).sum()
              : (latent_weight.select(2, down.latent) * latents.select(2, down.latent)).sum();
      const std::vector<torch::Tensor> grads = Gradients(weighted, inputs, /*retain_graph=*/true);
      for (size_t i = 0; i < sources.size(); ++i) {
        const int s = sources[i];
        const torch::Tensor gradient = Rows(grads[i]);
        torch::Tensor latent_gradient;
        for (const NodeId& up : by_site[s]) {
          double effect;
          const torch::Tensor counted =
              counted_positions_.defined() ? counted_positions_ : torch::ones({1, 1, 1});
          if (up.is_error()) {
            effect = ((patch_[s].error - clean_[s].error) * counted * gradient)
                         .to(torch::kFloat64).sum().item<double>();
          } else {
            if (!latent_gradient.defined()) latent_gradient = LatentGradient(s, gradient);
            effect = ((patch_[s].latents.select(2, up.latent) -
                       clean_[s].latents.select(2, up.latent)) *
                      counted.select(2, 0) * latent_gradient.select(2, up.latent))
                         .to(torch::kFloat64).sum().item<double>();
          }
          edges.push_back({up, down, effect / pairs});
        }
      }
    }
  }
  return edges;
}

}  // namespace saelab
