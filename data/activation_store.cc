#include "data/activation_store.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <random>
#include <utility>

#include <c10/util/Half.h>
#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "harness/file_io.h"
#include "harness/mapped_file.h"
#include "harness/progress.h"
#include "harness/seed.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"

// Chunk payloads are little-endian values read in place from the map.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the activation store assumes a little-endian host");

namespace saelab {

// A chunk file mapped read-only. Unmapped when the last ActivationStore copy
// lets go.
struct ActivationChunk {
  MappedFile file;
  const unsigned char* payload = nullptr;  // into file, after the header
  int64_t rows = 0;
};

namespace {

constexpr char kChunkMagic[8] = {'S', 'A', 'E', 'L', 'A', 'C', 'T', 'S'};
constexpr uint32_t kChunkVersion = 1;
constexpr size_t kHeaderSize = 512;
constexpr size_t kOffDtype = 12, kOffIndex = 16, kOffRows = 24, kOffD = 32;
constexpr size_t kOffKeySha = 40, kOffPayloadSha = 104, kOffHeaderSha = 448;
constexpr int kManifestVersion = 1;
constexpr char kManifestFormat[] = "saelab activation store";

size_t ElementSize(StoreDtype dtype) { return dtype == StoreDtype::kFloat32 ? 4 : 2; }

torch::ScalarType TorchDtype(StoreDtype dtype) {
  switch (dtype) {
    case StoreDtype::kFloat32:
      return torch::kFloat;
    case StoreDtype::kFloat16:
      return torch::kHalf;
    case StoreDtype::kBFloat16:
      return torch::kBFloat16;
  }
  return torch::kFloat;
}

absl::StatusOr<StoreDtype> ParseDtype(absl::string_view name) {
  for (StoreDtype dtype : {StoreDtype::kFloat32, StoreDtype::kFloat16, StoreDtype::kBFloat16}) {
    if (name == StoreDtypeName(dtype)) return dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", name, "\""));
}

std::string ChunkName(int64_t index) { return absl::StrFormat("chunk-%05d.bin", index); }

template <typename T>
T Get(const unsigned char* data, size_t offset) {
  T value;
  std::memcpy(&value, data + offset, sizeof(T));
  return value;
}

template <typename T>
void Put(std::string& out, size_t offset, T value) {
  std::memcpy(&out[offset], &value, sizeof(T));
}

// Converts `n` stored values to float32.
void ToFloat(const unsigned char* src, StoreDtype dtype, int64_t n, float* dst) {
  switch (dtype) {
    case StoreDtype::kFloat32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case StoreDtype::kFloat16:
      for (int64_t i = 0; i < n; ++i) {
        dst[i] = c10::detail::fp16_ieee_to_fp32_value(Get<uint16_t>(src, 2 * i));
      }
      return;
    case StoreDtype::kBFloat16:
      // bfloat16 is the top half of a float32.
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = static_cast<uint32_t>(Get<uint16_t>(src, 2 * i)) << 16;
        std::memcpy(dst + i, &bits, sizeof(float));
      }
      return;
  }
}

// What a chunk file must hold to belong to a store.
struct ChunkExpectation {
  int64_t index = 0;
  int64_t rows = 0;
  int64_t d = 0;
  StoreDtype dtype = StoreDtype::kFloat32;
  std::string key_sha256;
};

absl::Status ChunkError(const std::string& path, absl::string_view field, absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("activation store chunk ", path, ": ", field, ": ", what));
}

// Maps and validates a chunk file's header and size against `want`; with
// `verify`, also hashes the payload and checks it against the header (and
// returns the hash in *payload_sha256). NotFound if the file is missing.
absl::StatusOr<std::shared_ptr<const ActivationChunk>> MapChunk(const std::string& path,
                                                                const ChunkExpectation& want,
                                                                bool verify,
                                                                std::string* payload_sha256) {
  auto chunk = std::make_shared<ActivationChunk>();
  ASSIGN_OR_RETURN(chunk->file, MappedFile::Open(path, "activation store chunk"));
  const size_t size = chunk->file.size();
  if (size < kHeaderSize) {
    return ChunkError(
        path, "header",
        absl::StrCat("file truncated: ", size, " bytes, the header alone is ", kHeaderSize));
  }
  const unsigned char* data = chunk->file.data();
  if (std::memcmp(data, kChunkMagic, sizeof(kChunkMagic)) != 0) {
    return ChunkError(path, "magic", "not an activation store chunk (expected \"SAELACTS\")");
  }
  const std::string header_sha =
      Sha256Hex(absl::string_view(reinterpret_cast<const char*>(data), kOffHeaderSha));
  if (std::memcmp(data + kOffHeaderSha, header_sha.data(), 64) != 0) {
    return ChunkError(path, "header_sha256", "header checksum mismatch (the header is corrupt)");
  }
  if (Get<uint32_t>(data, 8) != kChunkVersion) {
    return ChunkError(path, "version",
                      absl::StrCat("unsupported version ", Get<uint32_t>(data, 8)));
  }
  const std::string key_sha(reinterpret_cast<const char*>(data + kOffKeySha), 64);
  if (key_sha != want.key_sha256) {
    return ChunkError(
        path, "key_sha256",
        absl::StrCat("chunk belongs to store key ", key_sha, ", expected ", want.key_sha256));
  }
  struct Field {
    const char* name;
    int64_t got, want;
  };
  for (const Field& f :
       {Field{"dtype", Get<uint32_t>(data, kOffDtype), static_cast<int64_t>(want.dtype)},
        Field{"chunk_index", Get<int64_t>(data, kOffIndex), want.index},
        Field{"rows", Get<int64_t>(data, kOffRows), want.rows},
        Field{"d", Get<int64_t>(data, kOffD), want.d}}) {
    if (f.got != f.want) {
      return ChunkError(path, f.name, absl::StrCat("is ", f.got, ", expected ", f.want));
    }
  }
  const size_t payload_size = static_cast<size_t>(want.rows * want.d) * ElementSize(want.dtype);
  if (size < kHeaderSize + payload_size) {
    return ChunkError(
        path, "payload",
        absl::StrCat("file truncated: ", size, " bytes, expected ", kHeaderSize + payload_size));
  }
  if (size > kHeaderSize + payload_size) {
    return ChunkError(
        path, "payload",
        absl::StrCat("trailing bytes: ", size, " bytes, expected ", kHeaderSize + payload_size));
  }
  chunk->payload = data + kHeaderSize;
  chunk->rows = want.rows;
  if (verify) {
    const std::string sha =
        Sha256Hex(absl::string_view(reinterpret_cast<const char*>(chunk->payload), payload_size));
    if (std::memcmp(data + kOffPayloadSha, sha.data(), 64) != 0) {
      return ChunkError(
          path, "payload_sha256",
          absl::StrCat("checksum mismatch: header says ",
                       std::string(reinterpret_cast<const char*>(data + kOffPayloadSha), 64),
                       ", payload hashes to ", sha));
    }
    if (payload_sha256 != nullptr) *payload_sha256 = sha;
  }
  return std::shared_ptr<const ActivationChunk>(std::move(chunk));
}

// The whole chunk file for `values` ([rows, d] in the store dtype, contiguous).
std::string ChunkFile(const torch::Tensor& values, const ChunkExpectation& want, std::string* sha) {
  const size_t payload_size = static_cast<size_t>(values.numel()) * values.element_size();
  std::string file(kHeaderSize + payload_size, '\0');
  std::memcpy(&file[kHeaderSize], values.data_ptr(), payload_size);
  *sha = Sha256Hex(absl::string_view(file.data() + kHeaderSize, payload_size));
  std::memcpy(&file[0], kChunkMagic, sizeof(kChunkMagic));
  Put<uint32_t>(file, 8, kChunkVersion);
  Put<uint32_t>(file, kOffDtype, static_cast<uint32_t>(want.dtype));
  Put<int64_t>(file, kOffIndex, want.index);
  Put<int64_t>(file, kOffRows, want.rows);
  Put<int64_t>(file, kOffD, want.d);
  std::memcpy(&file[kOffKeySha], want.key_sha256.data(), 64);
  std::memcpy(&file[kOffPayloadSha], sha->data(), 64);
  const std::string header_sha = Sha256Hex(absl::string_view(file.data(), kOffHeaderSha));
  std::memcpy(&file[kOffHeaderSha], header_sha.data(), 64);
  return file;
}

// ---- manifest ----

struct ManifestChunk {
  std::string file;
  int64_t rows = 0;
  std::string sha256;
};

struct Manifest {
  ActivationStoreKey key;
  std::string key_sha256;
  int64_t d = 0;
  int64_t contexts_per_chunk = 0;
  int64_t rows_per_context = 0;
  int64_t num_rows = 0;
  std::vector<ManifestChunk> chunks;
  bool complete = false;
  std::vector<double> mean;
  double mean_norm = 0;
};

nlohmann::json KeyToJson(const ActivationStoreKey& key) {
  return {{"model_sha256", key.model_sha256},   {"hook_name", key.hook_name},
          {"shard_sha256", key.shard_sha256},   {"context_begin", key.context_begin},
          {"context_end", key.context_end},     {"context_length", key.context_length},
          {"dtype", StoreDtypeName(key.dtype)}, {"drop_bos", key.drop_bos}};
}

std::string ManifestText(const Manifest& m) {
  nlohmann::json chunks = nlohmann::json::array();
  for (const ManifestChunk& c : m.chunks) {
    chunks.push_back({{"file", c.file}, {"rows", c.rows}, {"sha256", c.sha256}});
  }
  nlohmann::json j = {{"format", kManifestFormat},
                      {"version", kManifestVersion},
                      {"key", KeyToJson(m.key)},
                      {"key_sha256", m.key_sha256},
                      {"d", m.d},
                      {"contexts_per_chunk", m.contexts_per_chunk},
                      {"rows_per_context", m.rows_per_context},
                      {"num_rows", m.num_rows},
                      {"chunks", chunks},
                      {"complete", m.complete}};
  if (m.complete) j["stats"] = {{"mean", m.mean}, {"mean_norm", m.mean_norm}};
  return j.dump(1) + "\n";
}

absl::Status ManifestError(const std::string& path, absl::string_view field,
                           absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("activation store manifest ", path, ": ", field, ": ", what));
}

// Typed field reads; errors name the manifest and the field.
// `name` may be dotted ("key.hook_name", "chunks[c].rows"): the last part is
// looked up in `object`, the whole is named in errors.
absl::StatusOr<const nlohmann::json*> Field(const nlohmann::json& object, const std::string& path,
                                            const std::string& name) {
  if (!object.is_object()) return ManifestError(path, name, "parent is not an object");
  const size_t dot = name.rfind('.');
  auto it = object.find(dot == std::string::npos ? name : name.substr(dot + 1));
  if (it == object.end()) return ManifestError(path, name, "missing");
  return &*it;
}
absl::StatusOr<int64_t> IntField(const nlohmann::json& object, const std::string& path,
                                 const std::string& name) {
  ASSIGN_OR_RETURN(const nlohmann::json* v, Field(object, path, name));
  if (!v->is_number_integer()) return ManifestError(path, name, "not an integer");
  return v->get<int64_t>();
}
absl::StatusOr<std::string> StringField(const nlohmann::json& object, const std::string& path,
                                        const std::string& name) {
  ASSIGN_OR_RETURN(const nlohmann::json* v, Field(object, path, name));
  if (!v->is_string()) return ManifestError(path, name, "not a string");
  return v->get<std::string>();
}
absl::StatusOr<bool> BoolField(const nlohmann::json& object, const std::string& path,
                               const std::string& name) {
  ASSIGN_OR_RETURN(const nlohmann::json* v, Field(object, path, name));
  if (!v->is_boolean()) return ManifestError(path, name, "not a boolean");
  return v->get<bool>();
}

absl::StatusOr<Manifest> ReadManifest(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ManifestError(path, "(file)", "not valid JSON");
  ASSIGN_OR_RETURN(std::string format, StringField(j, path, "format"));
  if (format != kManifestFormat)
    return ManifestError(path, "format", absl::StrCat("is \"", format, "\""));
  ASSIGN_OR_RETURN(int64_t version, IntField(j, path, "version"));
  if (version != kManifestVersion) {
    return ManifestError(path, "version", absl::StrCat("unsupported version ", version));
  }
  Manifest m;
  ASSIGN_OR_RETURN(const nlohmann::json* key, Field(j, path, "key"));
  ASSIGN_OR_RETURN(m.key.model_sha256, StringField(*key, path, "key.model_sha256"));
  ASSIGN_OR_RETURN(m.key.hook_name, StringField(*key, path, "key.hook_name"));
  ASSIGN_OR_RETURN(m.key.shard_sha256, StringField(*key, path, "key.shard_sha256"));
  ASSIGN_OR_RETURN(m.key.context_begin, IntField(*key, path, "key.context_begin"));
  ASSIGN_OR_RETURN(m.key.context_end, IntField(*key, path, "key.context_end"));
  ASSIGN_OR_RETURN(m.key.context_length, IntField(*key, path, "key.context_length"));
  ASSIGN_OR_RETURN(std::string dtype, StringField(*key, path, "key.dtype"));
  absl::StatusOr<StoreDtype> parsed = ParseDtype(dtype);
  if (!parsed.ok()) return ManifestError(path, "key.dtype", parsed.status().message());
  m.key.dtype = *parsed;
  ASSIGN_OR_RETURN(m.key.drop_bos, BoolField(*key, path, "key.drop_bos"));
  ASSIGN_OR_RETURN(m.key_sha256, StringField(j, path, "key_sha256"));
  if (m.key_sha256 != m.key.Sha256()) {
    return ManifestError(path, "key_sha256",
                         "does not match the key (the manifest was edited or is corrupt)");
  }
  ASSIGN_OR_RETURN(m.d, IntField(j, path, "d"));
  ASSIGN_OR_RETURN(m.contexts_per_chunk, IntField(j, path, "contexts_per_chunk"));
  ASSIGN_OR_RETURN(m.rows_per_context, IntField(j, path, "rows_per_context"));
  ASSIGN_OR_RETURN(m.num_rows, IntField(j, path, "num_rows"));
  if (m.d < 1) return ManifestError(path, "d", absl::StrCat("must be >= 1, got ", m.d));
  if (m.contexts_per_chunk < 1) return ManifestError(path, "contexts_per_chunk", "must be >= 1");
  if (m.rows_per_context != m.key.rows_per_context()) {
    return ManifestError(path, "rows_per_context", "does not match the key");
  }
  if (m.num_rows != (m.key.context_end - m.key.context_begin) * m.rows_per_context) {
    return ManifestError(path, "num_rows", "does not match the key's context range");
  }
  ASSIGN_OR_RETURN(const nlohmann::json* chunks, Field(j, path, "chunks"));
  if (!chunks->is_array()) return ManifestError(path, "chunks", "not an array");
  for (const nlohmann::json& c : *chunks) {
    ManifestChunk chunk;
    ASSIGN_OR_RETURN(chunk.file, StringField(c, path, "chunks[c].file"));
    ASSIGN_OR_RETURN(chunk.rows, IntField(c, path, "chunks[c].rows"));
    ASSIGN_OR_RETURN(chunk.sha256, StringField(c, path, "chunks[c].sha256"));
    m.chunks.push_back(std::move(chunk));
  }
  ASSIGN_OR_RETURN(m.complete, BoolField(j, path, "complete"));
  if (m.complete) {
    ASSIGN_OR_RETURN(const nlohmann::json* stats, Field(j, path, "stats"));
    ASSIGN_OR_RETURN(const nlohmann::json* mean, Field(*stats, path, "stats.mean"));
    if (!mean->is_array() || static_cast<int64_t>(mean->size()) != m.d) {
      return ManifestError(path, "stats.mean",
                           absl::StrCat("must be an array of d=", m.d, " numbers"));
    }
    for (const nlohmann::json& v : *mean) {
      if (!v.is_number()) return ManifestError(path, "stats.mean", "not a number");
      m.mean.push_back(v.get<double>());
    }
    ASSIGN_OR_RETURN(const nlohmann::json* norm, Field(*stats, path, "stats.mean_norm"));
    if (!norm->is_number()) return ManifestError(path, "stats.mean_norm", "not a number");
    m.mean_norm = norm->get<double>();
  }
  return m;
}

// FailedPrecondition naming the first differing key field and both values.
absl::Status CompareKeys(const ActivationStoreKey& found, const ActivationStoreKey& wanted,
                         absl::string_view context) {
  auto differ = [&](absl::string_view field, const std::string& a, const std::string& b) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": key field ", field, " is \"", a, "\" there, \"", b, "\" wanted"));
  };
  if (found.model_sha256 != wanted.model_sha256)
    return differ("model_sha256", found.model_sha256, wanted.model_sha256);
  if (found.hook_name != wanted.hook_name)
    return differ("hook_name", found.hook_name, wanted.hook_name);
  if (found.shard_sha256 != wanted.shard_sha256)
    return differ("shard_sha256", found.shard_sha256, wanted.shard_sha256);
  if (found.context_begin != wanted.context_begin) {
    return differ("context_begin", absl::StrCat(found.context_begin),
                  absl::StrCat(wanted.context_begin));
  }
  if (found.context_end != wanted.context_end) {
    return differ("context_end", absl::StrCat(found.context_end), absl::StrCat(wanted.context_end));
  }
  if (found.context_length != wanted.context_length) {
    return differ("context_length", absl::StrCat(found.context_length),
                  absl::StrCat(wanted.context_length));
  }
  if (found.dtype != wanted.dtype)
    return differ("dtype", StoreDtypeName(found.dtype), StoreDtypeName(wanted.dtype));
  if (found.drop_bos != wanted.drop_bos) {
    return differ("drop_bos", found.drop_bos ? "true" : "false",
                  wanted.drop_bos ? "true" : "false");
  }
  return absl::OkStatus();
}

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

// A uniform integer in [0, n) from rng (rejection sampling: unbiased and the
// same on every platform, unlike std::uniform_int_distribution).
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

// A permutation of [0, n) seeded by `seed` (Fisher-Yates).
std::vector<int64_t> Permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(p[i], p[UniformBelow(rng, static_cast<uint64_t>(i) + 1)]);
  }
  return p;
}

}  // namespace

// Activations [contexts, P, d] float32 of `tokens` at `hook`, position 0
// dropped when drop_bos, flattened to [contexts * P, d].
absl::StatusOr<torch::Tensor> HookRows(const Gpt2Model& model, const torch::Tensor& tokens,
                                       const std::string& hook, bool drop_bos) {
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(auto cache, model.RunWithCache(tokens, {hook}));
  torch::Tensor act = cache.at(hook);
  if (drop_bos) act = act.slice(1, 1);
  return act.reshape({-1, act.size(2)});
}

const char* StoreDtypeName(StoreDtype dtype) {
  switch (dtype) {
    case StoreDtype::kFloat32:
      return "float32";
    case StoreDtype::kFloat16:
      return "float16";
    case StoreDtype::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

std::string ActivationStoreKey::Sha256() const { return Sha256Hex(KeyToJson(*this).dump()); }

// ---- ActivationStore ----

absl::StatusOr<ActivationStore> ActivationStore::Open(const std::string& dir,
                                                      const ActivationStoreKey& expected,
                                                      bool verify_checksums) {
  const std::string manifest_path = dir + "/manifest";
  if (!PathExists(manifest_path)) {
    return absl::NotFoundError(absl::StrCat("activation store ", dir, ": no manifest (",
                                            manifest_path, "); harvest it first"));
  }
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(manifest_path));
  RETURN_IF_ERROR(CompareKeys(m.key, expected, absl::StrCat("activation store ", dir)));
  if (!m.complete) {
    return absl::FailedPreconditionError(
        absl::StrCat("activation store ", dir, ": incomplete (", m.chunks.size(),
                     " chunks written; the harvest was interrupted; rerun it to finish)"));
  }
  const int64_t n_contexts = m.key.context_end - m.key.context_begin;
  const int64_t n_chunks = (n_contexts + m.contexts_per_chunk - 1) / m.contexts_per_chunk;
  if (static_cast<int64_t>(m.chunks.size()) != n_chunks) {
    return ManifestError(
        manifest_path, "chunks",
        absl::StrCat("lists ", m.chunks.size(), " chunks, the key needs ", n_chunks));
  }
  ActivationStore store;
  store.dir_ = dir;
  store.key_ = m.key;
  store.d_ = m.d;
  store.num_rows_ = m.num_rows;
  store.chunk_begins_.push_back(0);
  for (int64_t c = 0; c < n_chunks; ++c) {
    const ManifestChunk& mc = m.chunks[c];
    const int64_t contexts = std::min(m.contexts_per_chunk, n_contexts - c * m.contexts_per_chunk);
    ChunkExpectation want{c, contexts * m.rows_per_context, m.d, m.key.dtype, m.key_sha256};
    if (mc.file != ChunkName(c) || mc.rows != want.rows) {
      return ManifestError(manifest_path, absl::StrCat("chunks[", c, "]"),
                           absl::StrCat("is ", mc.file, " with ", mc.rows, " rows, expected ",
                                        ChunkName(c), " with ", want.rows));
    }
    const std::string path = dir + "/" + mc.file;
    std::string sha;
    ASSIGN_OR_RETURN(auto chunk, MapChunk(path, want, verify_checksums, &sha));
    if (verify_checksums && sha != mc.sha256) {
      return ChunkError(
          path, "payload_sha256",
          absl::StrCat("checksum mismatch: manifest says ", mc.sha256, ", file hashes to ", sha));
    }
    store.chunks_.push_back(std::move(chunk));
    store.chunk_begins_.push_back(store.chunk_begins_.back() + want.rows);
  }
  store.mean_ = torch::tensor(m.mean, torch::kDouble).to(torch::kFloat);
  store.mean_norm_ = m.mean_norm;
  return store;
}

std::vector<std::string> ActivationStore::ChunkPaths() const {
  std::vector<std::string> paths;
  for (const auto& chunk : chunks_) paths.push_back(chunk->file.path());
  return paths;
}

void ActivationStore::CopyRow(int64_t r, float* dst) const {
  const int64_t c =
      std::upper_bound(chunk_begins_.begin(), chunk_begins_.end(), r) - chunk_begins_.begin() - 1;
  const size_t element = ElementSize(key_.dtype);
  ToFloat(chunks_[c]->payload + static_cast<size_t>((r - chunk_begins_[c]) * d_) * element,
          key_.dtype, d_, dst);
}

void ActivationStore::Prefetch(int64_t begin, int64_t end) const {
  begin = std::max<int64_t>(begin, 0);
  end = std::min(end, num_rows_);
  const size_t row_bytes = static_cast<size_t>(d_) * ElementSize(key_.dtype);
  for (int64_t c = 0; c < num_chunks(); ++c) {
    const int64_t b = std::max(begin, chunk_begins_[c]), e = std::min(end, chunk_begins_[c + 1]);
    if (b >= e) continue;
    const size_t first = kHeaderSize + static_cast<size_t>(b - chunk_begins_[c]) * row_bytes;
    chunks_[c]->file.WillNeed(first, static_cast<size_t>(e - b) * row_bytes);
  }
}

absl::StatusOr<torch::Tensor> ActivationStore::Rows(int64_t begin, int64_t end) const {
  if (begin < 0 || begin > end || end > num_rows_) {
    return absl::InvalidArgumentError(absl::StrCat("activation store ", dir_, ": rows [", begin,
                                                   ", ", end, ") outside [0, ", num_rows_, ")"));
  }
  torch::Tensor out = torch::empty({end - begin, d_}, torch::kFloat);
  float* dst = out.data_ptr<float>();
  const size_t element = ElementSize(key_.dtype);
  int64_t r = begin;
  while (r < end) {
    const int64_t c =
        std::upper_bound(chunk_begins_.begin(), chunk_begins_.end(), r) - chunk_begins_.begin() - 1;
    const int64_t n = std::min(end, chunk_begins_[c + 1]) - r;
    ToFloat(chunks_[c]->payload + static_cast<size_t>((r - chunk_begins_[c]) * d_) * element,
            key_.dtype, n * d_, dst);
    dst += n * d_;
    r += n;
  }
  return out;
}

// ---- harvesting ----

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
  if (key.context_length != contexts_in.size(1)) {
    return invalid(absl::StrCat("key.context_length ", key.context_length, " != contexts.size(1) ",
                                contexts_in.size(1)));
  }
  if (key.context_begin < 0 || key.context_begin >= key.context_end ||
      key.context_end > contexts_in.size(0)) {
    return invalid(absl::StrCat("context range [", key.context_begin, ", ", key.context_end,
                                ") is empty or outside [0, ", contexts_in.size(0), ")"));
  }
  if (key.rows_per_context() < 1) return invalid("no positions left per context");
  if (options.contexts_per_chunk < 1 || options.batch_contexts < 1) {
    return invalid("contexts_per_chunk and batch_contexts must be >= 1");
  }
  const std::vector<std::string> hooks = model.HookNames();
  if (std::find(hooks.begin(), hooks.end(), key.hook_name) == hooks.end()) {
    return invalid(absl::StrCat("unknown hook_name \"", key.hook_name, "\""));
  }
  const torch::Tensor contexts = contexts_in.to(torch::kLong).contiguous();
  const int64_t d = model.config().n_embd;
  const int64_t n_contexts = key.context_end - key.context_begin;
  const int64_t per_chunk = options.contexts_per_chunk;
  const int64_t n_chunks = (n_contexts + per_chunk - 1) / per_chunk;
  const std::string manifest_path = dir + "/manifest";

  RETURN_IF_ERROR(MakeDirs(dir));
  if (PathExists(manifest_path)) {
    ASSIGN_OR_RETURN(Manifest existing, ReadManifest(manifest_path));
    RETURN_IF_ERROR(CompareKeys(
        existing.key, key,
        absl::StrCat("activation store ", dir, " holds another store; refusing to overwrite it")));
    if (existing.contexts_per_chunk != per_chunk) {
      return absl::FailedPreconditionError(absl::StrCat(
          "activation store ", dir, ": contexts_per_chunk is ", existing.contexts_per_chunk,
          " there, ", per_chunk, " wanted; refusing to overwrite it"));
    }
    if (existing.complete) {
      absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, key);
      if (store.ok()) {
        std::cerr << "activation store " << dir << ": complete, reusing" << std::endl;
        return store;
      }
      std::cerr << "activation store " << dir << ": " << store.status().message()
                << "; redoing the bad chunks" << std::endl;
    }
  }
  RemoveStaleTemporaries(dir);

  Manifest manifest;
  manifest.key = key;
  manifest.key_sha256 = key.Sha256();
  manifest.d = d;
  manifest.contexts_per_chunk = per_chunk;
  manifest.rows_per_context = key.rows_per_context();
  manifest.num_rows = n_contexts * key.rows_per_context();

  Progress progress(absl::StrCat("harvest ", options.label.empty() ? key.hook_name : options.label),
                    n_contexts * key.context_length, "tokens");
  int64_t written = 0, reused = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t first = key.context_begin + c * per_chunk;
    const int64_t last = std::min(first + per_chunk, key.context_end);
    ChunkExpectation want{c, (last - first) * key.rows_per_context(), d, key.dtype,
                          manifest.key_sha256};
    const std::string path = dir + "/" + ChunkName(c);
    std::string sha;
    bool reuse = false;
    if (PathExists(path)) {
      absl::StatusOr<std::shared_ptr<const ActivationChunk>> chunk =
          MapChunk(path, want, true, &sha);
      if (chunk.ok()) {
        reuse = true;
      } else {
        std::cerr << "activation store: redoing " << path << " (" << chunk.status().message() << ")"
                  << std::endl;
      }
    }
    if (!reuse) {
      std::vector<torch::Tensor> pieces;
      for (int64_t b = first; b < last; b += options.batch_contexts) {
        const torch::Tensor tokens =
            contexts.slice(0, b, std::min(b + options.batch_contexts, last));
        ASSIGN_OR_RETURN(torch::Tensor rows, HookRows(model, tokens, key.hook_name, key.drop_bos));
        pieces.push_back(rows.to(TorchDtype(key.dtype)));
        progress.Update((b - key.context_begin + tokens.size(0)) * key.context_length);
      }
      const torch::Tensor values = torch::cat(pieces).contiguous();
      const std::string file = ChunkFile(values, want, &sha);
      RETURN_IF_ERROR(AtomicWriteFile(path, file));
      ++written;
    } else {
      ++reused;
    }
    manifest.chunks.push_back({ChunkName(c), want.rows, sha});
    progress.Update((last - key.context_begin) * key.context_length);
    if (!reuse) {
      RETURN_IF_ERROR(AtomicWriteFile(manifest_path, ManifestText(manifest)));
      if (options.stop_after_chunks >= 0 && written >= options.stop_after_chunks &&
          c + 1 < n_chunks) {
        progress.Finish("stopped early (stop_after_chunks)");
        return absl::AbortedError(absl::StrCat("activation store ", dir, ": stopped after ",
                                               written, " new chunks (stop_after_chunks)"));
      }
    }
  }
  progress.Finish(absl::StrCat(written, " chunks written, ", reused, " reused"));

  // Statistics over every row in chunk order, in float64, by a plain loop
  // (the same sums whatever the thread count).
  std::vector<double> sum(static_cast<size_t>(d), 0.0);
  double norm_sum = 0;
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t c = 0; c < n_chunks; ++c) {
    const ManifestChunk& mc = manifest.chunks[c];
    ChunkExpectation want{c, mc.rows, d, key.dtype, manifest.key_sha256};
    ASSIGN_OR_RETURN(auto chunk, MapChunk(dir + "/" + mc.file, want, false, nullptr));
    const size_t row_bytes = static_cast<size_t>(d) * ElementSize(key.dtype);
    for (int64_t r = 0; r < mc.rows; ++r) {
      ToFloat(chunk->payload + r * row_bytes, key.dtype, d, row.data());
      double sq = 0;
      for (int64_t i = 0; i < d; ++i) {
        sum[i] += row[i];
        sq += static_cast<double>(row[i]) * row[i];
      }
      norm_sum += std::sqrt(sq);
    }
  }
  manifest.mean.resize(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i)
    manifest.mean[i] = sum[i] / static_cast<double>(manifest.num_rows);
  manifest.mean_norm = norm_sum / static_cast<double>(manifest.num_rows);
  manifest.complete = true;
  RETURN_IF_ERROR(AtomicWriteFile(manifest_path, ManifestText(manifest)));
  // Every chunk was hashed above (written or verified).
  return ActivationStore::Open(dir, key, /*verify_checksums=*/false);
}

// ---- StoreActivationSource ----

StoreActivationSource::StoreActivationSource(const ActivationStore& store, uint64_t seed,
                                             int64_t buffer_chunks, int64_t row_begin,
                                             int64_t row_end)
    : store_(store),
      seed_(seed),
      buffer_chunks_(buffer_chunks),
      row_begin_(row_begin),
      row_end_(row_end < 0 ? store.num_rows() : row_end) {
  for (int64_t c = 0; c < store_.num_chunks(); ++c) {
    const int64_t b = std::max(row_begin_, store_.chunk_begin(c));
    const int64_t e = std::min(row_end_, store_.chunk_begin(c + 1));
    if (b < e) blocks_.emplace_back(b, e);
  }
}

absl::Status StoreActivationSource::CheckRange() const {
  if (row_begin_ < 0 || row_begin_ >= row_end_ || row_end_ > store_.num_rows() ||
      buffer_chunks_ < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("StoreActivationSource over ", store_.dir(), ": rows [", row_begin_, ", ",
                     row_end_, ") must be a non-empty range within [0, ", store_.num_rows(),
                     ") and buffer_chunks (", buffer_chunks_, ") >= 1"));
  }
  return absl::OkStatus();
}

const StoreActivationSource::EpochPlan& StoreActivationSource::Plan(int64_t epoch) {
  if (plan_.epoch == epoch) return plan_;
  plan_ = EpochPlan();
  plan_.epoch = epoch;
  const std::vector<int64_t> order = Permutation(
      static_cast<int64_t>(blocks_.size()), DeriveSeed(seed_, absl::StrCat("store/epoch/", epoch)));
  plan_.buffer_begins.push_back(0);
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(buffer_chunks_)) {
    std::vector<int> buffer;
    int64_t rows = 0;
    for (size_t j = i; j < std::min(order.size(), i + static_cast<size_t>(buffer_chunks_)); ++j) {
      buffer.push_back(static_cast<int>(order[j]));
      rows += blocks_[order[j]].second - blocks_[order[j]].first;
    }
    plan_.buffers.push_back(std::move(buffer));
    plan_.buffer_begins.push_back(plan_.buffer_begins.back() + rows);
  }
  return plan_;
}

const std::vector<int64_t>& StoreActivationSource::BufferRowIndices(int64_t epoch, int64_t b) {
  if (cached_epoch_ == epoch && cached_buffer_ == b) return cached_indices_;
  const EpochPlan& plan = Plan(epoch);
  std::vector<int64_t> rows;
  for (int block : plan.buffers[b]) {
    store_.Prefetch(blocks_[block].first, blocks_[block].second);
    for (int64_t r = blocks_[block].first; r < blocks_[block].second; ++r) rows.push_back(r);
  }
  const std::vector<int64_t> perm =
      Permutation(static_cast<int64_t>(rows.size()),
                  DeriveSeed(seed_, absl::StrCat("store/epoch/", epoch, "/buffer/", b)));
  cached_indices_.resize(rows.size());
  for (size_t i = 0; i < perm.size(); ++i) cached_indices_[i] = rows[perm[i]];
  cached_epoch_ = epoch;
  cached_buffer_ = b;
  return cached_indices_;
}

template <typename Fn>
absl::Status StoreActivationSource::ForEachPiece(int64_t begin, int64_t end, Fn&& fn) {
  const int64_t R = epoch_rows();
  int64_t pos = begin;
  while (pos < end) {
    const int64_t epoch = pos / R;
    const int64_t offset = pos % R;
    const EpochPlan& plan = Plan(epoch);
    const int64_t b =
        std::upper_bound(plan.buffer_begins.begin(), plan.buffer_begins.end(), offset) -
        plan.buffer_begins.begin() - 1;
    const int64_t in_buffer = offset - plan.buffer_begins[b];
    const int64_t n = std::min(end - pos, plan.buffer_begins[b + 1] - offset);
    RETURN_IF_ERROR(fn(epoch, b, in_buffer, n));
    pos += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> StoreActivationSource::TrainBatch(int64_t step, int64_t batch_size) {
  RETURN_IF_ERROR(CheckRange());
  if (step < 0 || batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainBatch: step must be >= 0 and batch_size >= 1, got ", step, ", ", batch_size));
  }
  torch::Tensor out = torch::empty({batch_size, store_.d()}, torch::kFloat);
  int64_t filled = 0;
  RETURN_IF_ERROR(
      ForEachPiece(step * batch_size, (step + 1) * batch_size,
                   [&](int64_t epoch, int64_t b, int64_t in_buffer, int64_t n) -> absl::Status {
                     const std::vector<int64_t>& rows = BufferRowIndices(epoch, b);
                     float* dst = out.data_ptr<float>() + filled * store_.d();
                     for (int64_t i = 0; i < n; ++i) {
                       store_.CopyRow(rows[in_buffer + i], dst + i * store_.d());
                     }
                     filled += n;
                     return absl::OkStatus();
                   }));
  return out;
}

absl::StatusOr<torch::Tensor> StoreActivationSource::InitSample(int64_t tokens) {
  return TrainBatch(0, tokens);
}

absl::StatusOr<torch::Tensor> StoreActivationSource::StreamRowIndices(int64_t begin, int64_t end) {
  RETURN_IF_ERROR(CheckRange());
  std::vector<torch::Tensor> pieces;
  RETURN_IF_ERROR(
      ForEachPiece(begin, end, [&](int64_t epoch, int64_t b, int64_t in_buffer, int64_t n) {
        const std::vector<int64_t>& rows = BufferRowIndices(epoch, b);
        pieces.push_back(torch::tensor(
            std::vector<int64_t>(rows.begin() + in_buffer, rows.begin() + in_buffer + n),
            torch::kLong));
        return absl::OkStatus();
      }));
  if (pieces.empty()) return torch::empty({0}, torch::kLong);
  return torch::cat(pieces);
}

// ---- ModelActivationSource ----

ModelActivationSource::ModelActivationSource(const Gpt2Model& model, torch::Tensor contexts,
                                             std::string hook_name, bool drop_bos, uint64_t seed,
                                             int64_t batch_contexts)
    : model_(model),
      contexts_(contexts.to(torch::kLong).contiguous()),
      hook_name_(std::move(hook_name)),
      drop_bos_(drop_bos),
      seed_(seed),
      batch_contexts_(std::max<int64_t>(1, batch_contexts)),
      rows_per_context_(contexts_.dim() == 2 ? contexts_.size(1) - (drop_bos ? 1 : 0) : 0) {}

const std::vector<int64_t>& ModelActivationSource::Order(int64_t epoch) {
  if (order_epoch_ != epoch) {
    order_ = Permutation(contexts_.size(0), DeriveSeed(seed_, absl::StrCat("model/epoch/", epoch)));
    order_epoch_ = epoch;
  }
  return order_;
}

absl::StatusOr<torch::Tensor> ModelActivationSource::TrainBatch(int64_t step, int64_t batch_size) {
  if (contexts_.dim() != 2 || contexts_.size(0) == 0 || rows_per_context_ < 1) {
    return absl::InvalidArgumentError(
        "ModelActivationSource: contexts must be [N >= 1, context_length >= 2]");
  }
  if (step < 0 || batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainBatch: step must be >= 0 and batch_size >= 1, got ", step, ", ", batch_size));
  }
  const int64_t P = rows_per_context_, N = contexts_.size(0);
  const int64_t begin = step * batch_size, end = begin + batch_size;
  // Stream context index k = epoch * N + i covers rows [k P, (k + 1) P).
  const int64_t first = begin / P, last = (end - 1) / P;  // inclusive
  std::vector<int64_t> ids;
  for (int64_t k = first; k <= last; ++k) ids.push_back(Order(k / N)[k % N]);
  std::vector<torch::Tensor> pieces;
  const torch::Tensor index = torch::tensor(ids, torch::kLong);
  for (int64_t i = 0; i < index.size(0); i += batch_contexts_) {
    const torch::Tensor tokens =
        contexts_.index_select(0, index.slice(0, i, std::min(i + batch_contexts_, index.size(0))));
    ASSIGN_OR_RETURN(torch::Tensor rows, HookRows(model_, tokens, hook_name_, drop_bos_));
    pieces.push_back(rows);
  }
  const torch::Tensor all = torch::cat(pieces);
  return all.slice(0, begin - first * P, end - first * P).clone();
}

absl::StatusOr<torch::Tensor> ModelActivationSource::InitSample(int64_t tokens) {
  return TrainBatch(0, tokens);
}

}  // namespace saelab
