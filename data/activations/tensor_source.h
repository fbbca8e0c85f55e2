// Activations already in memory (or memory-mapped: a .npy file's rows from
// harness/npy.h) as a training source: each epoch visits every row of
// [row_begin, row_end) once, in a seeded order of its own, and a batch is a
// pure function of (seed, step, batch size), so training on it resumes
// bit-identically like training on an activation store.
//
//   ASSIGN_OR_RETURN(NpyArray acts, OpenNpy("acts.npy"));
//   TensorActivationSource train(acts.Rows(), /*seed=*/0, 0, acts.rows() - 4096);
//   ASSIGN_OR_RETURN(torch::Tensor x, train.TrainBatch(step, 4096));  // [4096, d] float32
#ifndef SAELAB_DATA_ACTIVATIONS_TENSOR_SOURCE_H_
#define SAELAB_DATA_ACTIVATIONS_TENSOR_SOURCE_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"

namespace saelab {

class TensorActivationSource : public ActivationSource {
 public:
  // `rows`: [N, d] float32 or float16 on the CPU (kept, not copied). The
  // range [row_begin, row_end) (row_end -1: N) is what training sees; an
  // invalid range or tensor is reported by every call. d_target > 0 makes
  // it a paired source (for transcoders): each row is [input | target],
  // the last d_target columns the target.
  TensorActivationSource(torch::Tensor rows, uint64_t seed, int64_t row_begin = 0,
                         int64_t row_end = -1, int64_t d_target = 0);

  int64_t d_in() const override { return rows_.dim() == 2 ? rows_.size(1) - d_target_ : 0; }
  int64_t d_target() const override { return d_target_; }
  int64_t epoch_rows() const { return row_end_ - row_begin_; }
  // [batch_size, d] float32: stream positions [step * batch_size, (step + 1)
  // * batch_size), where position p is row order(p / epoch_rows())[p %
  // epoch_rows()]. InvalidArgument for step < 0 or batch_size < 1.
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override;
  // The first `tokens` positions of the stream (TrainBatch(0, tokens)).
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override;

 private:
  absl::Status Check() const;
  const std::vector<int64_t>& Order(int64_t epoch);

  torch::Tensor rows_;
  uint64_t seed_;
  int64_t row_begin_, row_end_;
  int64_t d_target_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;  // rows of cached_epoch_, shuffled
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_TENSOR_SOURCE_H_
