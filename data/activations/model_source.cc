#include "data/activations/model_source.h"

#include <algorithm>
#include <utility>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "data/activations/hook_rows.h"
#include "data/activations/internal/permutation.h"
#include "harness/seed.h"
#include "harness/status_macros.h"

namespace saelab {

ModelActivationSource::ModelActivationSource(const Gpt2Model& model, torch::Tensor contexts,
                                             HookLocation location, bool drop_bos, uint64_t seed,
                                             int64_t batch_contexts,
                                             std::optional<HookLocation> target)
    : model_(model),
      contexts_(contexts.to(torch::kLong).contiguous()),
      location_(location),
      target_(target),
      drop_bos_(drop_bos),
      seed_(seed),
      batch_contexts_(std::max<int64_t>(1, batch_contexts)),
      rows_per_context_(contexts_.dim() == 2 ? contexts_.size(1) - (drop_bos ? 1 : 0) : 0) {}

const std::vector<int64_t>& ModelActivationSource::Order(int64_t epoch) {
  if (order_epoch_ != epoch) {
    order_ = Permutation(contexts_.size(0), DeriveSeed(seed_, absl::StrCat("model/epoch/", epoch)));
    order_epoch_ = epoch;
  }
  return order_;
}

absl::StatusOr<torch::Tensor> ModelActivationSource::TrainBatch(int64_t step, int64_t batch_size) {
  if (contexts_.dim() != 2 || contexts_.size(0) == 0 || rows_per_context_ < 1) {
    return absl::InvalidArgumentError(
        "ModelActivationSource: contexts must be [N >= 1, context_length >= 2]");
  }
  if (step < 0 || batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainBatch: step must be >= 0 and batch_size >= 1, got ", step, ", ", batch_size));
  }
  const int64_t P = rows_per_context_, N = contexts_.size(0);
  const int64_t begin = step * batch_size, end = begin + batch_size;
  // Stream context index k = epoch * N + i covers rows [k P, (k + 1) P).
  const int64_t first = begin / P, last = (end - 1) / P;  // inclusive
  std::vector<int64_t> ids;
  for (int64_t k = first; k <= last; ++k) ids.push_back(Order(k / N)[k % N]);
  const torch::Tensor tokens = contexts_.index_select(0, torch::tensor(ids, torch::kLong));
  std::vector<HookLocation> locations = {location_};
  if (target_) locations.push_back(*target_);
  ASSIGN_OR_RETURN(torch::Tensor rows,
                   HookActivationRows(model_, tokens, locations, drop_bos_, batch_contexts_));
  return rows.slice(0, begin - first * P, end - first * P).clone();
}

absl::StatusOr<torch::Tensor> ModelActivationSource::InitSample(int64_t tokens) {
  return TrainBatch(0, tokens);
}

}  // namespace saelab
