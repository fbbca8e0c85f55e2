// The one place SAEs enter the subject model: hook functions
// (data/subject_model/hooks.h) that act at the SAE's hook point during a
// full forward pass or KV-cache generation.
//
//   ASSIGN_OR_RETURN(HookSet hooks, SpliceAt(model, "blocks.1.hook_resid_post", sae,
//                                            SpliceReconstruction(sae, /*keep_error=*/false)));
//   ASSIGN_OR_RETURN(torch::Tensor logits, model.Forward(tokens, hooks));   // spliced loss
//   // Steering: clamp latent 17 to 5.0, error term kept, while generating.
//   ASSIGN_OR_RETURN(HookSet steer, SpliceAt(model, hook_name, sae,
//                                            EditLatent(sae, 17, LatentEdit::Clamp(5.0))));
//   ASSIGN_OR_RETURN(GenerateResult out, model.Generate(prompt, options, steer));
//
// BOS: saelab's SAEs are trained without the BOS position (its activations
// have outlier norms; activations.drop_bos), and every context and prompt
// starts with <|endoftext|> as BOS. So by default (SpliceOptions.skip_bos)
// position 0 of a call that covers more than one position passes through
// unchanged: that is the BOS of a packed context or of a generation prompt.
// Generation steps after the prompt cover one new position, never BOS, and
// are spliced. docs/metrics.md records this choice.
#ifndef SAELAB_EVAL_SPLICE_H_
#define SAELAB_EVAL_SPLICE_H_

#include <torch/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "sae/sae.h"

namespace saelab {

// What one splice does to the activation rows x [rows, d_in] (model units)
// at the hook; it never sees BOS rows when skip_bos applies.
using RowEdit = std::function<torch::Tensor(const torch::Tensor& x)>;

struct SpliceOptions {
  // Leave position 0 of multi-position calls unchanged (see above).
  bool skip_bos = true;
};

// x -> x_hat = Decode(Encode(x)); with keep_error, x -> x_hat + (x - x_hat),
// computed as x + (x_hat - x_hat) so that it is x exactly: the identity every
// edit with the error term kept builds on (the spliced loss equals the clean
// loss bit for bit).
RowEdit SpliceReconstruction(Sae& sae, bool keep_error);

// x -> 0.
RowEdit ZeroAblation();

// x -> mean ([d_in], e.g. the activation store's mean), for every row.
RowEdit MeanAblation(torch::Tensor mean);

// How EditLatent changes one latent's activation f_i (model units of f).
struct LatentEdit {
  enum class Kind { kZero, kScale, kClamp };
  Kind kind = Kind::kZero;
  double value = 0;  // the factor for kScale, the value for kClamp
  static LatentEdit Zero() { return {Kind::kZero, 0}; }
  static LatentEdit Scale(double factor) { return {Kind::kScale, factor}; }
  static LatentEdit Clamp(double value) { return {Kind::kClamp, value}; }
};

// f = Encode(x); f_i edited; x -> Decode(f') + (x - Decode(f)) with
// keep_error (computed as x + (Decode(f') - Decode(f)), so an edit that
// changes nothing returns x exactly) (the default: only the edit changes the activation, as in
// Anthropic's steering), else x -> Decode(f'). `latent` must be in
// [0, n_latents) (checked by SpliceAt's callers through CheckLatent).
RowEdit EditLatent(Sae& sae, int64_t latent, LatentEdit edit, bool keep_error = true);

// x -> x + coefficient * direction ([d_in]), e.g. a decoder row.
RowEdit AddDirection(torch::Tensor direction, double coefficient);

// A HookSet that applies `edit` at `hook_name`, reshaping the hook's
// [batch, seq, d] activation to rows and back. InvalidArgument for an
// unknown hook name (listing the valid ones) or a model width that differs
// from sae.d_in() (naming both).
absl::StatusOr<HookSet> SpliceAt(const Gpt2Model& model, const std::string& hook_name,
                                 const Sae& sae, RowEdit edit, const SpliceOptions& options = {});

// A transcoder in place of the computation between two hook points (an
// MLP: input_hook blocks.L.hook_mlp_in, output_hook blocks.L.hook_mlp_out):
// the input hook records its activation (unchanged) and the output hook's
// activation is replaced by sae.Reconstruct(recorded input), row by row.
// BOS as SpliceAt. InvalidArgument for an unknown hook name, an output hook
// that does not come after the input hook, a model width other than
// sae.d_in(), or an SAE that is not a transcoder.
absl::StatusOr<HookSet> SpliceTranscoder(const Gpt2Model& model, const std::string& input_hook,
                                         const std::string& output_hook, Sae& sae,
                                         const SpliceOptions& options = {});

// OkStatus if 0 <= latent < sae.n_latents(), else InvalidArgument naming both.
absl::Status CheckLatent(const Sae& sae, int64_t latent);

}  // namespace saelab

#endif  // SAELAB_EVAL_SPLICE_H_
