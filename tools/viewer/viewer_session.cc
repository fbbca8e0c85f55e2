#include "tools/viewer/viewer_session.h"

#include <torch/autograd.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "eval/dashboard.h"
#include "harness/status_macros.h"

namespace saelab {

absl::StatusOr<ViewerSession> ViewerSession::Create(Gpt2Model model, BpeTokenizer tokenizer,
                                                    std::vector<ViewerSae> saes) {
  if (saes.empty()) return absl::InvalidArgumentError("the viewer needs at least one SAE");
  if (!tokenizer.eos_id()) {
    return absl::InvalidArgumentError("the tokenizer has no <|endoftext|> to use as BOS");
  }
  absl::flat_hash_set<std::string> hooks;
  for (const ViewerSae& entry : saes) {
    if (entry.sae == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("the SAE at ", entry.hook, " is missing"));
    }
    RETURN_IF_ERROR(ParseHookName(entry.hook, model.config().n_layer).status());
    if (!hooks.insert(entry.hook).second) {
      return absl::InvalidArgumentError(absl::StrCat("two SAEs at ", entry.hook));
    }
    if (entry.sae->d_in() != model.config().n_embd) {
      return absl::InvalidArgumentError(absl::StrCat("the SAE ", entry.name, " reads ",
                                                     entry.sae->d_in(), " dimensions; ",
                                                     entry.hook, " has ", model.config().n_embd));
    }
  }
  ViewerSession session;
  session.model_ = std::move(model);
  session.tokenizer_ = std::move(tokenizer);
  session.saes_ = std::make_shared<std::vector<ViewerSae>>(std::move(saes));
  return session;
}

absl::StatusOr<std::vector<int64_t>> ViewerSession::PromptIds(const std::string& prompt,
                                                              int continuation_tokens) const {
  const std::vector<int32_t> text_ids = tokenizer_->Encode(prompt);
  if (text_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const int64_t length = 1 + static_cast<int64_t>(text_ids.size());
  if (length + continuation_tokens > model_->config().n_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt is ", text_ids.size(), " tokens; with BOS and ",
                     continuation_tokens, " to generate it must fit in ",
                     model_->config().n_positions));
  }
  std::vector<int64_t> ids = {*tokenizer_->eos_id()};
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  return ids;
}

namespace {

torch::Tensor AsTokens(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kInt64).unsqueeze(0);
}

}  // namespace

absl::StatusOr<ViewerSession::PreparedEdits> ViewerSession::PrepareEdits(
    const ViewEdits& edits) const {
  PreparedEdits prepared;
  std::vector<std::vector<PromptEdit>>& by_site = prepared.by_site;
  std::vector<std::vector<torch::Tensor>>& patches = prepared.patches;
  by_site.resize(saes_->size());
  patches.resize(saes_->size());
  for (const PromptEdit& edit : edits.latents) {
    if (edit.site < 0 || edit.site >= static_cast<int>(saes_->size())) {
      return absl::InvalidArgumentError(absl::StrCat("no SAE number ", edit.site, " (there are ",
                                                     saes_->size(), ")"));
    }
    const ViewerSae& entry = (*saes_)[edit.site];
    RETURN_IF_ERROR(CheckLatent(*entry.sae, edit.latent));
    torch::Tensor patch;
    if (!edit.patch_from.empty()) {
      absl::StatusOr<std::vector<int64_t>> source = PromptIds(edit.patch_from, 0);
      if (!source.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the prompt to patch from: ", source.status().message()));
      }
      ASSIGN_OR_RETURN(HookLocation location,
                       ParseHookName(entry.hook, model_->config().n_layer));
      torch::NoGradGuard no_grad;
      ASSIGN_OR_RETURN(torch::Tensor activation, model_->RunToHook(AsTokens(*source), location));
      patch = entry.sae->Encode(activation[0]).select(1, edit.latent).contiguous();
    }
    by_site[edit.site].push_back(edit);
    patches[edit.site].push_back(patch);
  }
  const int64_t n_layer = model_->config().n_layer, n_head = model_->config().n_head;
  std::vector<torch::Tensor>& head_scales = prepared.head_scales;
  head_scales.resize(n_layer);
  for (const HeadEdit& edit : edits.heads) {
    if (edit.layer < 0 || edit.layer >= n_layer || edit.head < 0 || edit.head >= n_head) {
      return absl::InvalidArgumentError(absl::StrCat("no head ", edit.layer, ".", edit.head,
                                                     " (the model has ", n_layer,
                                                     " blocks of ", n_head, " heads)"));
    }
    if (!head_scales[edit.layer].defined()) head_scales[edit.layer] = torch::ones({n_head});
    head_scales[edit.layer][edit.head] = edit.scale;
  }
  return prepared;
}

absl::StatusOr<HookSet> ViewerSession::EditHooks(const ViewEdits& edits) const {
  ASSIGN_OR_RETURN(const PreparedEdits prepared, PrepareEdits(edits));
  return HooksFor(prepared);
}

absl::StatusOr<HookSet> ViewerSession::HooksFor(const PreparedEdits& prepared) const {
  const std::vector<std::vector<PromptEdit>>& by_site = prepared.by_site;
  const std::vector<std::vector<torch::Tensor>>& patches = prepared.patches;
  const std::vector<torch::Tensor>& head_scales = prepared.head_scales;
  HookSet hooks;
  for (size_t s = 0; s < saes_->size(); ++s) {
    if (by_site[s].empty()) continue;
    Sae* sae = (*saes_)[s].sae.get();
    // The position of the first row of the next call: SpliceAt hands over
    // the prompt's rows after BOS first, then one row per generated token.
    auto next_position = std::make_shared<int64_t>(1);
    RowEdit row_edit = [sae, site_edits = by_site[s], site_patches = patches[s],
                        next_position](const torch::Tensor& x) {
      const int64_t first = *next_position;
      *next_position += x.size(0);
      const torch::Tensor f = sae->Encode(x);
      torch::Tensor edited = f.clone();
      for (size_t e = 0; e < site_edits.size(); ++e) {
        const PromptEdit& edit = site_edits[e];
        torch::Tensor column = edited.select(1, edit.latent);
        if (site_patches[e].defined()) {
          const torch::Tensor& source = site_patches[e];
          const torch::Tensor positions =
              torch::arange(first, first + x.size(0), torch::kInt64).clamp_max(source.size(0) - 1);
          column.copy_(source.index_select(0, positions));
          continue;
        }
        switch (edit.edit.kind) {
          case LatentEdit::Kind::kZero: column.zero_(); break;
          case LatentEdit::Kind::kScale: column.mul_(edit.edit.value); break;
          case LatentEdit::Kind::kClamp: column.fill_(edit.edit.value); break;
        }
      }
      // Error term kept: only the edit changes the activation.
      return x + (sae->Decode(edited) - sae->Decode(f));
    };
    ASSIGN_OR_RETURN(HookSet site_hooks, SpliceAt(*model_, (*saes_)[s].hook, *sae, row_edit));
    for (auto& [name, fn] : site_hooks.hooks) hooks.hooks[name] = std::move(fn);
  }
  for (int64_t layer = 0; layer < static_cast<int64_t>(head_scales.size()); ++layer) {
    if (!head_scales[layer].defined()) continue;
    const torch::Tensor scales = head_scales[layer];
    hooks.hooks[HeadOutputsHookName(layer)] = [scales](const torch::Tensor& z) {
      // z: [batch, seq, n_head, d_head]. BOS (position 0 of a call over
      // several positions) passes through, as at the SAE sites.
      torch::Tensor factor = scales.to(z.scalar_type()).view({1, 1, -1, 1}).expand(
          {1, z.size(1), scales.size(0), 1}).clone();
      if (z.size(1) > 1) factor.select(1, 0).fill_(1);
      return z * factor;
    };
  }
  return hooks;
}

absl::StatusOr<PromptView> ViewerSession::View(const std::string& prompt, const ViewEdits& edits,
                                               const ViewOptions& options) const {
  if (options.top_latents < 0 || options.top_next_tokens < 0 || options.continuation_tokens < 0) {
    return absl::InvalidArgumentError("view options must be >= 0");
  }
  ASSIGN_OR_RETURN(const std::vector<int64_t> ids, PromptIds(prompt, options.continuation_tokens));
  const int64_t length = static_cast<int64_t>(ids.size());
  const std::vector<int32_t> text_ids(ids.begin() + 1, ids.end());
  // The patch prompts run once; each pass gets fresh hooks from them.
  ASSIGN_OR_RETURN(const PreparedEdits prepared, PrepareEdits(edits));
  ASSIGN_OR_RETURN(HookSet hooks, HooksFor(prepared));
  const torch::Tensor tokens = AsTokens(ids);

  // Every SAE reads the activation its hook passes on, edits included.
  std::vector<torch::Tensor> read(saes_->size());
  HookSet run = hooks;
  for (size_t s = 0; s < saes_->size(); ++s) {
    const std::string& hook = (*saes_)[s].hook;
    HookFn inner;
    if (auto it = run.hooks.find(hook); it != run.hooks.end()) inner = it->second;
    torch::Tensor* out = &read[s];
    run.hooks[hook] = [inner, out](const torch::Tensor& x) {
      torch::Tensor y = inner ? inner(x) : x;
      *out = y;
      return y;
    };
  }
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(torch::Tensor logits, model_->Forward(tokens, run));

  PromptView view;
  view.tokens = text_ids;
  for (int32_t id : text_ids) view.token_texts.push_back(tokenizer_->Decode({id}));
  for (size_t s = 0; s < saes_->size(); ++s) {
    const torch::Tensor f = (*saes_)[s].sae->Encode(read[s][0].slice(0, 1));  // [tokens, n]
    const int64_t k = std::min<int64_t>(options.top_latents, f.size(1));
    const auto [values, indices] = f.topk(k, 1);
    std::vector<std::vector<LatentActivation>> per_token(f.size(0));
    for (int64_t t = 0; t < f.size(0); ++t) {
      for (int64_t j = 0; j < k; ++j) {
        const double value = values[t][j].item<double>();
        if (value <= 0) break;
        per_token[t].push_back({indices[t][j].item<int64_t>(), value});
      }
    }
    view.top_latents.push_back(std::move(per_token));
  }
  const torch::Tensor last = logits[0][length - 1];
  const torch::Tensor probabilities = torch::softmax(last.to(torch::kFloat64), 0);
  const int64_t top = std::min<int64_t>(options.top_next_tokens, last.size(0));
  const auto [top_logits, top_ids] = last.topk(top);
  for (int64_t j = 0; j < top; ++j) {
    const int32_t id = static_cast<int32_t>(top_ids[j].item<int64_t>());
    view.next_tokens.push_back({id, tokenizer_->Decode({id}), top_logits[j].item<double>(),
                                probabilities[id].item<double>()});
  }
  if (options.continuation_tokens > 0) {
    GenerateOptions generate;
    generate.max_new_tokens = options.continuation_tokens;
    generate.temperature = 0;
    // Fresh hooks: their position count starts again at the prompt.
    ASSIGN_OR_RETURN(HookSet generate_hooks, HooksFor(prepared));
    ASSIGN_OR_RETURN(GenerateResult generated, model_->Generate(ids, generate, generate_hooks));
    for (int64_t id : generated.tokens) view.continuation.push_back(static_cast<int32_t>(id));
    view.continuation_text = tokenizer_->Decode(view.continuation);
  }
  return view;
}

absl::StatusOr<PromptAttribution> ViewerSession::Attribute(const std::string& prompt,
                                                           const ViewEdits& edits,
                                                           const AttributionTarget& target) const {
  const int64_t vocab = model_->config().vocab_size;
  for (const std::optional<int32_t> token : {std::optional<int32_t>(target.token), target.contrast}) {
    if (token.has_value() && (*token < 0 || *token >= vocab)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", *token, " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  if (target.top_nodes < 0) return absl::InvalidArgumentError("top_nodes must be >= 0");
  ASSIGN_OR_RETURN(const std::vector<int64_t> ids, PromptIds(prompt, 0));
  const int64_t length = static_cast<int64_t>(ids.size());
  ASSIGN_OR_RETURN(HookSet run, EditHooks(edits));

  // A zero "probe" is added to the activation at every site and to every
  // layer's head outputs: the gradient of the metric with respect to a
  // probe is the gradient at that activation, along every path (nothing is
  // detached), and the activations keep their values bit for bit.
  struct Probe {
    torch::Tensor probe, value;
  };
  const int64_t n_layer = model_->config().n_layer;
  std::vector<Probe> sites(saes_->size()), heads(n_layer);
  auto probe_hook = [&run](const std::string& name, Probe* slot) {
    HookFn inner;
    if (auto it = run.hooks.find(name); it != run.hooks.end()) inner = it->second;
    run.hooks[name] = [inner, slot](const torch::Tensor& x) {
      torch::Tensor y = inner ? inner(x) : x;
      slot->value = y.detach();
      slot->probe = torch::zeros_like(y).requires_grad_(true);
      return y + slot->probe;
    };
  };
  for (size_t s = 0; s < saes_->size(); ++s) probe_hook((*saes_)[s].hook, &sites[s]);
  for (int64_t layer = 0; layer < n_layer; ++layer) {
    probe_hook(HeadOutputsHookName(layer), &heads[layer]);
  }
  torch::AutoGradMode grad_mode(true);
  ASSIGN_OR_RETURN(torch::Tensor logits, model_->Forward(AsTokens(ids), run));
  torch::Tensor metric = logits[0][length - 1][target.token];
  if (target.contrast.has_value()) metric = metric - logits[0][length - 1][*target.contrast];
  std::vector<torch::Tensor> probes;
  for (const Probe& p : sites) probes.push_back(p.probe);
  for (const Probe& p : heads) probes.push_back(p.probe);
  const std::vector<torch::Tensor> grads =
      torch::autograd::grad({metric}, probes, {}, /*retain_graph=*/false, /*create_graph=*/false,
                            /*allow_unused=*/true);

  PromptAttribution result;
  result.metric = metric.item<double>();
  for (size_t t = 1; t < ids.size(); ++t) {
    result.token_texts.push_back(tokenizer_->Decode({static_cast<int32_t>(ids[t])}));
  }
  std::vector<AttributedNode> nodes;
  for (size_t s = 0; s < saes_->size(); ++s) {
    Sae& sae = *(*saes_)[s].sae;
    // Positions after BOS: [tokens, d].
    const torch::Tensor x = sites[s].value[0].slice(0, 1);
    const torch::Tensor g = grads[s].defined() ? grads[s][0].slice(0, 1) : torch::zeros_like(x);
    torch::Tensor f, error, latent_grad;
    {
      torch::NoGradGuard no_grad;
      f = sae.Encode(x);
      error = x - sae.Decode(f);
    }
    // d m / d f = Decode's vector-Jacobian product of the activation's
    // gradient (x = Decode(f) + error with the error term held).
    torch::Tensor f_leaf = f.clone().requires_grad_(true);
    latent_grad = torch::autograd::grad({sae.Decode(f_leaf)}, {f_leaf}, {g})[0];
    const torch::Tensor latent_effect = (-(f * latent_grad)).to(torch::kFloat64);
    const torch::Tensor error_effect = (-(error * g).sum(1)).to(torch::kFloat64);
    const torch::Tensor error_norm = error.norm(2, 1).to(torch::kFloat64);
    const torch::Tensor active = f.nonzero();  // [m, 2] (position, latent), row-major order
    for (int64_t t = 0; t < x.size(0); ++t) {
      AttributedNode node;
      node.kind = AttributedNode::Kind::kError;
      node.site = static_cast<int>(s);
      node.position = t;
      node.value = error_norm[t].item<double>();
      node.effect = error_effect[t].item<double>();
      nodes.push_back(node);
    }
    for (int64_t j = 0; j < active.size(0); ++j) {
      const int64_t t = active[j][0].item<int64_t>(), i = active[j][1].item<int64_t>();
      AttributedNode node;
      node.kind = AttributedNode::Kind::kLatent;
      node.site = static_cast<int>(s);
      node.latent = i;
      node.position = t;
      node.value = f[t][i].item<double>();
      node.effect = latent_effect[t][i].item<double>();
      nodes.push_back(node);
    }
  }
  for (int64_t layer = 0; layer < n_layer; ++layer) {
    const torch::Tensor z = heads[layer].value[0].slice(0, 1);  // [tokens, n_head, d_head]
    const size_t index = saes_->size() + layer;
    if (!grads[index].defined()) continue;
    const torch::Tensor g = grads[index][0].slice(0, 1);
    const torch::Tensor effect = (-(z * g).sum(2)).to(torch::kFloat64);  // [tokens, n_head]
    const torch::Tensor norm = z.norm(2, 2).to(torch::kFloat64);
    for (int64_t t = 0; t < z.size(0); ++t) {
      for (int64_t h = 0; h < z.size(1); ++h) {
        AttributedNode node;
        node.kind = AttributedNode::Kind::kHead;
        node.layer = layer;
        node.head = h;
        node.position = t;
        node.value = norm[t][h].item<double>();
        node.effect = effect[t][h].item<double>();
        nodes.push_back(node);
      }
    }
  }
  // Largest |effect| first; equal ones keep the order above (sites in
  // session order, error terms before latents, then heads by layer).
  std::stable_sort(nodes.begin(), nodes.end(), [](const AttributedNode& a, const AttributedNode& b) {
    return std::abs(a.effect) > std::abs(b.effect);
  });
  if (static_cast<int64_t>(nodes.size()) > target.top_nodes) nodes.resize(target.top_nodes);
  result.nodes = std::move(nodes);
  return result;
}

absl::StatusOr<std::string> ViewerSession::LatentCardHtml(int site, int64_t latent) const {
  if (site < 0 || site >= static_cast<int>(saes_->size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("no SAE number ", site, " (there are ", saes_->size(), ")"));
  }
  const ViewerSae& entry = (*saes_)[site];
  RETURN_IF_ERROR(CheckLatent(*entry.sae, latent));
  if (!dashboard_contexts_.defined()) {
    return absl::FailedPreconditionError(
        "the viewer has no contexts to find top activations in (saelab serve "
        "--dashboard_contexts=0 turns them off)");
  }
  DashboardOptions options;
  options.latents = {latent};
  ASSIGN_OR_RETURN(SaeDashboard dashboard,
                   BuildDashboard(*model_, *tokenizer_, entry.hook, *entry.sae,
                                  dashboard_contexts_, options));
  dashboard.name = absl::StrCat(entry.name, " latent ", latent);
  return RenderDashboardHtml(dashboard);
}

}  // namespace saelab
