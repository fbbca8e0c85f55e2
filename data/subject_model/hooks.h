// Hook points of the subject model: where a hook reads (captures), replaces
// (splices an SAE reconstruction) or edits (adds or clamps a feature
// direction) an activation in the residual stream of a GPT-2 forward pass.
// Names follow TransformerLens, so users recognise them:
//
//   blocks.{L}.hook_resid_pre    input of block L (for L = 0: token + positional embedding)
//   blocks.{L}.hook_attn_out     attention output (after c_proj), before it is added
//   blocks.{L}.hook_resid_mid    resid_pre + attn_out
//   blocks.{L}.hook_mlp_in       the MLP's input: LayerNorm 2 of resid_mid (what a
//                                transcoder reads; TransformerLens calls this point
//                                blocks.{L}.ln2.hook_normalized, and its own
//                                hook_mlp_in is resid_mid before the LayerNorm)
//   blocks.{L}.hook_mlp_out      MLP output (after c_proj), before it is added
//   blocks.{L}.hook_resid_post   resid_mid + mlp_out (= resid_pre of block L + 1)
//
// Within a block the points run in the order listed; hook_resid_post of L
// runs before hook_resid_pre of L + 1 (the same values, two hooks, as in
// TransformerLens). Every activation is [batch, seq, n_embd] float32.
//
// One more point per block reads or edits attention heads one by one:
//
//   blocks.{L}.attn.hook_z       each head's output softmax(q k^T / sqrt(d_head)) v,
//                                [batch, seq, n_head, d_head], before the heads are
//                                concatenated and projected by c_proj (so
//                                hook_attn_out = c_proj(hook_z as [batch, seq, n_embd]))
//
// It runs between hook_resid_pre and hook_attn_out. It is no HookPoint:
// SAEs, activation stores and stop_at use the six points above; hook_z
// exists so that a hook can ablate, scale or patch single heads (the
// viewer does). HookSet takes its name like any other.
//
//   torch::Tensor captured;
//   HookSet hooks;
//   hooks.hooks["blocks.6.hook_resid_post"] = CaptureInto(&captured);
//   hooks.hooks["blocks.3.hook_mlp_out"] = [&](const torch::Tensor& x) {
//     return x + 4.0 * direction;  // steer along a feature direction [n_embd]
//   };
//   ASSIGN_OR_RETURN(torch::Tensor logits, model.Forward(tokens, hooks));
//
// A hook returns the activation to continue with: its argument unchanged
// (a read), or a new tensor of the same shape, dtype and device. It must not
// modify its argument in place (autograd may need it, and for resid_post it
// is also the next block's input).
#ifndef SAELAB_DATA_SUBJECT_MODEL_HOOKS_H_
#define SAELAB_DATA_SUBJECT_MODEL_HOOKS_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

// activation: [batch, seq, n_embd]. Returns the activation to continue with.
using HookFn = std::function<torch::Tensor(const torch::Tensor& activation)>;

// Hooks by hook point name. At most one hook per point (compose them inside
// one function when several are needed).
struct HookSet {
  absl::flat_hash_map<std::string, HookFn> hooks;
};

// The hook points of one block, in the order a forward pass reaches them.
enum class HookPoint : int {
  kResidPre = 0,
  kAttnOut = 1,
  kResidMid = 2,
  kMlpIn = 3,
  kMlpOut = 4,
  kResidPost = 5,
};
inline constexpr int kHookPointsPerLayer = 6;

// A parsed hook point name: what code past the edge passes around, so a
// name is parsed (ParseHookName) and checked once, where it comes in.
struct HookLocation {
  int64_t layer = 0;
  HookPoint point = HookPoint::kResidPre;
  // Position in the forward pass: layer * kHookPointsPerLayer + point.
  // A forward that stops after index i computes nothing past it.
  int64_t index() const { return layer * kHookPointsPerLayer + static_cast<int>(point); }
};

// "resid_pre", "attn_out", "resid_mid", "mlp_in", "mlp_out" or "resid_post".
absl::string_view HookPointSuffix(HookPoint point);

// "blocks.{layer}.hook_{suffix}".
std::string HookName(int64_t layer, HookPoint point);
std::string HookName(const HookLocation& location);

// Every valid name for a model with `n_layer` blocks, in forward order.
std::vector<std::string> ValidHookNames(int64_t n_layer);

// Parses a hook point name. InvalidArgument for an unknown name, listing the
// valid ones ("blocks.L.hook_resid_pre, ... for L in 0..n_layer-1"), or for
// a layer outside [0, n_layer).
absl::StatusOr<HookLocation> ParseHookName(absl::string_view name, int64_t n_layer);

// "blocks.{layer}.attn.hook_z": the per-head outputs of block `layer`.
std::string HeadOutputsHookName(int64_t layer);

// The layer of a "blocks.{L}.attn.hook_z" name; nullopt for any other name;
// InvalidArgument for a layer outside [0, n_layer).
absl::StatusOr<std::optional<int64_t>> ParseHeadOutputsHookName(absl::string_view name,
                                                                int64_t n_layer);

// OK if `location` is a hook point of a model with `n_layer` blocks;
// otherwise InvalidArgument naming it and the model's number of blocks.
absl::Status CheckHookLocation(const HookLocation& location, int64_t n_layer);

// A hook that stores its activation into *out (sharing storage; detached
// from autograd only if the forward ran without grad) and returns it
// unchanged. During generation each step overwrites *out with that step's
// activation.
HookFn CaptureInto(torch::Tensor* out);

}  // namespace saelab

#endif  // SAELAB_DATA_SUBJECT_MODEL_HOOKS_H_
