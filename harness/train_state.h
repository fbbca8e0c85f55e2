// One resumable train-state file for every trainer (the SAE trainer and the
// LM trainer): a safetensors file holding the model's named tensors under
// "<weights_prefix><name>", the Adam/AdamW moments under
// "<optimizer_prefix><name>.exp_avg|.exp_avg_sq|.step", the trainer's own
// loop tensors under "loop.<name>" (next step, counters, curves), and the
// sha256 of the config it belongs to in the header metadata, so a resumed
// run continues bit for bit and a checkpoint of another config is refused.
//
//   TrainState state;
//   state.loop["next_step"] = torch::tensor(step, torch::kInt64);
//   RETURN_IF_ERROR(SaveTrainState<torch::optim::AdamParamState>(
//       path, config_sha256, sae.NamedTensors(), "sae.", adam, "adam.", state));
//   ...
//   ASSIGN_OR_RETURN(TrainState state, LoadTrainState<torch::optim::AdamParamState>(
//       path, config_sha256, "SAE", sae.NamedTensors(), "sae.", &adam, "adam."));
//   ASSIGN_OR_RETURN(torch::Tensor next, state.Loop(path, "next_step", {}, torch::kInt64));
#ifndef SAELAB_HARNESS_TRAIN_STATE_H_
#define SAELAB_HARNESS_TRAIN_STATE_H_

#include <torch/optim/adam.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "harness/optimizer_state.h"
#include "harness/safetensors.h"
#include "harness/status_macros.h"

namespace saelab {

// The trainer-specific part of a train state: "loop.<name>" tensors.
struct TrainState {
  TensorMap loop;

  // loop[name] checked against shape and dtype (GetTensor's errors, naming
  // `path` and "loop.<name>").
  absl::StatusOr<torch::Tensor> Loop(const std::string& path, const std::string& name,
                                     const std::vector<int64_t>& shape,
                                     torch::ScalarType dtype) const {
    SafetensorsContents contents;
    for (const auto& [key, tensor] : loop) contents.tensors["loop." + key] = tensor;
    return GetTensor(contents, path, "loop." + name, shape, dtype);
  }
};

// Writes weights, optimizer moments and state.loop to `path` atomically
// (WriteSafetensors), with config_sha256 in the metadata.
template <typename OptimizerState, typename Optimizer>
absl::Status SaveTrainState(const std::string& path, const std::string& config_sha256,
                            const std::map<std::string, torch::Tensor>& weights,
                            const std::string& weights_prefix, Optimizer& optimizer,
                            const std::string& optimizer_prefix, const TrainState& state) {
  TensorMap tensors;
  for (const auto& [name, tensor] : weights) tensors[weights_prefix + name] = tensor.detach();
  SaveAdamState<OptimizerState>(optimizer, weights, optimizer_prefix, &tensors);
  for (const auto& [name, tensor] : state.loop) tensors["loop." + name] = tensor;
  return WriteSafetensors(path, tensors, {{"config_sha256", config_sha256}});
}

// Reads `path`: FailedPrecondition (naming the file and `what`, e.g. "SAE")
// unless its config_sha256 equals `config_sha256`; copies every named
// weight in place (shape and dtype checked); installs the optimizer
// moments; returns the loop tensors. Errors from ReadSafetensors and
// GetTensor name the file and the tensor.
template <typename OptimizerState, typename Optimizer>
absl::StatusOr<TrainState> LoadTrainState(const std::string& path, const std::string& config_sha256,
                                          const std::string& what,
                                          const std::map<std::string, torch::Tensor>& weights,
                                          const std::string& weights_prefix, Optimizer* optimizer,
                                          const std::string& optimizer_prefix) {
  ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(path));
  auto hash = contents.metadata.find("config_sha256");
  if (hash == contents.metadata.end() || hash->second != config_sha256) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": checkpoint belongs to a different ",
                                                      what,
                                                      " config; delete it or use another run dir"));
  }
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, param] : weights) {
      ASSIGN_OR_RETURN(torch::Tensor saved, GetTensor(contents, path, weights_prefix + name,
                                                      param.sizes().vec(), param.scalar_type()));
      param.copy_(saved);
    }
  }
  RETURN_IF_ERROR(
      LoadAdamState<OptimizerState>(contents, path, weights, optimizer_prefix, optimizer));
  TrainState state;
  for (auto& [key, tensor] : contents.tensors) {
    if (key.rfind("loop.", 0) == 0) state.loop[key.substr(5)] = tensor;
  }
  return state;
}

}  // namespace saelab

#endif  // SAELAB_HARNESS_TRAIN_STATE_H_
