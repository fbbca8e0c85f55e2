// The activation store's on-disk format: the key (what the activations
// depend on), the chunk files, and the manifest that lists them. Shared by
// harvesting (data/activations/harvest.h), which writes a store, and
// ActivationStore (data/activations/activation_store.h), which opens one.
//
//   ActivationStoreKey key;                        // activation_store.proto
//   key.set_hook_name("blocks.6.hook_resid_post");
//   ...
//   const std::string key_sha256 = StoreKeySha256(key);
//   ChunkSpec spec{/*index=*/0, rows, d, key.dtype(), key_sha256};
//   ASSIGN_OR_RETURN(std::string payload_sha256, WriteChunk(dir + "/" + ChunkFileName(0), values, spec));
//   ASSIGN_OR_RETURN(SealedFile chunk, OpenChunk(path, spec, /*verify_payload=*/true));
//
// Directory layout:
//   <dir>/manifest           ActivationStoreManifest in text format.
//   <dir>/chunk-00000.bin    harness/sealed_file.h files, magic "SAELACTS";
//   <dir>/chunk-00001.bin    header ints: chunk index, rows, d, dtype (the
//   ...                      ActivationStoreKey::Dtype number); header text:
//                            the key sha256. Payload: rows x d values,
//                            row-major, little-endian, in the key's dtype.
// Chunk c holds contexts [begin + c * contexts_per_chunk, ...) of the key's
// range, context by context, each context's positions in order (position 0
// left out when drop_bos). So store row r is context begin + r / P, position
// r % P (+ 1 when drop_bos), with P = context_length - drop_bos.
// Every file is written atomically.
#ifndef SAELAB_DATA_ACTIVATIONS_STORE_FORMAT_H_
#define SAELAB_DATA_ACTIVATIONS_STORE_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/activations/activation_store.pb.h"
#include "harness/sealed_file.h"

namespace saelab {

// The store format: the manifest's version and the chunk files' sealed-file
// version. 1 was a JSON manifest and hand-laid chunk headers; 2 is the
// proto manifest and harness/sealed_file chunks.
inline constexpr int kStoreFormatVersion = 2;

// Activation rows per context: context_length - drop_bos.
int64_t RowsPerContext(const ActivationStoreKey& key);

// sha256 (hex) of the key's deterministic serialisation (ProtoSha256).
std::string StoreKeySha256(const ActivationStoreKey& key);

// OK if the keys are equal. Otherwise FailedPrecondition "<context>: key
// field hook_name is "blocks.1.hook_resid_post" there, "blocks.2.hook_resid_post"
// wanted", one such clause per differing field (joined by "; "), `found`
// being the store's key and `wanted` the caller's.
absl::Status CheckStoreKey(const ActivationStoreKey& found, const ActivationStoreKey& wanted,
                           absl::string_view context);

// Bytes per stored value: 4 for FLOAT32, 2 otherwise.
size_t StoreElementSize(ActivationStoreKey::Dtype dtype);
// The torch dtype of stored values.
torch::ScalarType StoreTorchDtype(ActivationStoreKey::Dtype dtype);
// Converts `n` stored values at `src` to float32 at `dst`.
void StoredToFloat(const unsigned char* src, ActivationStoreKey::Dtype dtype, int64_t n,
                   float* dst);

// "chunk-00007.bin".
std::string ChunkFileName(int64_t index);

// What a chunk file must hold to belong to a store.
struct ChunkSpec {
  int64_t index = 0;
  int64_t rows = 0;
  int64_t d = 0;
  ActivationStoreKey::Dtype dtype = ActivationStoreKey::FLOAT32;
  std::string key_sha256;
};

// Writes `values` ([spec.rows, spec.d] in spec.dtype) as a chunk file at
// `path`, atomically. Returns the payload's sha256. InvalidArgument if the
// values' shape or dtype differ from the spec; I/O errors name the path.
absl::StatusOr<std::string> WriteChunk(const std::string& path, const torch::Tensor& values,
                                       const ChunkSpec& spec);

// Maps a chunk file and checks it against `spec`: the sealed-file checks
// (harness/sealed_file.h: truncation, magic, header checksum, version and,
// with verify_payload, the payload checksum), then key_sha256, dtype,
// chunk_index, rows, d and the payload size (a spec whose rows x d is
// negative or overflows matches no chunk). Errors are DataLoss
// "activation store chunk <path>: <field>: <problem>"; NotFound if the file
// is missing.
absl::StatusOr<SealedFile> OpenChunk(const std::string& path, const ChunkSpec& spec,
                                     bool verify_payload);

// <dir>/manifest.
std::string ManifestPath(const std::string& dir);

// Writes `manifest` to ManifestPath(dir) in text format, atomically.
// The manifest_sha256 a manifest should carry: ProtoSha256 of it with that
// field cleared.
std::string ManifestSha256(ActivationStoreManifest manifest);

absl::Status WriteManifest(const std::string& dir, const ActivationStoreManifest& manifest);

// Reads ManifestPath(dir) and checks that it is consistent: version,
// key_sha256 against the key, d and contexts_per_chunk >= 1, the key's
// context range (0 <= begin <= end) and context_length >= 1,
// rows_per_context and num_rows against the key (num_rows fits in int64),
// and, when complete, d stats.mean values. NotFound if there is no manifest; DataLoss
// "activation store manifest <path>: <field>: <problem>" otherwise (a
// version-1 JSON manifest is named as such). manifest_sha256 must match the
// contents; a manifest without one (written before it existed) is refused
// unless `allow_missing_checksum` (the harvest, which verifies every chunk
// on its own and rewrites the manifest).
absl::StatusOr<ActivationStoreManifest> ReadManifest(const std::string& dir,
                                                     bool allow_missing_checksum = false);

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_STORE_FORMAT_H_
