#include "data/activations/tensor_source.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "data/activations/internal/permutation.h"
#include "harness/seed.h"
#include "harness/status_macros.h"

namespace saelab {

TensorActivationSource::TensorActivationSource(torch::Tensor rows, uint64_t seed,
                                               int64_t row_begin, int64_t row_end,
                                               int64_t d_target)
    : rows_(std::move(rows)),
      seed_(seed),
      row_begin_(row_begin),
      row_end_(row_end < 0 && rows_.defined() && rows_.dim() == 2 ? rows_.size(0) : row_end),
      d_target_(d_target) {}

absl::Status TensorActivationSource::Check() const {
  if (!rows_.defined() || rows_.dim() != 2 || !rows_.device().is_cpu() ||
      (rows_.scalar_type() != torch::kFloat && rows_.scalar_type() != torch::kHalf)) {
    return absl::InvalidArgumentError(
        "activation rows must be a [N, d] float32 or float16 CPU tensor");
  }
  if (d_target_ < 0 || d_target_ >= rows_.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat("paired rows of width ", rows_.size(1),
                                                   " cannot hold a target of width ", d_target_,
                                                   " and an input of width >= 1"));
  }
  if (row_begin_ < 0 || row_end_ <= row_begin_ || row_end_ > rows_.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("row range [", row_begin_, ", ", row_end_,
                                                   ") is empty or outside the ",
                                                   rows_.size(0), " rows"));
  }
  return absl::OkStatus();
}

const std::vector<int64_t>& TensorActivationSource::Order(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_order_ = Permutation(epoch_rows(), DeriveSeed(seed_, absl::StrCat("tensor/epoch/", epoch)));
    for (int64_t& row : cached_order_) row += row_begin_;
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

absl::StatusOr<torch::Tensor> TensorActivationSource::TrainBatch(int64_t step,
                                                                 int64_t batch_size) {
  RETURN_IF_ERROR(Check());
  if (step < 0 || batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TrainBatch: step ", step, " and batch size ", batch_size, " (need >= 0, >= 1)"));
  }
  std::vector<int64_t> indices;
  indices.reserve(batch_size);
  for (int64_t p = step * batch_size; p < (step + 1) * batch_size; ++p) {
    indices.push_back(Order(p / epoch_rows())[p % epoch_rows()]);
  }
  return rows_.index_select(0, torch::tensor(indices, torch::kLong)).to(torch::kFloat).contiguous();
}

absl::StatusOr<torch::Tensor> TensorActivationSource::InitSample(int64_t tokens) {
  return TrainBatch(0, tokens);
}

}  // namespace saelab
