#include "data/activations/harvest.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <torch/types.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/activations/hook_rows.h"
#include "data/activations/store_format.h"
#include "data/subject_model/hooks.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/progress.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

// Removes temporaries (AtomicWriteFile's "<name>.tmp.<pid>") a killed
// harvest left behind.
void RemoveStaleTemporaries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if ((absl::StartsWith(name, "chunk-") || absl::StartsWith(name, "manifest")) &&
        absl::StrContains(name, ".tmp.")) {
      ::unlink((dir + "/" + name).c_str());
    }
  }
  ::closedir(d);
}

// The per-dimension mean and the mean L2 norm of every row, in chunk order,
// in float64, by a plain loop (the same sums whatever the thread count).
absl::Status ComputeStats(const std::string& dir, ActivationStoreManifest* manifest) {
  const int64_t d = manifest->d();
  const ActivationStoreKey::Dtype dtype = manifest->key().dtype();
  std::vector<double> sum(static_cast<size_t>(d), 0.0);
  double norm_sum = 0;
  std::vector<float> row(static_cast<size_t>(d));
  const size_t row_bytes = static_cast<size_t>(d) * StoreElementSize(dtype);
  for (int64_t c = 0; c < manifest->chunks_size(); ++c) {
    const ActivationStoreManifest::Chunk& mc = manifest->chunks(c);
    const ChunkSpec spec{c, mc.rows(), d, dtype, manifest->key_sha256()};
    ASSIGN_OR_RETURN(SealedFile chunk, OpenChunk(dir + "/" + mc.file(), spec, false));
    for (int64_t r = 0; r < mc.rows(); ++r) {
      StoredToFloat(chunk.payload() + r * row_bytes, dtype, d, row.data());
      double sq = 0;
      for (int64_t i = 0; i < d; ++i) {
        sum[i] += row[i];
        sq += static_cast<double>(row[i]) * row[i];
      }
      norm_sum += std::sqrt(sq);
    }
  }
  const double n = static_cast<double>(manifest->num_rows());
  ActivationStoreManifest::Stats* stats = manifest->mutable_stats();
  stats->clear_mean();
  for (int64_t i = 0; i < d; ++i) stats->add_mean(sum[i] / n);
  stats->set_mean_norm(norm_sum / n);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ActivationStore> HarvestActivations(const Gpt2Model& model,
                                                   const torch::Tensor& contexts_in,
                                                   const ActivationStoreKey& key,
                                                   const std::string& dir,
                                                   const HarvestOptions& options) {
  auto invalid = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("harvesting activation store ", dir, ": ", what));
  };
  if (!contexts_in.defined() || contexts_in.dim() != 2)
    return invalid("contexts must be [N, context_length]");
  if (key.context_length() != contexts_in.size(1)) {
    return invalid(absl::StrCat("key.context_length ", key.context_length(),
                                " != contexts.size(1) ", contexts_in.size(1)));
  }
  if (key.context_begin() < 0 || key.context_begin() >= key.context_end() ||
      key.context_end() > contexts_in.size(0)) {
    return invalid(absl::StrCat("context range [", key.context_begin(), ", ", key.context_end(),
                                ") is empty or outside [0, ", contexts_in.size(0), ")"));
  }
  if (RowsPerContext(key) < 1) return invalid("no positions left per context");
  if (options.contexts_per_chunk < 1 || options.batch_contexts < 1) {
    return invalid("contexts_per_chunk and batch_contexts must be >= 1");
  }
  absl::StatusOr<HookLocation> location = ParseHookName(key.hook_name(), model.config().n_layer);
  if (!location.ok()) return invalid(absl::StrCat("key.hook_name: ", location.status().message()));
  std::vector<HookLocation> locations = {*location};
  if (!key.target_hook_name().empty()) {
    absl::StatusOr<HookLocation> target =
        ParseHookName(key.target_hook_name(), model.config().n_layer);
    if (!target.ok()) {
      return invalid(absl::StrCat("key.target_hook_name: ", target.status().message()));
    }
    locations.push_back(*target);
  }

  const torch::Tensor contexts = contexts_in.to(torch::kLong).contiguous();
  const int64_t n_contexts = key.context_end() - key.context_begin();
  const int64_t per_chunk = options.contexts_per_chunk;
  const int64_t n_chunks = (n_contexts + per_chunk - 1) / per_chunk;

  RETURN_IF_ERROR(MakeDirs(dir));
  if (PathExists(ManifestPath(dir))) {
    ASSIGN_OR_RETURN(ActivationStoreManifest existing,
                     ReadManifest(dir, /*allow_missing_checksum=*/true));
    RETURN_IF_ERROR(CheckStoreKey(
        existing.key(), key,
        absl::StrCat("activation store ", dir, " holds another store; refusing to overwrite it")));
    if (existing.contexts_per_chunk() != per_chunk) {
      return absl::FailedPreconditionError(absl::StrCat(
          "activation store ", dir, ": contexts_per_chunk is ", existing.contexts_per_chunk(),
          " there, ", per_chunk, " wanted; refusing to overwrite it"));
    }
    if (existing.complete()) {
      absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, key);
      if (store.ok()) {
        Log("activation store %s: complete, reusing", dir);
        return store;
      }
      Log("activation store %s: %s; redoing the bad chunks", dir, store.status().message());
    }
  }
  RemoveStaleTemporaries(dir);

  ActivationStoreManifest manifest;
  manifest.set_version(kStoreFormatVersion);
  *manifest.mutable_key() = key;
  manifest.set_key_sha256(StoreKeySha256(key));
  manifest.set_d(model.config().n_embd * static_cast<int64_t>(locations.size()));
  manifest.set_contexts_per_chunk(per_chunk);
  manifest.set_rows_per_context(RowsPerContext(key));
  manifest.set_num_rows(n_contexts * RowsPerContext(key));

  Progress progress(
      absl::StrCat("harvest ", options.label.empty() ? key.hook_name() : options.label),
      n_contexts * key.context_length(), "tokens");
  int64_t written = 0, reused = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t first = key.context_begin() + c * per_chunk;
    const int64_t last = std::min(first + per_chunk, key.context_end());
    const ChunkSpec spec{c, (last - first) * RowsPerContext(key), manifest.d(), key.dtype(),
                         manifest.key_sha256()};
    const std::string path = dir + "/" + ChunkFileName(c);
    std::string sha;
    bool reuse = false;
    if (PathExists(path)) {
      absl::StatusOr<SealedFile> chunk = OpenChunk(path, spec, /*verify_payload=*/true);
      if (chunk.ok()) {
        reuse = true;
        sha = chunk->payload_sha256();
      } else {
        Log("activation store: redoing %s (%s)", path, chunk.status().message());
      }
    }
    if (!reuse) {
      ASSIGN_OR_RETURN(
          torch::Tensor rows,
          HookActivationRows(model, contexts.slice(0, first, last), locations, key.drop_bos(),
                             options.batch_contexts, [&](int64_t done) {
                               progress.Update((first - key.context_begin() + done) *
                                               key.context_length());
                             }));
      ASSIGN_OR_RETURN(sha, WriteChunk(path, rows.to(StoreTorchDtype(key.dtype())), spec));
      ++written;
    } else {
      ++reused;
    }
    ActivationStoreManifest::Chunk* entry = manifest.add_chunks();
    entry->set_file(ChunkFileName(c));
    entry->set_rows(spec.rows);
    entry->set_sha256(sha);
    progress.Update((last - key.context_begin()) * key.context_length());
    if (!reuse) {
      RETURN_IF_ERROR(WriteManifest(dir, manifest));
      if (options.stop_after_chunks >= 0 && written >= options.stop_after_chunks &&
          c + 1 < n_chunks) {
        progress.Finish("stopped early (stop_after_chunks)");
        return absl::AbortedError(absl::StrCat("activation store ", dir, ": stopped after ",
                                               written, " new chunks (stop_after_chunks)"));
      }
    }
  }
  progress.Finish(absl::StrCat(written, " chunks written, ", reused, " reused"));

  RETURN_IF_ERROR(ComputeStats(dir, &manifest));
  manifest.set_complete(true);
  RETURN_IF_ERROR(WriteManifest(dir, manifest));
  // Every chunk was hashed above (written or verified).
  return ActivationStore::Open(dir, key, /*verify_checksums=*/false);
}

}  // namespace saelab
