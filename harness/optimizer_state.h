// Adam / AdamW per-parameter state (step, exp_avg, exp_avg_sq) in and out
// of a TensorMap, so a trainer checkpoints its optimiser in the same
// safetensors file as its weights and a resumed run continues bit for bit.
//
// torch::optim keys state by the parameter's TensorImpl address, exactly as
// torch/optim/serialize.h does; the caller gives the stable names.
//
//   SaveAdamState<torch::optim::AdamParamState>(adam, sae.NamedTensors(), "adam.", &tensors);
//   ...
//   RETURN_IF_ERROR(LoadAdamState<torch::optim::AdamParamState>(
//       contents, path, sae.NamedTensors(), "adam.", &adam));
#ifndef SAELAB_HARNESS_OPTIMIZER_STATE_H_
#define SAELAB_HARNESS_OPTIMIZER_STATE_H_

#include <map>
#include <memory>
#include <string>

#include <torch/optim/adam.h>
#include <torch/types.h>

#include "absl/status/status.h"
#include "harness/safetensors.h"
#include "harness/status_macros.h"

namespace saelab {

// The optimiser's state key for `param`.
inline std::string OptimizerStateKey(const torch::Tensor& param) {
  return c10::guts::to_string(param.unsafeGetTensorImpl());
}

// Adds "<prefix><name>.exp_avg", ".exp_avg_sq" and ".step" to `out` for
// every named tensor that has state (buffers and parameters before their
// first step have none). State: torch::optim::AdamParamState or
// AdamWParamState, matching the optimiser.
template <typename State, typename Optimizer>
void SaveAdamState(Optimizer& optimizer, const std::map<std::string, torch::Tensor>& named,
                   const std::string& prefix, TensorMap* out) {
  for (const auto& [name, param] : named) {
    auto entry = optimizer.state().find(OptimizerStateKey(param));
    if (entry == optimizer.state().end()) continue;
    auto& state = static_cast<State&>(*entry->second);
    (*out)[prefix + name + ".exp_avg"] = state.exp_avg();
    (*out)[prefix + name + ".exp_avg_sq"] = state.exp_avg_sq();
    (*out)[prefix + name + ".step"] = torch::tensor(state.step(), torch::kInt64);
  }
}

// The inverse: for every named tensor whose "<prefix><name>.exp_avg" is in
// `contents`, installs its state in `optimizer`. Errors (from GetTensor,
// starting with `path`) for a moment of the wrong shape or dtype, or a
// missing exp_avg_sq / step beside an exp_avg.
template <typename State, typename Optimizer>
absl::Status LoadAdamState(const SafetensorsContents& contents, const std::string& path,
                           const std::map<std::string, torch::Tensor>& named,
                           const std::string& prefix, Optimizer* optimizer) {
  for (const auto& [name, param] : named) {
    const std::string key = prefix + name;
    if (contents.tensors.count(key + ".exp_avg") == 0) continue;
    ASSIGN_OR_RETURN(torch::Tensor exp_avg, GetTensor(contents, path, key + ".exp_avg",
                                                      param.sizes().vec(), torch::kFloat32));
    ASSIGN_OR_RETURN(torch::Tensor exp_avg_sq, GetTensor(contents, path, key + ".exp_avg_sq",
                                                         param.sizes().vec(), torch::kFloat32));
    ASSIGN_OR_RETURN(torch::Tensor step, GetTensor(contents, path, key + ".step", {}, torch::kInt64));
    auto state = std::make_unique<State>();
    state->step(step.item<int64_t>());
    state->exp_avg(exp_avg);
    state->exp_avg_sq(exp_avg_sq);
    optimizer->state()[OptimizerStateKey(param)] = std::move(state);
  }
  return absl::OkStatus();
}

}  // namespace saelab

#endif  // SAELAB_HARNESS_OPTIMIZER_STATE_H_
