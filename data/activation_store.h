// The activation store: a hook point's activations over a range of packed
// contexts, harvested once with the subject model, written as memory-mapped,
// checksummed chunks, and served shuffled to the SAE trainer.
//
//   ActivationStoreKey key;
//   key.model_sha256 = model_hash;                 // sha256 of model.safetensors
//   key.hook_name = "blocks.6.hook_resid_post";
//   key.shard_sha256 = shard.sha256();
//   key.context_begin = 0;
//   key.context_end = contexts.size(0);
//   key.context_length = contexts.size(1);
//   ASSIGN_OR_RETURN(ActivationStore store, HarvestActivations(model, contexts, key, dir));
//   // Later runs, or another process:
//   ASSIGN_OR_RETURN(ActivationStore store, ActivationStore::Open(dir, key));
//   StoreActivationSource source(store, seeds.Derive("data/train"));
//   ASSIGN_OR_RETURN(torch::Tensor x, source.TrainBatch(step, 4096));  // [4096, d]
//
// Directory layout:
//   <dir>/manifest           JSON: "key" (every ActivationStoreKey field),
//                            "key_sha256", "d", "contexts_per_chunk",
//                            "rows_per_context", "num_rows", "chunks" (file,
//                            rows, sha256 each), "complete", and, once
//                            complete, "stats" {"mean": [d], "mean_norm"}.
//   <dir>/chunk-00000.bin    512-byte header, then rows x d values (row-major,
//   <dir>/chunk-00001.bin    little-endian, the key's dtype). Header: magic
//   ...                      "SAELACTS", version u32 @8, dtype u32 @12 (0 f32,
//                            1 f16, 2 bf16), chunk index i64 @16, rows i64
//                            @24, d i64 @32, key sha256 (hex) @40, payload
//                            sha256 (hex) @104, zeros, header sha256 (hex, of
//                            bytes [0, 448)) @448.
// Chunk c holds contexts [begin + c * contexts_per_chunk, ...) of the key's
// range, context by context, each context's positions in order (position 0
// left out when drop_bos). So store row r is context begin + r / P, position
// r % P (+ 1 when drop_bos), with P = context_length - drop_bos.
// Every file is written atomically; the manifest is rewritten after each
// chunk, so a killed harvest resumes where it stopped.
#ifndef SAELAB_DATA_ACTIVATION_STORE_H_
#define SAELAB_DATA_ACTIVATION_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/activation_source.h"
#include "eval/gpt2_model.h"

namespace saelab {

// One mapped, header-validated chunk file (defined in activation_store.cc).
struct ActivationChunk;

// How activations are stored on disk; Rows() always returns float32.
enum class StoreDtype { kFloat32, kFloat16, kBFloat16 };

// "float32", "float16", "bfloat16".
const char* StoreDtypeName(StoreDtype dtype);

// Everything a store's contents depend on. Two stores with equal keys hold
// the same activations.
struct ActivationStoreKey {
  std::string model_sha256;  // caller-computed (sha256 of model.safetensors)
  std::string hook_name;     // e.g. "blocks.1.hook_resid_post"
  std::string shard_sha256;  // TokenShard::sha256() of the shard the contexts come from
  int64_t context_begin = 0, context_end = 0;  // the range of packed contexts harvested
  int64_t context_length = 0;
  StoreDtype dtype = StoreDtype::kFloat32;
  bool drop_bos = true;  // drop position 0 (BOS has outlier norms)

  // Activation rows per context: context_length - drop_bos.
  int64_t rows_per_context() const { return context_length - (drop_bos ? 1 : 0); }
  // Lowercase hex sha256 of a canonical text of every field.
  std::string Sha256() const;
};

struct HarvestOptions {
  // Contexts per chunk file (the last chunk may hold fewer).
  int64_t contexts_per_chunk = 256;
  // Contexts per forward pass.
  int64_t batch_contexts = 32;
  // Simulates a kill, for tests: after writing this many new chunks,
  // HarvestActivations returns Aborted. -1: run to the end.
  int64_t stop_after_chunks = -1;
  // Shown in the progress line ("harvest <label>").
  std::string label;
};

// A complete, validated store, its chunk files memory-mapped read-only.
// Cheap to copy (copies share the mappings); const methods are thread-safe.
class ActivationStore {
 public:
  // Opens the complete store in `dir`. Refuses with a clear error naming the
  // directory or chunk file and the field: NotFound for a missing manifest;
  // FailedPrecondition when the manifest is not complete, or when its key
  // differs from `expected` (names the field and both values); DataLoss for
  // a malformed manifest or chunk header, a truncated chunk ("truncated"),
  // or, with verify_checksums, a chunk whose sha256 differs from its header
  // or the manifest ("checksum"). Without verify_checksums the payloads are
  // not read (opening is then O(number of chunks)).
  static absl::StatusOr<ActivationStore> Open(const std::string& dir,
                                              const ActivationStoreKey& expected,
                                              bool verify_checksums = true);

  const std::string& dir() const { return dir_; }
  const ActivationStoreKey& key() const { return key_; }
  int64_t num_rows() const { return num_rows_; }
  int64_t d() const { return d_; }
  int64_t num_chunks() const { return static_cast<int64_t>(chunks_.size()); }
  // First store row of chunk c, 0 <= c <= num_chunks(); chunk_begin(num_chunks()) == num_rows().
  int64_t chunk_begin(int64_t c) const { return chunk_begins_[c]; }
  // The chunk files, in order (for benchmarks and tools that read them raw).
  std::vector<std::string> ChunkPaths() const;

  // Per-dimension mean of all rows, [d] float32 (computed in float64).
  torch::Tensor mean() const { return mean_; }
  // Mean L2 norm of the rows (computed in float64).
  double mean_norm() const { return mean_norm_; }

  // Rows [begin, end) in store order as float32 [end - begin, d], converted
  // from the stored dtype; a fresh tensor. InvalidArgument unless
  // 0 <= begin <= end <= num_rows().
  absl::StatusOr<torch::Tensor> Rows(int64_t begin, int64_t end) const;

  // Copies row r (0 <= r < num_rows(), not checked) as float32 into dst[0, d).
  void CopyRow(int64_t r, float* dst) const;

  // Asks the OS to read rows [begin, end) into the page cache ahead of use
  // (madvise WILLNEED; a hint, no error). Clamped to the store.
  void Prefetch(int64_t begin, int64_t end) const;

 private:
  ActivationStore() = default;

  std::string dir_;
  ActivationStoreKey key_;
  int64_t num_rows_ = 0;
  int64_t d_ = 0;
  std::vector<std::shared_ptr<const ActivationChunk>> chunks_;
  std::vector<int64_t> chunk_begins_;  // num_chunks + 1
  torch::Tensor mean_;
  double mean_norm_ = 0;
};

// `tokens` [contexts, L] int64 run to `hook`; the activations as rows
// [contexts * P, d] float32, context by context, P = L - drop_bos (position
// 0 left out when drop_bos). The row layout of a store and of both sources.
// Errors as Gpt2Model::RunWithCache (e.g. an unknown hook name).
absl::StatusOr<torch::Tensor> HookRows(const Gpt2Model& model, const torch::Tensor& tokens,
                                       const std::string& hook, bool drop_bos);

// Harvests key.hook_name's activations over contexts[key.context_begin,
// key.context_end) into `dir` (created if needed) and returns the opened
// store. contexts: [N, context_length] int64, the packed contexts (e.g.
// PackContexts of the shard whose sha256 is key.shard_sha256).
//
// Resumable and idempotent: chunk files already in `dir` that validate
// (header, key hash, index, size and checksum) are kept, the rest are
// computed, so a rerun after a kill produces exactly the files an
// uninterrupted harvest would, byte for byte (given the same batch_contexts
// and thread count, the forward passes are the same computations). A
// complete store with this key is returned as it is. Shows progress in
// tokens/s on stderr.
//
// Errors: InvalidArgument for a bad range, context_length != contexts.size(1),
// options < 1, or an unknown hook name; FailedPrecondition, naming the
// directory and the field with both values, if `dir` holds a manifest with a
// different key or contexts_per_chunk (refuses to overwrite another store);
// DataLoss naming the manifest if an existing one cannot be read (remove the
// directory to start over); Aborted after options.stop_after_chunks new
// chunks; I/O errors name the file.
absl::StatusOr<ActivationStore> HarvestActivations(const Gpt2Model& model,
                                                   const torch::Tensor& contexts,
                                                   const ActivationStoreKey& key,
                                                   const std::string& dir,
                                                   const HarvestOptions& options = {});

// The SAE trainer's view of a store: a seeded shuffling buffer over store
// rows [row_begin, row_end) (row_end -1: num_rows()).
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

  int64_t d_in() const override { return store_.d(); }
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

// Activations straight from the model, no store. The stream: epoch e visits
// the contexts in an order seeded by (seed, e) (the same order for every
// batch size), each context's positions in order (position 0 left out when
// drop_bos). TrainBatch(step, B) is stream rows [step B, (step+1) B), the
// contexts it needs run through the model on the fly: a pure function of
// (model, contexts, hook, drop_bos, seed, step, B). Over an epoch it yields
// the rows of a float32 store harvested from the same contexts as a set, up
// to float rounding (the forward batches differ); the order differs, and
// rows within a batch come from few contexts, since there is no shuffling
// buffer. InitSample(n) = TrainBatch(0, n).
class ModelActivationSource : public ActivationSource {
 public:
  // contexts: [N, context_length] int64. Errors (bad hook name, N = 0)
  // surface from TrainBatch.
  ModelActivationSource(const Gpt2Model& model, torch::Tensor contexts, std::string hook_name,
                        bool drop_bos, uint64_t seed, int64_t batch_contexts = 32);

  int64_t d_in() const override { return model_.config().n_embd; }
  int64_t epoch_rows() const { return contexts_.size(0) * rows_per_context_; }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override;
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override;

 private:
  const std::vector<int64_t>& Order(int64_t epoch);

  Gpt2Model model_;
  torch::Tensor contexts_;
  std::string hook_name_;
  bool drop_bos_;
  uint64_t seed_;
  int64_t batch_contexts_;
  int64_t rows_per_context_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATION_STORE_H_
