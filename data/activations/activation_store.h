// The activation store: a hook point's activations over a range of packed
// contexts, harvested once with the subject model (data/activations/harvest.h),
// kept as memory-mapped, checksummed chunks (data/activations/store_format.h),
// and served shuffled to the SAE trainer (data/activations/store_source.h).
//
//   ActivationStoreKey key;                        // activation_store.proto
//   key.set_model_sha256(model_hash);              // sha256 of model.safetensors
//   key.set_hook_name("blocks.6.hook_resid_post");
//   key.set_shard_sha256(shard.sha256());
//   key.set_context_end(contexts.size(0));
//   key.set_context_length(contexts.size(1));
//   key.set_drop_bos(true);
//   ASSIGN_OR_RETURN(ActivationStore store, HarvestActivations(model, contexts, key, dir));
//   // Later runs, or another process:
//   ASSIGN_OR_RETURN(ActivationStore store, ActivationStore::Open(dir, key));
//   ASSIGN_OR_RETURN(torch::Tensor rows, store.Rows(0, 4096));  // [4096, d] float32
#ifndef SAELAB_DATA_ACTIVATIONS_ACTIVATION_STORE_H_
#define SAELAB_DATA_ACTIVATIONS_ACTIVATION_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "data/activations/activation_store.pb.h"
#include "harness/sealed_file.h"

namespace saelab {

// A complete, validated store, its chunk files memory-mapped read-only.
// Cheap to copy (copies share the mappings); const methods are thread-safe.
class ActivationStore {
 public:
  // Opens the complete store in `dir`. Refuses with a clear error naming the
  // directory or chunk file and the field: NotFound for a missing manifest;
  // FailedPrecondition when the manifest is not complete ("incomplete"), or
  // when its key differs from `expected` ("key field hook_name is ... there,
  // ... wanted"); DataLoss for a malformed manifest or chunk header, a
  // truncated chunk ("truncated"), or, with verify_checksums, a chunk whose
  // sha256 differs from its header or the manifest ("checksum"). Without
  // verify_checksums the payloads are not read (opening is then O(number of
  // chunks)).
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
  // The chunk holding row r, 0 <= r < num_rows().
  int64_t ChunkOf(int64_t r) const;

  std::string dir_;
  ActivationStoreKey key_;
  int64_t num_rows_ = 0;
  int64_t d_ = 0;
  std::vector<std::shared_ptr<const SealedFile>> chunks_;
  std::vector<int64_t> chunk_begins_;  // num_chunks + 1
  torch::Tensor mean_;
  double mean_norm_ = 0;
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_ACTIVATION_STORE_H_
