// A hook point's activations over packed contexts, as the rows an SAE
// trains on: the one batched forward loop behind harvesting
// (data/activations/harvest.h), the model source
// (data/activations/model_source.h) and evaluation sets.
//
//   ASSIGN_OR_RETURN(HookLocation location, ParseHookName(hook_name, model.config().n_layer));
//   ASSIGN_OR_RETURN(torch::Tensor rows,
//                    HookActivationRows(model, contexts, location, /*drop_bos=*/true));
//   // rows: [contexts.size(0) * (context_length - 1), n_embd] float32
#ifndef SAELAB_DATA_ACTIVATIONS_HOOK_ROWS_H_
#define SAELAB_DATA_ACTIVATIONS_HOOK_ROWS_H_

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"

namespace saelab {

// Runs contexts [N, L] (int64, N >= 1) through `model` to `location`,
// batch_contexts contexts per forward pass (the last batch may be smaller),
// without grad. Returns the activations as rows [N * P, n_embd] float32,
// context by context, each context's positions in order, P = L - drop_bos
// (position 0 left out when drop_bos): the row layout of an activation
// store and of both activation sources. The batching changes the rows only
// by float rounding; the same batches give the same bits. on_batch, if set,
// is called with the number of contexts done after each batch (progress).
// Errors as Gpt2Model::RunToHook (bad tokens, a location outside the
// model); InvalidArgument for N = 0, P < 1 or batch_contexts < 1.
absl::StatusOr<torch::Tensor> HookActivationRows(
    const Gpt2Model& model, const torch::Tensor& contexts, HookLocation location, bool drop_bos,
    int64_t batch_contexts = 32, const std::function<void(int64_t)>& on_batch = nullptr);

// Several hook points from one forward pass per batch (run as far as the
// last of them): rows [N * P, n_embd * locations.size()], each row the
// locations' activations side by side in the order given. For paired
// transcoder rows [input | target], e.g. {mlp_in, mlp_out} of one block.
// Each location's columns equal HookActivationRows at that location alone;
// a location listed twice is computed once and appears twice.
// InvalidArgument as above, or for an empty `locations`.
absl::StatusOr<torch::Tensor> HookActivationRows(
    const Gpt2Model& model, const torch::Tensor& contexts,
    const std::vector<HookLocation>& locations, bool drop_bos, int64_t batch_contexts = 32,
    const std::function<void(int64_t)>& on_batch = nullptr);

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_HOOK_ROWS_H_
