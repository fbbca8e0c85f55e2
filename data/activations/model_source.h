// Activations straight from the subject model, no store: the training
// stream when harvesting once is not worth it (small runs, or a one-off
// hook point).
//
//   ASSIGN_OR_RETURN(HookLocation location, ParseHookName(hook_name, model.config().n_layer));
//   ModelActivationSource source(model, contexts, location, /*drop_bos=*/true, seed);
//   ASSIGN_OR_RETURN(torch::Tensor x, source.TrainBatch(step, 4096));  // [4096, n_embd]
#ifndef SAELAB_DATA_ACTIVATIONS_MODEL_SOURCE_H_
#define SAELAB_DATA_ACTIVATIONS_MODEL_SOURCE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"

namespace saelab {

// The stream: epoch e visits the contexts in an order seeded by (seed, e)
// (the same order for every batch size), each context's positions in order
// (position 0 left out when drop_bos). TrainBatch(step, B) is stream rows
// [step B, (step+1) B), the contexts it needs run through the model on the
// fly (data/activations/hook_rows.h): a pure function of (model, contexts,
// location, drop_bos, seed, step, B). Over an epoch it yields the rows of a
// float32 store harvested from the same contexts as a set, up to float
// rounding (the forward batches differ); the order differs, and rows within
// a batch come from few contexts, since there is no shuffling buffer.
// InitSample(n) = TrainBatch(0, n).
class ModelActivationSource : public ActivationSource {
 public:
  // contexts: [N, context_length] int64; location: the hook point, parsed
  // by the caller. With `target` set it is a paired source for a
  // transcoder: rows [activation at location | activation at target], both
  // from one forward pass. Errors (N = 0, a location outside the model)
  // surface from TrainBatch.
  ModelActivationSource(const Gpt2Model& model, torch::Tensor contexts, HookLocation location,
                        bool drop_bos, uint64_t seed, int64_t batch_contexts = 32,
                        std::optional<HookLocation> target = std::nullopt);

  int64_t d_in() const override { return model_.config().n_embd; }
  int64_t d_target() const override { return target_ ? model_.config().n_embd : 0; }
  int64_t epoch_rows() const { return contexts_.size(0) * rows_per_context_; }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override;
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override;

 private:
  const std::vector<int64_t>& Order(int64_t epoch);

  Gpt2Model model_;
  torch::Tensor contexts_;
  HookLocation location_;
  std::optional<HookLocation> target_;
  bool drop_bos_;
  uint64_t seed_;
  int64_t batch_contexts_;
  int64_t rows_per_context_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_MODEL_SOURCE_H_
