#include "data/activations/store_format.h"

#include <cstring>
#include <vector>

#include <c10/util/Half.h>
#include <torch/types.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "harness/file_io.h"
#include "harness/proto_diff.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"

// Chunk payloads are little-endian values read in place from the map.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the activation store assumes a little-endian host");

namespace saelab {
namespace {

constexpr SealedFormat kChunkFormat{"SAELACTS", kStoreFormatVersion, "activation store chunk"};
// Chunk header slots (SealedFields).
constexpr int kIntIndex = 0, kIntRows = 1, kIntD = 2, kIntDtype = 3;
constexpr int kTextKeySha = 0;

absl::Status ManifestError(const std::string& path, absl::string_view field,
                           absl::string_view problem) {
  return absl::DataLossError(
      absl::StrCat("activation store manifest ", path, ": ", field, ": ", problem));
}

}  // namespace

int64_t RowsPerContext(const ActivationStoreKey& key) {
  return key.context_length() - (key.drop_bos() ? 1 : 0);
}

std::string StoreKeySha256(const ActivationStoreKey& key) { return ProtoSha256(key); }

absl::Status CheckStoreKey(const ActivationStoreKey& found, const ActivationStoreKey& wanted,
                           absl::string_view context) {
  std::vector<std::string> clauses;
  for (const ProtoFieldDifference& d : ProtoDifferences(found, wanted)) {
    clauses.push_back(
        absl::StrCat("key field ", d.path, " is ", d.first, " there, ", d.second, " wanted"));
  }
  if (clauses.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(context, ": ", absl::StrJoin(clauses, "; ")));
}

size_t StoreElementSize(ActivationStoreKey::Dtype dtype) {
  return dtype == ActivationStoreKey::FLOAT32 ? 4 : 2;
}

torch::ScalarType StoreTorchDtype(ActivationStoreKey::Dtype dtype) {
  switch (dtype) {
    case ActivationStoreKey::FLOAT16:
      return torch::kHalf;
    case ActivationStoreKey::BFLOAT16:
      return torch::kBFloat16;
    default:
      return torch::kFloat;
  }
}

void StoredToFloat(const unsigned char* src, ActivationStoreKey::Dtype dtype, int64_t n,
                   float* dst) {
  switch (dtype) {
    case ActivationStoreKey::FLOAT16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, sizeof(bits));
        dst[i] = c10::detail::fp16_ieee_to_fp32_value(bits);
      }
      return;
    case ActivationStoreKey::BFLOAT16:
      // bfloat16 is the top half of a float32.
      for (int64_t i = 0; i < n; ++i) {
        uint16_t half;
        std::memcpy(&half, src + 2 * i, sizeof(half));
        const uint32_t bits = static_cast<uint32_t>(half) << 16;
        std::memcpy(dst + i, &bits, sizeof(float));
      }
      return;
    default:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
  }
}

std::string ChunkFileName(int64_t index) { return absl::StrFormat("chunk-%05d.bin", index); }

absl::StatusOr<std::string> WriteChunk(const std::string& path, const torch::Tensor& values,
                                       const ChunkSpec& spec) {
  if (!values.defined() || values.dim() != 2 || values.size(0) != spec.rows ||
      values.size(1) != spec.d || values.scalar_type() != StoreTorchDtype(spec.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "activation store chunk ", path, ": values must be [", spec.rows, ", ", spec.d, "] ",
        ActivationStoreKey::Dtype_Name(spec.dtype)));
  }
  const torch::Tensor contiguous = values.contiguous();
  SealedFileWriter writer(kChunkFormat,
                          static_cast<size_t>(contiguous.numel()) * contiguous.element_size());
  writer.fields().ints[kIntIndex] = spec.index;
  writer.fields().ints[kIntRows] = spec.rows;
  writer.fields().ints[kIntD] = spec.d;
  writer.fields().ints[kIntDtype] = spec.dtype;
  writer.fields().texts[kTextKeySha] = spec.key_sha256;
  if (writer.payload_size() > 0) {
    std::memcpy(writer.payload(), contiguous.data_ptr(), writer.payload_size());
  }
  return writer.Write(path);
}

absl::StatusOr<SealedFile> OpenChunk(const std::string& path, const ChunkSpec& spec,
                                     bool verify_payload) {
  ASSIGN_OR_RETURN(SealedFile file, SealedFile::Open(path, kChunkFormat, verify_payload));
  const SealedFields& fields = file.fields();
  if (fields.texts[kTextKeySha] != spec.key_sha256) {
    return file.Error("key_sha256", absl::StrCat("chunk belongs to store key ",
                                                 fields.texts[kTextKeySha], ", expected ",
                                                 spec.key_sha256));
  }
  struct Field {
    const char* name;
    int64_t got, want;
  };
  for (const Field& f : {Field{"dtype", fields.ints[kIntDtype], spec.dtype},
                         Field{"chunk_index", fields.ints[kIntIndex], spec.index},
                         Field{"rows", fields.ints[kIntRows], spec.rows},
                         Field{"d", fields.ints[kIntD], spec.d}}) {
    if (f.got != f.want) {
      return file.Error(f.name, absl::StrCat("is ", f.got, ", expected ", f.want));
    }
  }
  // The spec comes from the manifest: rows x d may be negative or overflow
  // (fuzz/crashes/store_chunk/), and is then no chunk's size.
  int64_t payload_size = 0;
  if (spec.rows < 0 || spec.d < 0 || __builtin_mul_overflow(spec.rows, spec.d, &payload_size) ||
      __builtin_mul_overflow(payload_size, static_cast<int64_t>(StoreElementSize(spec.dtype)),
                             &payload_size)) {
    return file.Error("payload", absl::StrCat("rows ", spec.rows, " x d ", spec.d,
                                              " is not a valid size"));
  }
  if (file.payload_size() != static_cast<size_t>(payload_size)) {
    return file.Error("payload", absl::StrCat(file.payload_size(), " bytes, but rows x d x ",
                                              StoreElementSize(spec.dtype), " is ",
                                              payload_size));
  }
  return file;
}

std::string ManifestPath(const std::string& dir) { return dir + "/manifest"; }

std::string ManifestSha256(ActivationStoreManifest manifest) {
  manifest.clear_manifest_sha256();
  return ProtoSha256(manifest);
}

absl::Status WriteManifest(const std::string& dir, const ActivationStoreManifest& manifest) {
  ActivationStoreManifest sealed = manifest;
  sealed.set_manifest_sha256(ManifestSha256(manifest));
  return WriteTextProtoFile(ManifestPath(dir), sealed);
}

absl::StatusOr<ActivationStoreManifest> ReadManifest(const std::string& dir,
                                                     bool allow_missing_checksum) {
  const std::string path = ManifestPath(dir);
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(text), "{")) {
    return ManifestError(path, "version",
                         "a store format 1 (JSON) manifest, which this code no longer reads; "
                         "remove the directory to harvest it again");
  }
  ActivationStoreManifest m;
  if (absl::Status parsed = ParseTextProto(text, path, &m); !parsed.ok()) {
    return ManifestError(path, "(file)",
                         absl::StrCat("not a valid ActivationStoreManifest: ", parsed.message()));
  }
  if (m.version() != kStoreFormatVersion) {
    return ManifestError(path, "version",
                         absl::StrCat("unsupported store format version ", m.version(),
                                      " (this code reads ", kStoreFormatVersion, ")"));
  }
  if (m.manifest_sha256().empty()) {
    if (!allow_missing_checksum) {
      return ManifestError(path, "manifest_sha256",
                           "missing (written by an older saelab); rerun the harvest to verify "
                           "the chunks and rewrite the manifest");
    }
  } else if (m.manifest_sha256() != ManifestSha256(m)) {
    return ManifestError(path, "manifest_sha256",
                         "does not match the manifest's contents (the manifest was edited or is "
                         "corrupt); remove the store directory and harvest it again");
  }
  if (m.key_sha256() != StoreKeySha256(m.key())) {
    return ManifestError(path, "key_sha256",
                         "does not match the key (the manifest was edited or is corrupt)");
  }
  if (m.d() < 1) return ManifestError(path, "d", absl::StrCat("must be >= 1, got ", m.d()));
  if (m.contexts_per_chunk() < 1) {
    return ManifestError(path, "contexts_per_chunk",
                         absl::StrCat("must be >= 1, got ", m.contexts_per_chunk()));
  }
  // The key's numbers come from the file too: check them before any
  // arithmetic on them (a crafted manifest overflowed int64 below;
  // fuzz/crashes/store_manifest/).
  const ActivationStoreKey& key = m.key();
  if (key.context_begin() < 0 || key.context_end() < key.context_begin()) {
    return ManifestError(path, "key.context_begin",
                         absl::StrCat("[", key.context_begin(), ", ", key.context_end(),
                                      ") is not a range of context indices"));
  }
  if (key.context_length() < 1) {
    return ManifestError(path, "key.context_length",
                         absl::StrCat("must be >= 1, got ", key.context_length()));
  }
  if (m.rows_per_context() != RowsPerContext(key)) {
    return ManifestError(path, "rows_per_context", "does not match the key");
  }
  int64_t num_rows = 0;
  if (__builtin_mul_overflow(key.context_end() - key.context_begin(), m.rows_per_context(),
                             &num_rows) ||
      m.num_rows() != num_rows) {
    return ManifestError(path, "num_rows", "does not match the key's context range");
  }
  if (m.complete() && m.stats().mean_size() != m.d()) {
    return ManifestError(path, "stats.mean",
                         absl::StrCat("has ", m.stats().mean_size(), " values, d is ", m.d()));
  }
  return m;
}

}  // namespace saelab
