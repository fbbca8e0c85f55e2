#include "eval/splice.h"

#include <utility>

#include <memory>

#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"

namespace saelab {

RowEdit SpliceReconstruction(Sae& sae, bool keep_error) {
  return [&sae, keep_error](const torch::Tensor& x) {
    torch::Tensor x_hat = sae.Reconstruct(x);
    // x + (x_hat - x_hat): exactly x, the identity this mode exists to show.
    return keep_error ? x + (x_hat - x_hat) : x_hat;
  };
}

RowEdit ZeroAblation() {
  return [](const torch::Tensor& x) { return torch::zeros_like(x); };
}

RowEdit MeanAblation(torch::Tensor mean) {
  return [mean = std::move(mean)](const torch::Tensor& x) {
    return mean.to(x.dtype()).reshape({1, -1}).expand_as(x).clone();
  };
}

RowEdit EditLatent(Sae& sae, int64_t latent, LatentEdit edit, bool keep_error) {
  return [&sae, latent, edit, keep_error](const torch::Tensor& x) {
    torch::Tensor f = sae.Encode(x);
    torch::Tensor edited = f.clone();
    torch::Tensor column = edited.select(1, latent);
    switch (edit.kind) {
      case LatentEdit::Kind::kZero:
        column.zero_();
        break;
      case LatentEdit::Kind::kScale:
        column.mul_(edit.value);
        break;
      case LatentEdit::Kind::kClamp:
        column.fill_(edit.value);
        break;
    }
    torch::Tensor out = sae.Decode(edited);
    // x + (x_hat' - x_hat) is x_hat' + (x - x_hat) rearranged so that an
    // edit that changes nothing returns x exactly, not up to rounding.
    return keep_error ? x + (out - sae.Decode(f)) : out;
  };
}

RowEdit AddDirection(torch::Tensor direction, double coefficient) {
  return [direction = std::move(direction), coefficient](const torch::Tensor& x) {
    return x + coefficient * direction.to(x.dtype()).reshape({1, -1});
  };
}

absl::Status CheckLatent(const Sae& sae, int64_t latent) {
  if (latent < 0 || latent >= sae.n_latents()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latent ", latent, " is out of range: the SAE has ", sae.n_latents(), " latents"));
  }
  return absl::OkStatus();
}

absl::StatusOr<HookSet> SpliceAt(const Gpt2Model& model, const std::string& hook_name,
                                 const Sae& sae, RowEdit edit, const SpliceOptions& options) {
  absl::StatusOr<HookLocation> location = ParseHookName(hook_name, model.config().n_layer);
  if (!location.ok()) return location.status();
  if (model.config().n_embd != sae.d_in()) {
    return absl::InvalidArgumentError(absl::StrCat("the SAE's d_in is ", sae.d_in(), " but ",
                                                   hook_name,
                                                   " has width n_embd = ", model.config().n_embd));
  }
  const bool skip_bos = options.skip_bos;
  HookSet hooks;
  hooks.hooks[hook_name] = [edit = std::move(edit), skip_bos](const torch::Tensor& activation) {
    const int64_t batch = activation.size(0), seq = activation.size(1), d = activation.size(2);
    const int64_t first = (skip_bos && seq > 1) ? 1 : 0;
    torch::Tensor rows = activation.slice(1, first, seq).reshape({batch * (seq - first), d});
    torch::Tensor edited = edit(rows).reshape({batch, seq - first, d});
    if (first == 0) return edited;
    return torch::cat({activation.slice(1, 0, 1), edited}, 1);
  };
  return hooks;
}

absl::StatusOr<HookSet> SpliceTranscoder(const Gpt2Model& model, const std::string& input_hook,
                                         const std::string& output_hook, Sae& sae,
                                         const SpliceOptions& options) {
  if (!sae.is_transcoder()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SpliceTranscoder: the SAE (", sae.architecture(), ") is not a transcoder"));
  }
  ASSIGN_OR_RETURN(HookLocation input, ParseHookName(input_hook, model.config().n_layer));
  ASSIGN_OR_RETURN(HookLocation output, ParseHookName(output_hook, model.config().n_layer));
  if (output.index() <= input.index()) {
    return absl::InvalidArgumentError(absl::StrCat("SpliceTranscoder: the output hook ", output_hook,
                                                   " must come after the input hook ", input_hook));
  }
  // The output hook's edit reads the input the same forward pass recorded.
  auto recorded = std::make_shared<torch::Tensor>();
  ASSIGN_OR_RETURN(HookSet hooks,
                   SpliceAt(model, output_hook, sae,
                            [&sae, recorded](const torch::Tensor& rows) {
                              torch::Tensor x = recorded->reshape({-1, rows.size(1)});
                              TORCH_CHECK(x.size(0) == rows.size(0),
                                          "SpliceTranscoder: input and output rows differ");
                              return sae.Reconstruct(x);
                            },
                            options));
  const bool skip_bos = options.skip_bos;
  hooks.hooks[input_hook] = [recorded, skip_bos](const torch::Tensor& activation) {
    const int64_t seq = activation.size(1);
    const int64_t first = (skip_bos && seq > 1) ? 1 : 0;
    *recorded = activation.slice(1, first, seq);
    return activation;
  };
  return hooks;
}

}  // namespace saelab
