#include "tools/viewer/viewer_session.h"

#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
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

absl::StatusOr<HookSet> ViewerSession::EditHooks(const std::vector<PromptEdit>& edits) const {
  std::vector<std::vector<PromptEdit>> by_site(saes_->size());
  for (const PromptEdit& edit : edits) {
    if (edit.site < 0 || edit.site >= static_cast<int>(saes_->size())) {
      return absl::InvalidArgumentError(absl::StrCat("no SAE number ", edit.site, " (there are ",
                                                     saes_->size(), ")"));
    }
    RETURN_IF_ERROR(CheckLatent(*(*saes_)[edit.site].sae, edit.latent));
    by_site[edit.site].push_back(edit);
  }
  HookSet hooks;
  for (size_t s = 0; s < saes_->size(); ++s) {
    if (by_site[s].empty()) continue;
    Sae* sae = (*saes_)[s].sae.get();
    std::vector<PromptEdit> site_edits = by_site[s];
    RowEdit row_edit = [sae, site_edits](const torch::Tensor& x) {
      const torch::Tensor f = sae->Encode(x);
      torch::Tensor edited = f.clone();
      for (const PromptEdit& e : site_edits) {
        torch::Tensor column = edited.select(1, e.latent);
        switch (e.edit.kind) {
          case LatentEdit::Kind::kZero: column.zero_(); break;
          case LatentEdit::Kind::kScale: column.mul_(e.edit.value); break;
          case LatentEdit::Kind::kClamp: column.fill_(e.edit.value); break;
        }
      }
      // Error term kept: only the edit changes the activation.
      return x + (sae->Decode(edited) - sae->Decode(f));
    };
    ASSIGN_OR_RETURN(HookSet site_hooks, SpliceAt(*model_, (*saes_)[s].hook, *sae, row_edit));
    for (auto& [name, fn] : site_hooks.hooks) hooks.hooks[name] = std::move(fn);
  }
  return hooks;
}

absl::StatusOr<PromptView> ViewerSession::View(const std::string& prompt,
                                               const std::vector<PromptEdit>& edits,
                                               const ViewOptions& options) const {
  if (options.top_latents < 0 || options.top_next_tokens < 0 || options.continuation_tokens < 0) {
    return absl::InvalidArgumentError("view options must be >= 0");
  }
  const std::vector<int32_t> text_ids = tokenizer_->Encode(prompt);
  if (text_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const int64_t length = 1 + static_cast<int64_t>(text_ids.size());
  if (length + options.continuation_tokens > model_->config().n_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt is ", text_ids.size(), " tokens; with BOS and ",
                     options.continuation_tokens, " to generate it must fit in ",
                     model_->config().n_positions));
  }
  ASSIGN_OR_RETURN(HookSet hooks, EditHooks(edits));
  std::vector<int64_t> ids = {*tokenizer_->eos_id()};
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  const torch::Tensor tokens = torch::tensor(ids, torch::kInt64).unsqueeze(0);

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
    ASSIGN_OR_RETURN(GenerateResult generated, model_->Generate(ids, generate, hooks));
    for (int64_t id : generated.tokens) view.continuation.push_back(static_cast<int32_t>(id));
    view.continuation_text = tokenizer_->Decode(view.continuation);
  }
  return view;
}

}  // namespace saelab
