// One resumable train-state file for every trainer (the SAE trainer and the
// LM trainer): a safetensors file holding the model's named tensors under
// "<weights_prefix><name>", the Adam/AdamW moments under
// "<optimizer_prefix><name>.exp_avg|.exp_avg_sq|.step", the trainer's own
// loop tensors under "loop.<name>" (next step, counters, curves), and in the
// header metadata the sha256 of the config it belongs to and the compute
// settings it ran under, so a resumed run continues bit for bit and a
// checkpoint of another config, or one resumed under other settings, is
// refused.
//
//   TrainState state;
//   state.loop["next_step"] = torch::tensor(step, torch::kInt64);
//   RETURN_IF_ERROR(SaveTrainState<torch::optim::AdamParamState>(
//       path, config_sha256, sae.NamedTensors(), "sae.", adam, "adam.", state));
//   ...
//   ASSIGN_OR_RETURN(std::optional<TrainState> state,
//                    ResumeTrainState<torch::optim::AdamParamState>(
//                        path, config_sha256, "SAE", total_steps, sae.NamedTensors(), "sae.",
//                        &adam, "adam."));
//   if (state) { ... state->Loop("next_step", {}, torch::kInt64) ... }
//
// Crash safety: SaveTrainState keeps the checkpoint it replaces as
// PreviousTrainStatePath(path) until the new one is complete (renamed, then
// the new file written atomically), so a kill at any moment leaves an intact
// checkpoint, and a corrupted latest one (a bad disk block) has a fallback.
#ifndef SAELAB_HARNESS_TRAIN_STATE_H_
#define SAELAB_HARNESS_TRAIN_STATE_H_

#include <torch/optim/adam.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "harness/file_io.h"
#include "harness/optimizer_state.h"
#include "harness/safetensors.h"
#include "harness/status_macros.h"

namespace saelab {

// The trainer-specific part of a train state: "loop.<name>" tensors.
struct TrainState {
  // The file they were read from (for errors); empty for a state being saved.
  std::string path;
  TensorMap loop;

  // loop[name] checked against shape and dtype (GetTensor's errors, naming
  // the file and "loop.<name>").
  absl::StatusOr<torch::Tensor> Loop(const std::string& name, const std::vector<int64_t>& shape,
                                     torch::ScalarType dtype) const {
    SafetensorsContents contents;
    for (const auto& [key, tensor] : loop) contents.tensors["loop." + key] = tensor;
    return GetTensor(contents, path, "loop." + name, shape, dtype);
  }
};

// The process settings that decide a CPU run's bits beyond its config:
// LibTorch's intra-op thread count (reductions split by thread) and the
// OpenBLAS kernel (OPENBLAS_CORETYPE; see harness/runtime_env.h), e.g.
// "torch_threads=2 openblas_coretype=Haswell". Recorded in every train
// state; a resume under other settings would produce an SAE matching
// neither an uninterrupted run under the old settings nor one under the new.
std::string ComputeSettings();

// Where SaveTrainState keeps the checkpoint it replaces:
// ".../train_state.safetensors" -> ".../train_state.previous.safetensors".
std::string PreviousTrainStatePath(const std::string& path);

// Process-wide, like the thread count: whether ResumeTrainState sets a
// corrupted train state aside (renamed to "<path>.corrupt", never deleted)
// and falls back to the previous checkpoint, or to the start, instead of
// failing. Off by default; the binaries' --recover_train_state turns it on.
void SetRecoverCorruptTrainState(bool recover);
bool RecoverCorruptTrainState();

namespace train_state_internal {
// Renames `from` to `to` (replacing it); errors name both.
absl::Status Rename(const std::string& from, const std::string& to);
// Logs the recovery step taken for a corrupted train state.
void LogRecovery(const std::string& message);
}  // namespace train_state_internal

// Writes weights, optimizer moments and state.loop to `path` atomically
// (WriteSafetensors: with a data checksum), with config_sha256 and
// ComputeSettings() in the metadata, after moving the checkpoint it replaces
// to PreviousTrainStatePath(path).
template <typename OptimizerState, typename Optimizer>
absl::Status SaveTrainState(const std::string& path, const std::string& config_sha256,
                            const std::map<std::string, torch::Tensor>& weights,
                            const std::string& weights_prefix, Optimizer& optimizer,
                            const std::string& optimizer_prefix, const TrainState& state) {
  TensorMap tensors;
  for (const auto& [name, tensor] : weights) tensors[weights_prefix + name] = tensor.detach();
  SaveAdamState<OptimizerState>(optimizer, weights, optimizer_prefix, &tensors);
  for (const auto& [name, tensor] : state.loop) tensors["loop." + name] = tensor;
  ASSIGN_OR_RETURN(std::string bytes,
                   SerializeSafetensors(tensors, {{"config_sha256", config_sha256},
                                                  {"compute_settings", ComputeSettings()}}));
  if (std::FILE* existing = std::fopen(path.c_str(), "rb")) {
    std::fclose(existing);
    RETURN_IF_ERROR(train_state_internal::Rename(path, PreviousTrainStatePath(path)));
  }
  return AtomicWriteFile(path, bytes);
}

// Reads `path` and, only once everything is checked, installs it: the data
// checksum (DataLoss if missing or wrong: corrupted, truncated, or not
// written by SaveTrainState), the config hash (FailedPrecondition naming the
// file and `what`, e.g. "SAE", unless it equals `config_sha256`), the
// compute settings (FailedPrecondition unless they equal ComputeSettings(),
// saying which to restore), loop.next_step in [0, total_steps] (DataLoss),
// then copies every named weight in place (shape and dtype checked),
// installs the optimizer moments and returns the loop tensors.
template <typename OptimizerState, typename Optimizer>
absl::StatusOr<TrainState> LoadTrainState(const std::string& path, const std::string& config_sha256,
                                          const std::string& what, int64_t total_steps,
                                          const std::map<std::string, torch::Tensor>& weights,
                                          const std::string& weights_prefix, Optimizer* optimizer,
                                          const std::string& optimizer_prefix) {
  ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(path));
  RETURN_IF_ERROR(RequireDataChecksum(contents, path, "train state"));
  auto hash = contents.metadata.find("config_sha256");
  if (hash == contents.metadata.end() || hash->second != config_sha256) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": checkpoint belongs to a different ",
                                                      what,
                                                      " config; delete it or use another run dir"));
  }
  auto settings = contents.metadata.find("compute_settings");
  const std::string now = ComputeSettings();
  if (settings == contents.metadata.end() || settings->second != now) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": this ", what, " run was trained under '",
        settings == contents.metadata.end() ? "(not recorded)" : settings->second,
        "' and would resume under '", now,
        "'; the result would match neither setting's uninterrupted run. Resume with the "
        "recorded settings (--threads=N; OPENBLAS_CORETYPE as recorded), or use another run "
        "dir to start over"));
  }
  ASSIGN_OR_RETURN(torch::Tensor next, GetTensor(contents, path, "loop.next_step", {}, torch::kInt64));
  const int64_t next_step = next.item<int64_t>();
  if (next_step < 0 || next_step > total_steps) {
    return absl::DataLossError(absl::StrCat(path, ": loop.next_step is ", next_step,
                                            ", outside 0..", total_steps,
                                            " (the run's steps); the train state is corrupt"));
  }
  std::map<std::string, torch::Tensor> saved_weights;
  for (const auto& [name, param] : weights) {
    ASSIGN_OR_RETURN(saved_weights[name], GetTensor(contents, path, weights_prefix + name,
                                                    param.sizes().vec(), param.scalar_type()));
  }
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, param] : weights) param.copy_(saved_weights.at(name));
  }
  RETURN_IF_ERROR(
      LoadAdamState<OptimizerState>(contents, path, weights, optimizer_prefix, optimizer));
  TrainState state;
  state.path = path;
  for (auto& [key, tensor] : contents.tensors) {
    if (key.rfind("loop.", 0) == 0) state.loop[key.substr(5)] = tensor;
  }
  return state;
}

// Resumes from `path`, or from PreviousTrainStatePath(path) when `path` is
// missing (a kill between the two steps of SaveTrainState); nullopt when
// neither exists (start from scratch). A corrupted checkpoint (DataLoss) is
// an error naming it and the way out, unless RecoverCorruptTrainState():
// then it is set aside as "<file>.corrupt" and the previous checkpoint, or
// the start, is used. Other errors (another config, other settings) are
// returned as they are. Arguments as for LoadTrainState.
template <typename OptimizerState, typename Optimizer>
absl::StatusOr<std::optional<TrainState>> ResumeTrainState(
    const std::string& path, const std::string& config_sha256, const std::string& what,
    int64_t total_steps, const std::map<std::string, torch::Tensor>& weights,
    const std::string& weights_prefix, Optimizer* optimizer, const std::string& optimizer_prefix) {
  for (const std::string& candidate : {path, PreviousTrainStatePath(path)}) {
    if (std::FILE* f = std::fopen(candidate.c_str(), "rb")) {
      std::fclose(f);
    } else {
      continue;
    }
    absl::StatusOr<TrainState> state = LoadTrainState<OptimizerState>(
        candidate, config_sha256, what, total_steps, weights, weights_prefix, optimizer,
        optimizer_prefix);
    if (state.ok()) {
      if (candidate != path) {
        train_state_internal::LogRecovery(
            absl::StrCat("resuming from the previous checkpoint ", candidate));
      }
      return std::optional<TrainState>(*std::move(state));
    }
    if (!absl::IsDataLoss(state.status())) return state.status();
    if (!RecoverCorruptTrainState()) {
      return absl::DataLossError(absl::StrCat(
          state.status().message(),
          ". Rerun with --recover_train_state to set it aside (kept as ", candidate,
          ".corrupt) and resume from the previous checkpoint if one is intact, else from the "
          "start"));
    }
    RETURN_IF_ERROR(train_state_internal::Rename(candidate, candidate + ".corrupt"));
    train_state_internal::LogRecovery(absl::StrCat(state.status().message(), "; set aside as ",
                                                   candidate, ".corrupt"));
  }
  return std::optional<TrainState>();
}

// Removes the train state and the previous checkpoint (once the final
// result supersedes them).
void RemoveTrainState(const std::string& path);

}  // namespace saelab

#endif  // SAELAB_HARNESS_TRAIN_STATE_H_
