// Fuzzes the activation store's chunk reader (data/activations/store_format.h
// OpenChunk): the sealed-file header and the chunk's fields, checked against
// the ChunkSpec the manifest implies.
//
// Input, split by fuzz_support.h SplitParts into three parts:
//   1. the spec and flags: int64 index, int64 rows, int64 d (little-endian),
//      one byte dtype (an ActivationStoreKey::Dtype number), one flags byte
//      (bit 0: rewrite the file's checksums first, ResealForFuzzing, so that
//      mutations reach the field checks; bit 1: verify_payload); missing
//      bytes read as 0;
//   2. the spec's key_sha256;
//   3. the chunk file.
//
// Asserts, beyond "no crash" (no read outside the mapping, no overflow in
// the rows x d size arithmetic):
//  - errors name the file;
//  - an opened chunk matches the spec: payload of rows x d values of the
//    dtype's size, every value convertible (StoredToFloat reads it all).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/activations/activation_store.pb.h"
#include "data/activations/store_format.h"
#include "fuzz/fuzz_support.h"
#include "harness/sealed_file.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

int64_t Int64At(absl::string_view bytes, size_t offset) {
  char buffer[8] = {};
  if (offset < bytes.size()) {
    std::memcpy(buffer, bytes.data() + offset, std::min<size_t>(8, bytes.size() - offset));
  }
  int64_t value;
  std::memcpy(&value, buffer, 8);
  return value;
}

uint8_t ByteAt(absl::string_view bytes, size_t offset) {
  return offset < bytes.size() ? static_cast<uint8_t>(bytes[offset]) : 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = saelab::fuzz::ScratchPath("chunk-00000.bin");
  const std::vector<absl::string_view> parts =
      saelab::fuzz::SplitParts(saelab::fuzz::AsStringView(data, size), 3);
  saelab::ChunkSpec spec;
  spec.index = Int64At(parts[0], 0);
  spec.rows = Int64At(parts[0], 8);
  spec.d = Int64At(parts[0], 16);
  spec.dtype = static_cast<saelab::ActivationStoreKey::Dtype>(ByteAt(parts[0], 24));
  const uint8_t flags = ByteAt(parts[0], 25);
  spec.key_sha256 = std::string(parts[1]);
  std::string bytes(parts[2]);
  if (flags & 1) saelab::fuzz::ResealForFuzzing(&bytes);
  saelab::fuzz::WriteFileOrDie(path, bytes);

  absl::StatusOr<saelab::SealedFile> chunk =
      saelab::OpenChunk(path, spec, /*verify_payload=*/(flags & 2) != 0);
  CheckErrorNames(chunk.status(), path, "OpenChunk");
  if (!chunk.ok()) return 0;

  const size_t element = saelab::StoreElementSize(spec.dtype);
  FuzzCheck(spec.rows >= 0 && spec.d >= 0,
            absl::StrCat("OpenChunk accepted rows ", spec.rows, ", d ", spec.d));
  uint64_t values_in_spec = 0;
  const bool overflows = __builtin_mul_overflow(static_cast<uint64_t>(spec.rows),
                                                static_cast<uint64_t>(spec.d), &values_in_spec);
  FuzzCheck(!overflows && chunk->payload_size() % element == 0 &&
                chunk->payload_size() / element == values_in_spec,
            absl::StrCat("OpenChunk accepted a ", chunk->payload_size(), "-byte payload for ",
                         spec.rows, " x ", spec.d, " values"));
  const int64_t n = static_cast<int64_t>(chunk->payload_size() / element);
  std::vector<float> values(static_cast<size_t>(n));
  if (n > 0) saelab::StoredToFloat(chunk->payload(), spec.dtype, n, values.data());
  return 0;
}
