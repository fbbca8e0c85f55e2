#include "data/activations/hook_rows.h"

#include <algorithm>
#include <string>
#include <vector>

#include <torch/types.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"

namespace saelab {

absl::StatusOr<torch::Tensor> HookActivationRows(const Gpt2Model& model,
                                                 const torch::Tensor& contexts,
                                                 HookLocation location, bool drop_bos,
                                                 int64_t batch_contexts,
                                                 const std::function<void(int64_t)>& on_batch) {
  return HookActivationRows(model, contexts, std::vector<HookLocation>{location}, drop_bos,
                            batch_contexts, on_batch);
}

absl::StatusOr<torch::Tensor> HookActivationRows(const Gpt2Model& model,
                                                 const torch::Tensor& contexts,
                                                 const std::vector<HookLocation>& locations,
                                                 bool drop_bos, int64_t batch_contexts,
                                                 const std::function<void(int64_t)>& on_batch) {
  if (locations.empty()) {
    return absl::InvalidArgumentError("HookActivationRows: no hook locations");
  }
  if (!contexts.defined() || contexts.dim() != 2 || contexts.size(0) < 1 ||
      contexts.size(1) - (drop_bos ? 1 : 0) < 1 || batch_contexts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HookActivationRows: contexts must be [N >= 1, context_length >= ", drop_bos ? 2 : 1,
        "] and batch_contexts (", batch_contexts, ") >= 1"));
  }
  std::vector<std::string> names;
  for (const HookLocation& location : locations) {
    RETURN_IF_ERROR(CheckHookLocation(location, model.config().n_layer));
    names.push_back(HookName(location));
  }
  torch::NoGradGuard no_grad;
  const int64_t n = contexts.size(0);
  std::vector<torch::Tensor> pieces;
  for (int64_t begin = 0; begin < n; begin += batch_contexts) {
    const int64_t end = std::min(n, begin + batch_contexts);
    // One forward as far as the last location; a location listed twice is
    // captured once and its columns appear twice.
    ASSIGN_OR_RETURN(auto cache, model.RunWithCache(contexts.slice(0, begin, end), names));
    std::vector<torch::Tensor> columns;
    for (const std::string& name : names) {
      torch::Tensor activation = cache.at(name);
      if (drop_bos) activation = activation.slice(1, 1);
      columns.push_back(activation.reshape({-1, activation.size(2)}));
    }
    pieces.push_back(columns.size() == 1 ? columns[0] : torch::cat(columns, 1));
    if (on_batch) on_batch(end);
  }
  return pieces.size() == 1 ? pieces[0].contiguous() : torch::cat(pieces);
}

}  // namespace saelab
