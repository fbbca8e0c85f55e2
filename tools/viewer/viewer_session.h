// What the interactive viewer (`saelab serve`, issue: circuits and viewer)
// computes for one prompt, as a library: the prompt's tokens, the top
// latents of every SAE at every token, the next-token distribution, and a
// greedy continuation, each with any set of latent edits (zero, scale,
// clamp) applied while the model runs, error terms kept. The HTTP server
// and its page are a thin layer over this.
//
//   std::vector<ViewerSae> saes;
//   saes.push_back({"blocks.1.hook_resid_post", "topk", std::move(sae)});
//   ASSIGN_OR_RETURN(ViewerSession session,
//                    ViewerSession::Create(model, tokenizer, std::move(saes)));
//   ASSIGN_OR_RETURN(PromptView view,
//                    session.View("Thou art", {{/*site=*/0, /*latent=*/17, LatentEdit::Zero()}}));
//   // view.next_tokens[0].text: the most likely next token with latent 17 ablated
#ifndef SAELAB_TOOLS_VIEWER_VIEWER_SESSION_H_
#define SAELAB_TOOLS_VIEWER_VIEWER_SESSION_H_

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
  // continuation), an edit at an unknown site or latent, or options < 0.
  absl::StatusOr<PromptView> View(const std::string& prompt, const std::vector<PromptEdit>& edits,
                                  const ViewOptions& options = {}) const;

  // The hooks that apply `edits` (what View runs with): per site, f = Encode(x),
  // the edits applied to f, x + Decode(f') - Decode(f). BOS passes through.
  absl::StatusOr<HookSet> EditHooks(const std::vector<PromptEdit>& edits) const;

 private:
  ViewerSession() = default;
  std::optional<Gpt2Model> model_;
  std::optional<BpeTokenizer> tokenizer_;
  // Shared so that the session is copyable (the server holds one).
  std::shared_ptr<std::vector<ViewerSae>> saes_;
};

}  // namespace saelab

#endif  // SAELAB_TOOLS_VIEWER_VIEWER_SESSION_H_
