// The SAE trainer's view of an activation store: a seeded shuffling buffer
// whose every batch is a pure function of the step.
//
//   ASSIGN_OR_RETURN(ActivationStore store, ActivationStore::Open(dir, key));
//   StoreActivationSource source(store, seeds.Derive("data/train"));
//   ASSIGN_OR_RETURN(torch::Tensor x, source.TrainBatch(step, 4096));  // [4096, d]
#ifndef SAELAB_DATA_ACTIVATIONS_STORE_SOURCE_H_
#define SAELAB_DATA_ACTIVATIONS_STORE_SOURCE_H_

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "data/activations/activation_store.h"

namespace saelab {

// A seeded shuffling buffer over store rows [row_begin, row_end) (row_end
// -1: num_rows()).
//
// The stream: the range is cut into blocks (each store chunk's share of the
// range). Epoch e visits the blocks in an order seeded by (seed, e); taken
// `buffer_chunks` blocks at a time, each buffer's rows are shuffled by a
// permutation seeded by (seed, e, buffer index). The epoch's stream is the
// buffers in order, so every row appears exactly once per epoch; epochs
// follow each other. TrainBatch(step, B) is stream rows [step B, (step+1) B),
// crossing buffers and epochs as needed: a pure function of (store, seed,
// range, buffer_chunks, step, B). The buffer is a permutation of row
// indices, not a copy: a batch is gathered row by row straight from the
// mapped chunks (one copy, converted to float32), and a new buffer's chunks
// are prefetched into the page cache. The last buffer's permutation is
// cached, so sequential steps compute each one once.
// InitSample(n) is the first n rows of the epoch-0 stream (= TrainBatch(0, n)).
//
// Compared with SAELens' ActivationsStore mixing buffer: SAELens keeps a
// buffer of freshly generated activations, shuffles it, serves half and
// refills the other half from the model, so a row's position depends on
// the whole history of refills (and a resumed run sees a different stream).
// Here the store is fixed on disk, so shuffling is by block order plus an
// in-buffer permutation: rows from different parts of the corpus mix within
// a buffer (buffer_chunks chunks ~ buffer_chunks x contexts_per_chunk
// contexts), and any step's batch can be recomputed exactly.
class StoreActivationSource : public ActivationSource {
 public:
  StoreActivationSource(const ActivationStore& store, uint64_t seed, int64_t buffer_chunks = 8,
                        int64_t row_begin = 0, int64_t row_end = -1);

  int64_t d_in() const override { return store_.d() - d_target(); }
  // A paired store's (key.target_hook_name set) rows are [input | target],
  // halves of equal width.
  int64_t d_target() const override {
    return store_.key().target_hook_name().empty() ? 0 : store_.d() / 2;
  }
  // Rows in one epoch.
  int64_t epoch_rows() const { return row_end_ - row_begin_; }
  // InvalidArgument for step < 0, batch_size < 1 or an empty or invalid row range.
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override;
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override;

  // The store rows of stream positions [begin, end) (epoch e's position p is
  // e * epoch_rows() + p), [end - begin] int64: for tests and tools.
  absl::StatusOr<torch::Tensor> StreamRowIndices(int64_t begin, int64_t end);

 private:
  struct EpochPlan {
    int64_t epoch = -1;
    std::vector<std::vector<int>> buffers;  // block indices per buffer
    std::vector<int64_t> buffer_begins;     // epoch offsets, buffers.size() + 1
  };
  absl::Status CheckRange() const;
  const EpochPlan& Plan(int64_t epoch);
  // Store row index of every row of buffer b of `epoch`, in stream order
  // (cached for the last buffer asked for; prefetches a new buffer's rows).
  const std::vector<int64_t>& BufferRowIndices(int64_t epoch, int64_t b);
  // Calls fn(epoch, buffer, offset_in_buffer, count) over stream [begin, end).
  template <typename Fn>
  absl::Status ForEachPiece(int64_t begin, int64_t end, Fn&& fn);

  ActivationStore store_;
  uint64_t seed_;
  int64_t buffer_chunks_;
  int64_t row_begin_, row_end_;
  std::vector<std::pair<int64_t, int64_t>> blocks_;  // store row ranges
  EpochPlan plan_;
  int64_t cached_epoch_ = -1, cached_buffer_ = -1;
  std::vector<int64_t> cached_indices_;  // store rows of the cached buffer, shuffled
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_STORE_SOURCE_H_
