#include "data/activations/store_source.h"

#include <algorithm>
#include <vector>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "data/activations/internal/permutation.h"
#include "harness/seed.h"
#include "harness/status_macros.h"

namespace saelab {

StoreActivationSource::StoreActivationSource(const ActivationStore& store, uint64_t seed,
                                             int64_t buffer_chunks, int64_t row_begin,
                                             int64_t row_end)
    : store_(store),
      seed_(seed),
      buffer_chunks_(buffer_chunks),
      row_begin_(row_begin),
      row_end_(row_end < 0 ? store.num_rows() : row_end) {
  for (int64_t c = 0; c < store_.num_chunks(); ++c) {
    const int64_t b = std::max(row_begin_, store_.chunk_begin(c));
    const int64_t e = std::min(row_end_, store_.chunk_begin(c + 1));
    if (b < e) blocks_.emplace_back(b, e);
  }
}

absl::Status StoreActivationSource::CheckRange() const {
  if (row_begin_ < 0 || row_begin_ >= row_end_ || row_end_ > store_.num_rows() ||
      buffer_chunks_ < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("StoreActivationSource over ", store_.dir(), ": rows [", row_begin_, ", ",
                     row_end_, ") must be a non-empty range within [0, ", store_.num_rows(),
                     ") and buffer_chunks (", buffer_chunks_, ") >= 1"));
  }
  return absl::OkStatus();
}

const StoreActivationSource::EpochPlan& StoreActivationSource::Plan(int64_t epoch) {
  if (plan_.epoch == epoch) return plan_;
  plan_ = EpochPlan();
  plan_.epoch = epoch;
  const std::vector<int64_t> order = Permutation(
      static_cast<int64_t>(blocks_.size()), DeriveSeed(seed_, absl::StrCat("store/epoch/", epoch)));
  plan_.buffer_begins.push_back(0);
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(buffer_chunks_)) {
    std::vector<int> buffer;
    int64_t rows = 0;
    for (size_t j = i; j < std::min(order.size(), i + static_cast<size_t>(buffer_chunks_)); ++j) {
      buffer.push_back(static_cast<int>(order[j]));
      rows += blocks_[order[j]].second - blocks_[order[j]].first;
    }
    plan_.buffers.push_back(std::move(buffer));
    plan_.buffer_begins.push_back(plan_.buffer_begins.back() + rows);
  }
  return plan_;
}

const std::vector<int64_t>& StoreActivationSource::BufferRowIndices(int64_t epoch, int64_t b) {
  if (cached_epoch_ == epoch && cached_buffer_ == b) return cached_indices_;
  const EpochPlan& plan = Plan(epoch);
  std::vector<int64_t> rows;
  for (int block : plan.buffers[b]) {
    store_.Prefetch(blocks_[block].first, blocks_[block].second);
    for (int64_t r = blocks_[block].first; r < blocks_[block].second; ++r) rows.push_back(r);
  }
  const std::vector<int64_t> perm =
      Permutation(static_cast<int64_t>(rows.size()),
                  DeriveSeed(seed_, absl::StrCat("store/epoch/", epoch, "/buffer/", b)));
  cached_indices_.resize(rows.size());
  for (size_t i = 0; i < perm.size(); ++i) cached_indices_[i] = rows[perm[i]];
  cached_epoch_ = epoch;
  cached_buffer_ = b;
  return cached_indices_;
}

template <typename Fn>
absl::Status StoreActivationSource::ForEachPiece(int64_t begin, int64_t end, Fn&& fn) {
  const int64_t R = epoch_rows();
  int64_t pos = begin;
  while (pos < end) {
    const int64_t epoch = pos / R;
    const int64_t offset = pos % R;
    const EpochPlan& plan = Plan(epoch);
    const int64_t b =
        std::upper_bound(plan.buffer_begins.begin(), plan.buffer_begins.end(), offset) -
        plan.buffer_begins.begin() - 1;
    const int64_t in_buffer = offset - plan.buffer_begins[b];
    const int64_t n = std::min(end - pos, plan.buffer_begins[b + 1] - offset);
    RETURN_IF_ERROR(fn(epoch, b, in_buffer, n));
    pos += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> StoreActivationSource::TrainBatch(int64_t step, int64_t batch_size) {
  RETURN_IF_ERROR(CheckRange());
  if (step < 0 || batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainBatch: step must be >= 0 and batch_size >= 1, got ", step, ", ", batch_size));
  }
  torch::Tensor out = torch::empty({batch_size, store_.d()}, torch::kFloat);
  int64_t filled = 0;
  RETURN_IF_ERROR(
      ForEachPiece(step * batch_size, (step + 1) * batch_size,
                   [&](int64_t epoch, int64_t b, int64_t in_buffer, int64_t n) -> absl::Status {
                     const std::vector<int64_t>& rows = BufferRowIndices(epoch, b);
                     float* dst = out.data_ptr<float>() + filled * store_.d();
                     for (int64_t i = 0; i < n; ++i) {
                       store_.CopyRow(rows[in_buffer + i], dst + i * store_.d());
                     }
                     filled += n;
                     return absl::OkStatus();
                   }));
  return out;
}

absl::StatusOr<torch::Tensor> StoreActivationSource::InitSample(int64_t tokens) {
  return TrainBatch(0, tokens);
}

absl::StatusOr<torch::Tensor> StoreActivationSource::StreamRowIndices(int64_t begin, int64_t end) {
  RETURN_IF_ERROR(CheckRange());
  std::vector<torch::Tensor> pieces;
  RETURN_IF_ERROR(
      ForEachPiece(begin, end, [&](int64_t epoch, int64_t b, int64_t in_buffer, int64_t n) {
        const std::vector<int64_t>& rows = BufferRowIndices(epoch, b);
        pieces.push_back(torch::tensor(
            std::vector<int64_t>(rows.begin() + in_buffer, rows.begin() + in_buffer + n),
            torch::kLong));
        return absl::OkStatus();
      }));
  if (pieces.empty()) return torch::empty({0}, torch::kLong);
  return torch::cat(pieces);
}

}  // namespace saelab
