// What the interactive viewer (`saelab serve`) computes for one prompt, as
// a library: the prompt's tokens, the top latents of every SAE at every
// token, the next-token distribution and a greedy continuation, each with
// edits applied while the model runs (latents zeroed, scaled, clamped or
// patched from a second prompt, error terms kept; attention heads scaled
// or ablated); which nodes (latents, SAE error terms, attention heads at
// each token) drive a chosen next token; and a latent's dashboard card.
// The HTTP server and its page are a thin layer over this.
//
//   std::vector<ViewerSae> saes;
//   saes.push_back({"blocks.1.hook_resid_post", "topk", std::move(sae)});
//   ASSIGN_OR_RETURN(ViewerSession session,
//                    ViewerSession::Create(model, tokenizer, std::move(saes)));
//   ViewEdits edits;
//   edits.latents.push_back({/*site=*/0, /*latent=*/17, LatentEdit::Zero()});
//   edits.heads.push_back({/*layer=*/2, /*head=*/1, /*scale=*/0});
//   ASSIGN_OR_RETURN(PromptView view, session.View("Thou art", edits));
//   // view.next_tokens[0].text: the most likely next token with latent 17
//   // and head 2.1 ablated
//   ASSIGN_OR_RETURN(PromptAttribution why,
//                    session.Attribute("Thou art", edits, {view.next_tokens[0].id}));
//   // why.nodes[0]: the node whose removal would move that token's logit most
//
// Positions: edits and attributions cover the prompt's tokens after BOS
// (BOS passes through, as in eval/splice.h) and every generated token.
#ifndef SAELAB_TOOLS_VIEWER_VIEWER_SESSION_H_
#define SAELAB_TOOLS_VIEWER_VIEWER_SESSION_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "eval/splice.h"
#include "sae/sae.h"

namespace saelab {

// An SAE and the hook it reads.
struct ViewerSae {
  std::string hook;
  std::string name;
  std::unique_ptr<Sae> sae;
};

// One latent edit, at every position of the prompt after BOS and at every
// generated position.
struct PromptEdit {
  int site = 0;  // index into the session's SAEs
  int64_t latent = 0;
  LatentEdit edit = LatentEdit::Zero();
  // Activation patching from a second prompt: when non-empty, the latent
  // takes the value it has on this prompt (run without edits) at the same
  // position, or past that prompt's end the value at its last token, and
  // `edit` is not used.
  std::string patch_from;
};

// Attention head `head` of block `layer` scaled by `scale` (0: ablated) at
// blocks.{layer}.attn.hook_z, before the heads are projected back.
struct HeadEdit {
  int64_t layer = 0;
  int64_t head = 0;
  double scale = 0;
};

struct ViewEdits {
  std::vector<PromptEdit> latents;
  std::vector<HeadEdit> heads;
};

struct ViewOptions {
  int top_latents = 8;      // per site and token
  int top_next_tokens = 10;
  int continuation_tokens = 16;  // greedy
};

struct LatentActivation {
  int64_t latent = 0;
  double activation = 0;
};

struct NextToken {
  int32_t id = 0;
  std::string text;
  double logit = 0;
  double probability = 0;
};

// What Attribute explains: the logit of `token` at the prompt's last
// position, minus the logit of `contrast` when one is given.
struct AttributionTarget {
  int32_t token = 0;
  std::optional<int32_t> contrast;
  int top_nodes = 20;  // how many nodes to return (>= 0)
};

// One node at one prompt position.
struct AttributedNode {
  enum class Kind { kLatent, kError, kHead };
  Kind kind = Kind::kLatent;
  int site = 0;        // kLatent, kError: index into the session's SAEs
  int64_t latent = 0;  // kLatent
  int64_t layer = 0;   // kHead
  int64_t head = 0;    // kHead
  int64_t position = 0;  // index into PromptView::tokens (0: the first after BOS)
  // The latent's activation; the norm of the error term or of the head's output.
  double value = 0;
  // Attribution patching with zero as the patch value: the first-order
  // change of the metric if this node alone were zeroed at this position,
  // -grad . value (Marks et al. 2024; Transformer Debugger's "direct
  // effect" uses the same gradient x activation product).
  double effect = 0;
};

struct PromptAttribution {
  double metric = 0;  // the target's logit (difference) with the edits applied
  // The prompt's tokens after BOS, as text (what AttributedNode::position indexes).
  std::vector<std::string> token_texts;
  // The top_nodes nodes of largest |effect|, largest first.
  std::vector<AttributedNode> nodes;
};

struct PromptView {
  // The prompt's tokens after BOS, as ids and as text.
  std::vector<int32_t> tokens;
  std::vector<std::string> token_texts;
  // [site][token]: the most active latents (activation > 0), largest first,
  // as the SAE reads the (edited) model.
  std::vector<std::vector<std::vector<LatentActivation>>> top_latents;
  // At the last token, most likely first.
  std::vector<NextToken> next_tokens;
  std::vector<int32_t> continuation;
  std::string continuation_text;
};

class ViewerSession {

 public:
  // InvalidArgument for no SAEs, a null SAE, an unknown hook (listing the
  // valid ones), two SAEs at one hook, or an SAE whose d_in is not the
  // model's width; a tokenizer without <|endoftext|>.
  static absl::StatusOr<ViewerSession> Create(Gpt2Model model, BpeTokenizer tokenizer,
                                              std::vector<ViewerSae> saes);

  const std::vector<ViewerSae>& saes() const { return *saes_; }
  const Gpt2Model& model() const { return *model_; }

  // The prompt (plain text; BOS prepended) run with `edits`. InvalidArgument
  // for an empty prompt, one longer than the model's context (with the
  // continuation), an edit at an unknown site, latent, layer or head, an
  // empty patch prompt, or options < 0.
  absl::StatusOr<PromptView> View(const std::string& prompt, const ViewEdits& edits,
                                  const ViewOptions& options = {}) const;

  // Which nodes drive `target` at the prompt's last position, with `edits`
  // applied: every latent, error term and head at every position after
  // BOS, by one forward and one backward pass. InvalidArgument as View, or
  // for a target token outside the vocabulary.
  absl::StatusOr<PromptAttribution> Attribute(const std::string& prompt, const ViewEdits& edits,
                                              const AttributionTarget& target) const;

  // The hooks that apply `edits` (what View runs with): per site, f =
  // Encode(x), the edits applied to f, x + Decode(f') - Decode(f); per
  // layer, the heads' outputs scaled. BOS passes through. Each call's
  // hooks count positions afresh, so use them for one forward pass or one
  // generation.
  absl::StatusOr<HookSet> EditHooks(const ViewEdits& edits) const;

  // Contexts ([N, L] int64, each starting with BOS) that LatentCardHtml
  // scans for a latent's top activations.
  void SetDashboardContexts(torch::Tensor contexts) { dashboard_contexts_ = std::move(contexts); }
  bool has_dashboard_contexts() const { return dashboard_contexts_.defined(); }

  // A self-contained page with the dashboard card (eval/dashboard.h) of one
  // latent over the dashboard contexts. FailedPrecondition without
  // contexts; InvalidArgument for an unknown site or latent.
  absl::StatusOr<std::string> LatentCardHtml(int site, int64_t latent) const;

 private:
  ViewerSession() = default;
  // Edits checked and their patch prompts run: what hooks are made from.
  struct PreparedEdits {
    std::vector<std::vector<PromptEdit>> by_site;
    // Per site, per edit: the latent's values on the patch prompt by
    // position ([its length], position 0 = BOS unused); undefined for
    // edits that are not patches.
    std::vector<std::vector<torch::Tensor>> patches;
    std::vector<torch::Tensor> head_scales;  // per layer: [n_head], or undefined
  };
  absl::StatusOr<PreparedEdits> PrepareEdits(const ViewEdits& edits) const;
  // Fresh hooks (positions counted from the prompt's start) for one pass.
  absl::StatusOr<HookSet> HooksFor(const PreparedEdits& prepared) const;
  // The prompt as model input, checked: [1, 1 + prompt tokens] with BOS.
  absl::StatusOr<std::vector<int64_t>> PromptIds(const std::string& prompt,
                                                 int continuation_tokens) const;
  std::optional<Gpt2Model> model_;
  std::optional<BpeTokenizer> tokenizer_;
  torch::Tensor dashboard_contexts_;
  // Shared so that the session is copyable (the server holds one).
  std::shared_ptr<std::vector<ViewerSae>> saes_;
};

}  // namespace saelab

#endif  // SAELAB_TOOLS_VIEWER_VIEWER_SESSION_H_
