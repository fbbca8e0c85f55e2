#include "data/activations/activation_store.h"

#include <algorithm>
#include <utility>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "data/activations/store_format.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"

namespace saelab {

absl::StatusOr<ActivationStore> ActivationStore::Open(const std::string& dir,
                                                      const ActivationStoreKey& expected,
                                                      bool verify_checksums) {
  const std::string manifest_path = ManifestPath(dir);
  if (!PathExists(manifest_path)) {
    return absl::NotFoundError(absl::StrCat("activation store ", dir, ": no manifest (",
                                            manifest_path, "); harvest it first"));
  }
  ASSIGN_OR_RETURN(ActivationStoreManifest m, ReadManifest(dir));
  RETURN_IF_ERROR(CheckStoreKey(m.key(), expected, absl::StrCat("activation store ", dir)));
  if (!m.complete()) {
    return absl::FailedPreconditionError(
        absl::StrCat("activation store ", dir, ": incomplete (", m.chunks_size(),
                     " chunks written; the harvest was interrupted; rerun it to finish)"));
  }
  const int64_t n_contexts = m.key().context_end() - m.key().context_begin();
  // Rounded up without n_contexts + contexts_per_chunk - 1, which overflows
  // for a huge contexts_per_chunk (fuzz/crashes/store_manifest/).
  // ReadManifest checked 0 <= n_contexts and n_contexts * rows_per_context.
  const int64_t n_chunks =
      n_contexts / m.contexts_per_chunk() + (n_contexts % m.contexts_per_chunk() != 0 ? 1 : 0);
  if (m.chunks_size() != n_chunks) {
    return absl::DataLossError(absl::StrCat("activation store manifest ", manifest_path,
                                            ": chunks: lists ", m.chunks_size(),
                                            " chunks, the key needs ", n_chunks));
  }
  ActivationStore store;
  store.dir_ = dir;
  store.key_ = m.key();
  store.d_ = m.d();
  store.num_rows_ = m.num_rows();
  store.chunk_begins_.push_back(0);
  for (int64_t c = 0; c < n_chunks; ++c) {
    const ActivationStoreManifest::Chunk& mc = m.chunks(c);
    const int64_t contexts =
        std::min(m.contexts_per_chunk(), n_contexts - c * m.contexts_per_chunk());
    const ChunkSpec spec{c, contexts * m.rows_per_context(), m.d(), m.key().dtype(),
                         m.key_sha256()};
    if (mc.file() != ChunkFileName(c) || mc.rows() != spec.rows) {
      return absl::DataLossError(absl::StrCat(
          "activation store manifest ", manifest_path, ": chunks[", c, "]: is ", mc.file(),
          " with ", mc.rows(), " rows, expected ", ChunkFileName(c), " with ", spec.rows));
    }
    ASSIGN_OR_RETURN(SealedFile chunk, OpenChunk(dir + "/" + mc.file(), spec, verify_checksums));
    if (verify_checksums && chunk.payload_sha256() != mc.sha256()) {
      return chunk.Error("payload_sha256",
                         absl::StrCat("checksum mismatch: manifest says ", mc.sha256(),
                                      ", file hashes to ", chunk.payload_sha256()));
    }
    store.chunks_.push_back(std::make_shared<const SealedFile>(std::move(chunk)));
    store.chunk_begins_.push_back(store.chunk_begins_.back() + spec.rows);
  }
  store.mean_ = torch::tensor(std::vector<double>(m.stats().mean().begin(), m.stats().mean().end()),
                              torch::kDouble)
                    .to(torch::kFloat);
  store.mean_norm_ = m.stats().mean_norm();
  return store;
}

std::vector<std::string> ActivationStore::ChunkPaths() const {
  std::vector<std::string> paths;
  for (const auto& chunk : chunks_) paths.push_back(chunk->path());
  return paths;
}

int64_t ActivationStore::ChunkOf(int64_t r) const {
  return std::upper_bound(chunk_begins_.begin(), chunk_begins_.end(), r) -
         chunk_begins_.begin() - 1;
}

void ActivationStore::CopyRow(int64_t r, float* dst) const {
  const int64_t c = ChunkOf(r);
  const size_t row_bytes = static_cast<size_t>(d_) * StoreElementSize(key_.dtype());
  StoredToFloat(chunks_[c]->payload() + static_cast<size_t>(r - chunk_begins_[c]) * row_bytes,
                key_.dtype(), d_, dst);
}

void ActivationStore::Prefetch(int64_t begin, int64_t end) const {
  begin = std::max<int64_t>(begin, 0);
  end = std::min(end, num_rows_);
  const size_t row_bytes = static_cast<size_t>(d_) * StoreElementSize(key_.dtype());
  for (int64_t c = 0; c < num_chunks(); ++c) {
    const int64_t b = std::max(begin, chunk_begins_[c]), e = std::min(end, chunk_begins_[c + 1]);
    if (b >= e) continue;
    chunks_[c]->WillNeed(static_cast<size_t>(b - chunk_begins_[c]) * row_bytes,
                         static_cast<size_t>(e - b) * row_bytes);
  }
}

absl::StatusOr<torch::Tensor> ActivationStore::Rows(int64_t begin, int64_t end) const {
  if (begin < 0 || begin > end || end > num_rows_) {
    return absl::InvalidArgumentError(absl::StrCat("activation store ", dir_, ": rows [", begin,
                                                   ", ", end, ") outside [0, ", num_rows_, ")"));
  }
  torch::Tensor out = torch::empty({end - begin, d_}, torch::kFloat);
  float* dst = out.data_ptr<float>();
  const size_t row_bytes = static_cast<size_t>(d_) * StoreElementSize(key_.dtype());
  int64_t r = begin;
  while (r < end) {
    const int64_t c = ChunkOf(r);
    const int64_t n = std::min(end, chunk_begins_[c + 1]) - r;
    StoredToFloat(chunks_[c]->payload() + static_cast<size_t>(r - chunk_begins_[c]) * row_bytes,
                  key_.dtype(), n * d_, dst);
    dst += n * d_;
    r += n;
  }
  return out;
}

}  // namespace saelab
