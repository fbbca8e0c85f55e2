// Fuzzes opening an activation store (data/activations/activation_store.h
// ActivationStore::Open): the manifest (a text-format
// ActivationStoreManifest, read by store_format.h ReadManifest), the chunk
// specs it implies, and two chunk files.
//
// Input, split by fuzz_support.h SplitParts into four parts: a flags byte,
// the manifest, chunk-00000.bin, chunk-00001.bin. The manifest and chunks
// carry checksums of each other, so random mutations would almost never get
// past them; the flags let the fuzzer ask for them to be made consistent
// (each only where the manifest parses as text format):
//   bit 0  set the manifest's key_sha256 to the hash of its key;
//   bit 1  write that hash into each chunk header and reseal the chunk
//          (fuzz_support.h ResealForFuzzing);
//   bit 2  set the manifest's chunks[i].sha256 to chunk i's payload hash;
//   bit 3  open with verify_checksums;
//   bit 4  set the manifest's manifest_sha256 to the hash of the rest (after
//          the edits above).
// The key expected by the caller is the manifest's own (or the default key
// if the manifest does not parse), so the key comparison passes and the
// checks behind it are reached.
//
// Asserts, beyond "no crash" (in particular no signed overflow in the
// context and row arithmetic, which every value of the manifest feeds):
//  - errors name the store directory (or a file in it);
//  - an opened store is consistent: chunk_begin tiles [0, num_rows), Rows()
//    returns [num_rows, d] and agrees with CopyRow, mean() has d values.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "data/activations/activation_store.h"
#include "data/activations/activation_store.pb.h"
#include "data/activations/store_format.h"
#include "fuzz/fuzz_support.h"
#include "google/protobuf/stubs/logging.h"
#include "harness/sealed_file.h"
#include "harness/sha256.h"
#include "harness/textproto.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

// sealed_file.h: texts[0] starts at byte 152 and is 64 bytes, NUL-padded.
constexpr size_t kText0Offset = 152;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // proto3 string fields holding invalid UTF-8 (a mutated hook_name) make
  // protobuf log an error each time the key is hashed: harmless, and
  // millions of lines while fuzzing.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  static const std::string dir = saelab::fuzz::ScratchPath("store");
  static const bool made = (saelab::fuzz::MakeDirOrDie(dir), true);
  (void)made;
  const std::vector<absl::string_view> parts =
      saelab::fuzz::SplitParts(saelab::fuzz::AsStringView(data, size), 4);
  const uint8_t flags = parts[0].empty() ? 0 : static_cast<uint8_t>(parts[0][0]);
  std::string manifest_text(parts[1]);
  std::string chunks[2] = {std::string(parts[2]), std::string(parts[3])};

  saelab::ActivationStoreManifest manifest;
  // ParseTextProto, not TextFormat::ParseFromString: the latter logs every
  // error to stderr, millions of times.
  const bool parsed = saelab::ParseTextProto(manifest_text, "manifest", &manifest).ok();
  saelab::ActivationStoreKey expected;
  if (parsed) {
    expected = manifest.key();
    const std::string key_sha = saelab::StoreKeySha256(manifest.key());
    if (flags & 1) manifest.set_key_sha256(key_sha);
    for (int c = 0; c < 2; ++c) {
      std::string& chunk = chunks[c];
      if ((flags & 2) && chunk.size() >= saelab::kSealedHeaderSize) {
        std::memset(&chunk[kText0Offset], 0, 64);
        std::memcpy(&chunk[kText0Offset], key_sha.data(), 64);
        saelab::fuzz::ResealForFuzzing(&chunk);
      }
      if ((flags & 4) && c < manifest.chunks_size()) {
        manifest.mutable_chunks(c)->set_sha256(saelab::Sha256Hex(
            absl::string_view(chunk).substr(std::min(chunk.size(), saelab::kSealedHeaderSize))));
      }
    }
    if (flags & 16) manifest.set_manifest_sha256(saelab::ManifestSha256(manifest));
    if (flags & 21) manifest_text = saelab::ToTextProto(manifest);
  }
  saelab::fuzz::WriteFileOrDie(saelab::ManifestPath(dir), manifest_text);
  saelab::fuzz::WriteFileOrDie(dir + "/" + saelab::ChunkFileName(0), chunks[0]);
  saelab::fuzz::WriteFileOrDie(dir + "/" + saelab::ChunkFileName(1), chunks[1]);

  absl::StatusOr<saelab::ActivationStore> store =
      saelab::ActivationStore::Open(dir, expected, /*verify_checksums=*/(flags & 8) != 0);
  CheckErrorNames(store.status(), dir, "ActivationStore::Open");
  if (!store.ok()) return 0;

  FuzzCheck(store->d() >= 1 && store->num_rows() >= 0 && store->chunk_begin(0) == 0 &&
                store->chunk_begin(store->num_chunks()) == store->num_rows(),
            absl::StrCat("an opened store is inconsistent: d ", store->d(), ", num_rows ",
                         store->num_rows(), ", chunks ", store->num_chunks()));
  for (int64_t c = 0; c < store->num_chunks(); ++c) {
    FuzzCheck(store->chunk_begin(c) <= store->chunk_begin(c + 1), "chunk_begin decreases");
  }
  FuzzCheck(store->mean().dim() == 1 && store->mean().size(0) == store->d(),
            "mean() does not have d values");
  // Both are bounded by the chunk files' sizes, which Open checked.
  absl::StatusOr<torch::Tensor> rows = store->Rows(0, store->num_rows());
  FuzzCheck(rows.ok(), absl::StrCat("Rows(0, num_rows) fails: ", rows.status().ToString()));
  FuzzCheck(rows->size(0) == store->num_rows() && rows->size(1) == store->d(),
            "Rows() has the wrong shape");
  std::vector<float> row(static_cast<size_t>(store->d()));
  for (int64_t r = 0; r < store->num_rows(); ++r) {
    store->CopyRow(r, row.data());
    FuzzCheck(std::memcmp(row.data(), rows->data_ptr<float>() + r * store->d(),
                          row.size() * sizeof(float)) == 0,
              absl::StrCat("CopyRow(", r, ") differs from Rows()"));
  }
  store->Prefetch(0, store->num_rows());
  return 0;
}
