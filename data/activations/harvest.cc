#include "data/activations/harvest.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>
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

namespace {

// One store of a harvest: its key, directory, hook locations (one, or two
// for a paired store) and manifest under construction.
struct StorePlan {
  ActivationStoreKey key;
  std::string dir;
  std::vector<HookLocation> locations;
  ActivationStoreManifest manifest;
  bool complete = false;  // found complete on disk: nothing to do
  std::optional<ActivationStore> opened;
  int64_t written = 0, reused = 0;
};

}  // namespace

absl::StatusOr<std::vector<ActivationStore>> HarvestActivationsAtHooks(
    const Gpt2Model& model, const torch::Tensor& contexts_in,
    const std::vector<ActivationStoreKey>& keys, const std::vector<std::string>& dirs,
    const HarvestOptions& options) {
  if (keys.empty() || keys.size() != dirs.size()) {
    return absl::InvalidArgumentError(absl::StrCat("harvesting activation stores: ", keys.size(),
                                                   " keys for ", dirs.size(), " directories"));
  }
  std::vector<StorePlan> plans(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const ActivationStoreKey& key = keys[i];
    const std::string& dir = dirs[i];
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
    if (options.shard_count < 1 || options.shard_rank < 0 ||
        options.shard_rank >= options.shard_count) {
      return invalid(absl::StrCat("shard_rank ", options.shard_rank, " of shard_count ",
                                  options.shard_count, " is not a share"));
    }
    // One forward pass serves every store: they must cut the same contexts
    // the same way.
    if (i > 0 && (key.context_begin() != keys[0].context_begin() ||
                  key.context_end() != keys[0].context_end() ||
                  key.drop_bos() != keys[0].drop_bos())) {
      return invalid(absl::StrCat("the context range and drop_bos must match those of ", dirs[0],
                                  " (one forward pass serves every store)"));
    }
    absl::StatusOr<HookLocation> location =
        ParseHookName(key.hook_name(), model.config().n_layer);
    if (!location.ok()) {
      return invalid(absl::StrCat("key.hook_name: ", location.status().message()));
    }
    StorePlan& plan = plans[i];
    plan.key = key;
    plan.dir = dir;
    plan.locations = {*location};
    if (!key.target_hook_name().empty()) {
      absl::StatusOr<HookLocation> target =
          ParseHookName(key.target_hook_name(), model.config().n_layer);
      if (!target.ok()) {
        return invalid(absl::StrCat("key.target_hook_name: ", target.status().message()));
      }
      plan.locations.push_back(*target);
    }
  }

  const ActivationStoreKey& first_key = keys[0];
  const torch::Tensor contexts = contexts_in.to(torch::kLong).contiguous();
  const int64_t n_contexts = first_key.context_end() - first_key.context_begin();
  const int64_t per_chunk = options.contexts_per_chunk;
  const int64_t n_chunks = (n_contexts + per_chunk - 1) / per_chunk;
  const int64_t n_embd = model.config().n_embd;

  for (StorePlan& plan : plans) {
    const std::string& dir = plan.dir;
    RETURN_IF_ERROR(MakeDirs(dir));
    if (PathExists(ManifestPath(dir))) {
      ASSIGN_OR_RETURN(ActivationStoreManifest existing,
                       ReadManifest(dir, /*allow_missing_checksum=*/true));
      RETURN_IF_ERROR(CheckStoreKey(
          existing.key(), plan.key,
          absl::StrCat("activation store ", dir, " holds another store; refusing to overwrite it")));
      if (existing.contexts_per_chunk() != per_chunk) {
        return absl::FailedPreconditionError(absl::StrCat(
            "activation store ", dir, ": contexts_per_chunk is ", existing.contexts_per_chunk(),
            " there, ", per_chunk, " wanted; refusing to overwrite it"));
      }
      if (existing.complete()) {
        absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, plan.key);
        if (store.ok()) {
          Log("activation store %s: complete, reusing", dir);
          plan.complete = true;
          plan.opened.emplace(std::move(*store));
          continue;
        }
        Log("activation store %s: %s; redoing the bad chunks", dir, store.status().message());
      }
    }
    RemoveStaleTemporaries(dir);
    ActivationStoreManifest& manifest = plan.manifest;
    manifest.set_version(kStoreFormatVersion);
    *manifest.mutable_key() = plan.key;
    manifest.set_key_sha256(StoreKeySha256(plan.key));
    manifest.set_d(n_embd * static_cast<int64_t>(plan.locations.size()));
    manifest.set_contexts_per_chunk(per_chunk);
    manifest.set_rows_per_context(RowsPerContext(plan.key));
    manifest.set_num_rows(n_contexts * RowsPerContext(plan.key));
  }

  std::vector<StorePlan*> open;
  for (StorePlan& plan : plans) {
    if (!plan.complete) open.push_back(&plan);
  }
  if (!open.empty()) {
    std::string label = options.label;
    if (label.empty()) {
      for (const StorePlan* plan : open) {
        absl::StrAppend(&label, label.empty() ? "" : ", ", plan->key.hook_name(),
                        plan->key.target_hook_name().empty() ? "" : "+target");
      }
    }
    Progress progress(absl::StrCat("harvest ", label), n_contexts * first_key.context_length(),
                      "tokens");
    int64_t written = 0;
    for (int64_t c = 0; c < n_chunks; ++c) {
      if (options.shard_count > 1 && c % options.shard_count != options.shard_rank) continue;
      const int64_t first = first_key.context_begin() + c * per_chunk;
      const int64_t last = std::min(first + per_chunk, first_key.context_end());
      // Which stores still need chunk c (a valid file on disk is kept).
      std::vector<StorePlan*> needing;
      std::vector<std::string> shas(open.size());
      std::vector<ChunkSpec> specs;
      for (size_t i = 0; i < open.size(); ++i) {
        StorePlan& plan = *open[i];
        specs.push_back(ChunkSpec{c, (last - first) * RowsPerContext(plan.key), plan.manifest.d(),
                                  plan.key.dtype(), plan.manifest.key_sha256()});
        const std::string path = plan.dir + "/" + ChunkFileName(c);
        bool reuse = false;
        if (PathExists(path)) {
          absl::StatusOr<SealedFile> chunk = OpenChunk(path, specs[i], /*verify_payload=*/true);
          if (chunk.ok()) {
            reuse = true;
            shas[i] = chunk->payload_sha256();
          } else {
            Log("activation store: redoing %s (%s)", path, chunk.status().message());
          }
        }
        if (!reuse) needing.push_back(&plan);
      }
      if (!needing.empty()) {
        // One forward pass for every hook a needing store reads, in order.
        std::vector<HookLocation> locations;
        for (const StorePlan* plan : needing) {
          locations.insert(locations.end(), plan->locations.begin(), plan->locations.end());
        }
        ASSIGN_OR_RETURN(
            torch::Tensor rows,
            HookActivationRows(model, contexts.slice(0, first, last), locations,
                               first_key.drop_bos(), options.batch_contexts, [&](int64_t done) {
                                 progress.Update((first - first_key.context_begin() + done) *
                                                 first_key.context_length());
                               }));
        int64_t column = 0;
        for (StorePlan* plan : needing) {
          const size_t i = std::find(open.begin(), open.end(), plan) - open.begin();
          const int64_t width = plan->manifest.d();
          torch::Tensor own = rows.narrow(1, column, width).contiguous();
          column += width;
          ASSIGN_OR_RETURN(shas[i], WriteChunk(plan->dir + "/" + ChunkFileName(c),
                                               own.to(StoreTorchDtype(plan->key.dtype())), specs[i]));
        }
      }
      for (size_t i = 0; i < open.size(); ++i) {
        StorePlan& plan = *open[i];
        ActivationStoreManifest::Chunk* entry = plan.manifest.add_chunks();
        entry->set_file(ChunkFileName(c));
        entry->set_rows(specs[i].rows);
        entry->set_sha256(shas[i]);
        const bool wrote = std::find(needing.begin(), needing.end(), &plan) != needing.end();
        ++(wrote ? plan.written : plan.reused);
        // A share's manifest would miss the other ranks' chunks.
        if (wrote && options.shard_count == 1) RETURN_IF_ERROR(WriteManifest(plan.dir, plan.manifest));
      }
      progress.Update((last - first_key.context_begin()) * first_key.context_length());
      if (!needing.empty()) {
        ++written;
        if (options.stop_after_chunks >= 0 && written >= options.stop_after_chunks &&
            c + 1 < n_chunks) {
          progress.Finish("stopped early (stop_after_chunks)");
          return absl::AbortedError(absl::StrCat("activation store ", open.front()->dir,
                                                 ": stopped after ", written,
                                                 " new chunks (stop_after_chunks)"));
        }
      }
    }
    progress.Finish(absl::StrCat(open.front()->written, " chunks written, ",
                                 open.front()->reused, " reused",
                                 open.size() > 1 ? absl::StrCat(" (", open.size(), " stores)")
                                                 : std::string(),
                                 options.shard_count > 1
                                     ? absl::StrCat(" (share ", options.shard_rank, " of ",
                                                    options.shard_count, ")")
                                     : std::string()));
    if (options.shard_count > 1) return std::vector<ActivationStore>();
    for (StorePlan* plan : open) {
      RETURN_IF_ERROR(ComputeStats(plan->dir, &plan->manifest));
      plan->manifest.set_complete(true);
      RETURN_IF_ERROR(WriteManifest(plan->dir, plan->manifest));
      // Every chunk was hashed above (written or verified).
      ASSIGN_OR_RETURN(ActivationStore store,
                       ActivationStore::Open(plan->dir, plan->key, /*verify_checksums=*/false));
      plan->opened.emplace(std::move(store));
    }
  }
  std::vector<ActivationStore> stores;
  for (StorePlan& plan : plans) stores.push_back(std::move(*plan.opened));
  return stores;
}

absl::StatusOr<ActivationStore> HarvestActivations(const Gpt2Model& model,
                                                   const torch::Tensor& contexts,
                                                   const ActivationStoreKey& key,
                                                   const std::string& dir,
                                                   const HarvestOptions& options) {
  ASSIGN_OR_RETURN(std::vector<ActivationStore> stores,
                   HarvestActivationsAtHooks(model, contexts, {key}, {dir}, options));
  return std::move(stores.front());
}

}  // namespace saelab
