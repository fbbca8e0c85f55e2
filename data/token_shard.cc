#include "data/token_shard.h"

#include <algorithm>
#include <cstring>
#include <iostream>
#include <utility>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "harness/file_io.h"
#include "harness/mapped_file.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

// Offsets and ids are stored little-endian and read in place from the map.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "token shards assume a little-endian host");

namespace saelab {
namespace {

constexpr char kMagic[8] = {'S', 'A', 'E', 'L', 'T', 'O', 'K', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 512;
constexpr size_t kTextField = 64;
constexpr size_t kOffTokenBytes = 12, kOffVocab = 16, kOffTokens = 24, kOffDocs = 32;
constexpr size_t kOffTokenizer = 40, kOffCorpus = 104, kOffSplit = 168, kOffPayloadSha = 232;
constexpr size_t kOffHeaderSha = 448;

template <typename T>
void Put(std::string& out, size_t offset, T value) {
  std::memcpy(&out[offset], &value, sizeof(T));
}

template <typename T>
T Get(const unsigned char* data, size_t offset) {
  T value;
  std::memcpy(&value, data + offset, sizeof(T));
  return value;
}

// The NUL-padded text field at `offset` (up to the first NUL).
std::string GetText(const unsigned char* data, size_t offset) {
  const char* begin = reinterpret_cast<const char*>(data + offset);
  return std::string(begin, strnlen(begin, kTextField));
}

int TokenBytesFor(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

absl::Status CheckTextField(absl::string_view name, const std::string& value) {
  if (value.size() > kTextField || value.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("token shard key field ", name,
                                                   " must be at most 64 bytes without NUL, got \"",
                                                   value, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

std::string TokenShardKey::DebugString() const {
  return absl::StrCat("{tokenizer_sha256=", tokenizer_sha256, ", corpus_sha256=", corpus_sha256,
                      ", split=", split, "}");
}

absl::Status WriteTokenShard(const std::string& path, const TokenShardKey& key, int64_t vocab_size,
                             const std::vector<std::vector<int32_t>>& documents) {
  RETURN_IF_ERROR(CheckTextField("tokenizer_sha256", key.tokenizer_sha256));
  RETURN_IF_ERROR(CheckTextField("corpus_sha256", key.corpus_sha256));
  RETURN_IF_ERROR(CheckTextField("split", key.split));
  if (vocab_size < 1 || vocab_size > (int64_t{1} << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("token shard ", path, ": vocab_size must be in [1, 2^32], got ", vocab_size));
  }
  const int token_bytes = TokenBytesFor(vocab_size);
  int64_t num_tokens = 0;
  for (const std::vector<int32_t>& doc : documents) num_tokens += static_cast<int64_t>(doc.size());
  const int64_t num_documents = static_cast<int64_t>(documents.size());
  const size_t offsets_size = sizeof(int64_t) * static_cast<size_t>(num_documents + 1);
  const size_t payload_size = offsets_size + static_cast<size_t>(num_tokens) * token_bytes;

  std::string file(kHeaderSize + payload_size, '\0');
  size_t at = kHeaderSize;
  int64_t offset = 0;
  Put<int64_t>(file, at, 0);
  for (const std::vector<int32_t>& doc : documents) {
    offset += static_cast<int64_t>(doc.size());
    at += sizeof(int64_t);
    Put<int64_t>(file, at, offset);
  }
  at = kHeaderSize + offsets_size;
  for (size_t d = 0; d < documents.size(); ++d) {
    for (size_t i = 0; i < documents[d].size(); ++i) {
      const int32_t id = documents[d][i];
      if (id < 0 || id >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token shard ", path, ": document ", d, " position ", i, " has id ", id,
                         " outside [0, vocab_size=", vocab_size, ")"));
      }
      if (token_bytes == 2) {
        Put<uint16_t>(file, at, static_cast<uint16_t>(id));
      } else {
        Put<uint32_t>(file, at, static_cast<uint32_t>(id));
      }
      at += token_bytes;
    }
  }
  const std::string payload_sha =
      Sha256Hex(absl::string_view(file.data() + kHeaderSize, payload_size));

  std::memcpy(&file[0], kMagic, sizeof(kMagic));
  Put<uint32_t>(file, 8, kVersion);
  Put<uint32_t>(file, kOffTokenBytes, static_cast<uint32_t>(token_bytes));
  Put<int64_t>(file, kOffVocab, vocab_size);
  Put<int64_t>(file, kOffTokens, num_tokens);
  Put<int64_t>(file, kOffDocs, num_documents);
  std::memcpy(&file[kOffTokenizer], key.tokenizer_sha256.data(), key.tokenizer_sha256.size());
  std::memcpy(&file[kOffCorpus], key.corpus_sha256.data(), key.corpus_sha256.size());
  std::memcpy(&file[kOffSplit], key.split.data(), key.split.size());
  std::memcpy(&file[kOffPayloadSha], payload_sha.data(), kTextField);
  const std::string header_sha = Sha256Hex(absl::string_view(file.data(), kOffHeaderSha));
  std::memcpy(&file[kOffHeaderSha], header_sha.data(), kTextField);
  if (const size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  }
  return AtomicWriteFile(path, file);
}

TokenShard::TokenShard(TokenShard&& other) noexcept { *this = std::move(other); }

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this == &other) return *this;
  file_ = std::move(other.file_);
  key_ = std::move(other.key_);
  vocab_size_ = other.vocab_size_;
  num_tokens_ = other.num_tokens_;
  num_documents_ = other.num_documents_;
  sha256_ = std::move(other.sha256_);
  token_bytes_ = other.token_bytes_;
  offsets_ = std::exchange(other.offsets_, nullptr);
  tokens_ = std::exchange(other.tokens_, nullptr);
  return *this;
}

TokenShard::~TokenShard() = default;

absl::StatusOr<TokenShard> TokenShard::Open(const std::string& path) {
  auto error = [&](absl::string_view field, absl::string_view what) {
    return absl::DataLossError(absl::StrCat("token shard ", path, ": ", field, ": ", what));
  };
  TokenShard shard;
  ASSIGN_OR_RETURN(shard.file_, MappedFile::Open(path, "token shard"));
  const size_t size = shard.file_.size();
  if (size < kHeaderSize) {
    return error("header", absl::StrCat("file truncated: ", size, " bytes, the header alone is ",
                                        kHeaderSize));
  }
  const unsigned char* data = shard.file_.data();

  if (std::memcmp(data, kMagic, sizeof(kMagic)) != 0) {
    return error("magic", "not a token shard (expected \"SAELTOKS\")");
  }
  const std::string header_sha =
      Sha256Hex(absl::string_view(reinterpret_cast<const char*>(data), kOffHeaderSha));
  if (std::memcmp(data + kOffHeaderSha, header_sha.data(), kTextField) != 0) {
    return error("header_sha256", "header checksum mismatch (the header is corrupt)");
  }
  const uint32_t version = Get<uint32_t>(data, 8);
  if (version != kVersion) {
    return error("version", absl::StrCat("unsupported format version ", version,
                                         " (this code reads ", kVersion, ")"));
  }
  shard.vocab_size_ = Get<int64_t>(data, kOffVocab);
  shard.num_tokens_ = Get<int64_t>(data, kOffTokens);
  shard.num_documents_ = Get<int64_t>(data, kOffDocs);
  const uint32_t token_bytes = Get<uint32_t>(data, kOffTokenBytes);
  if (shard.vocab_size_ < 1 || shard.vocab_size_ > (int64_t{1} << 32)) {
    return error("vocab_size", absl::StrCat("out of range: ", shard.vocab_size_));
  }
  if (token_bytes != static_cast<uint32_t>(TokenBytesFor(shard.vocab_size_))) {
    return error("dtype", absl::StrCat("token width ", token_bytes,
                                       " bytes does not match vocab_size ", shard.vocab_size_));
  }
  shard.token_bytes_ = static_cast<int>(token_bytes);
  // Bounds keep the size arithmetic below far from overflow.
  if (shard.num_tokens_ < 0 || shard.num_tokens_ > (int64_t{1} << 40)) {
    return error("num_tokens", absl::StrCat("out of range: ", shard.num_tokens_));
  }
  if (shard.num_documents_ < 0 || shard.num_documents_ > (int64_t{1} << 40)) {
    return error("num_documents", absl::StrCat("out of range: ", shard.num_documents_));
  }
  const size_t offsets_size = sizeof(int64_t) * static_cast<size_t>(shard.num_documents_ + 1);
  const size_t payload_size = offsets_size + static_cast<size_t>(shard.num_tokens_) * token_bytes;
  if (size < kHeaderSize + payload_size) {
    return error("payload", absl::StrCat("file truncated: ", size, " bytes, header promises ",
                                         kHeaderSize + payload_size));
  }
  if (size > kHeaderSize + payload_size) {
    return error("payload", absl::StrCat("trailing bytes: ", size, " bytes, header promises ",
                                         kHeaderSize + payload_size));
  }
  shard.sha256_ =
      Sha256Hex(absl::string_view(reinterpret_cast<const char*>(data + kHeaderSize), payload_size));
  if (std::memcmp(data + kOffPayloadSha, shard.sha256_.data(), kTextField) != 0) {
    return error("payload_sha256",
                 absl::StrCat("checksum mismatch: header says ", GetText(data, kOffPayloadSha),
                              ", payload hashes to ", shard.sha256_));
  }
  shard.key_.tokenizer_sha256 = GetText(data, kOffTokenizer);
  shard.key_.corpus_sha256 = GetText(data, kOffCorpus);
  shard.key_.split = GetText(data, kOffSplit);
  shard.offsets_ = reinterpret_cast<const int64_t*>(data + kHeaderSize);
  shard.tokens_ = data + kHeaderSize + offsets_size;

  if (shard.offsets_[0] != 0) {
    return error("offsets", absl::StrCat("offsets[0] is ", shard.offsets_[0], ", expected 0"));
  }
  for (int64_t d = 0; d < shard.num_documents_; ++d) {
    if (shard.offsets_[d + 1] < shard.offsets_[d]) {
      return error("offsets", absl::StrCat("not monotone at document ", d));
    }
  }
  if (shard.offsets_[shard.num_documents_] != shard.num_tokens_) {
    return error("offsets", absl::StrCat("last offset ", shard.offsets_[shard.num_documents_],
                                         " != num_tokens ", shard.num_tokens_));
  }
  for (int64_t i = 0; i < shard.num_tokens_; ++i) {
    if (shard.token(i) < 0 || shard.token(i) >= shard.vocab_size_) {
      return error("tokens", absl::StrCat("token ", i, " has id ", shard.token(i),
                                          " outside [0, vocab_size=", shard.vocab_size_, ")"));
    }
  }
  return shard;
}

std::vector<int32_t> TokenShard::Document(int64_t d) const {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(offsets_[d + 1] - offsets_[d]));
  for (int64_t i = offsets_[d]; i < offsets_[d + 1]; ++i) out.push_back(token(i));
  return out;
}

absl::StatusOr<TokenShard> OpenOrBuildTokenShard(
    const std::string& path, const TokenShardKey& key, int64_t vocab_size,
    const std::function<absl::StatusOr<std::vector<std::vector<int32_t>>>()>& build) {
  std::string reason;
  if (!PathExists(path)) {
    reason = "missing";
  } else {
    absl::StatusOr<TokenShard> existing = TokenShard::Open(path);
    if (!existing.ok()) {
      reason = absl::StrCat("unreadable (", existing.status().message(), ")");
    } else if (existing->key() != key) {
      reason =
          absl::StrCat("key ", existing->key().DebugString(), " != wanted ", key.DebugString());
    } else if (existing->vocab_size() != vocab_size) {
      reason = absl::StrCat("vocab_size ", existing->vocab_size(), " != wanted ", vocab_size);
    } else {
      std::cerr << "token shard " << path << ": reusing (" << existing->num_tokens() << " tokens, "
                << existing->num_documents() << " documents)" << std::endl;
      return existing;
    }
  }
  std::cerr << "token shard " << path << ": building (" << reason << ")" << std::endl;
  ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> documents, build());
  RETURN_IF_ERROR(WriteTokenShard(path, key, vocab_size, documents));
  return TokenShard::Open(path);
}

absl::StatusOr<torch::Tensor> PackContexts(const TokenShard& shard, int64_t context_length,
                                           int32_t bos_id, int32_t eos_id, int64_t max_contexts) {
  if (context_length < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("PackContexts: context_length must be >= 2, got ", context_length));
  }
  if (max_contexts < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("PackContexts: max_contexts must be >= -1, got ", max_contexts));
  }
  const int64_t window = context_length - 1;
  // The stream is every token plus one EOS per document.
  int64_t n = (shard.num_tokens() + shard.num_documents()) / window;
  if (max_contexts >= 0) n = std::min(n, max_contexts);
  torch::Tensor out = torch::empty({n, context_length}, torch::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  int64_t doc = 0;
  int64_t pos = shard.num_documents() > 0 ? shard.document_begin(0) : 0;  // next token of doc
  for (int64_t c = 0; c < n; ++c) {
    *dst++ = bos_id;
    for (int64_t j = 0; j < window; ++j) {
      // Every document ends in an EOS, so the stream never runs past the
      // last document while c < n.
      if (pos < shard.document_begin(doc + 1)) {
        *dst++ = shard.token(pos++);
      } else {
        *dst++ = eos_id;
        ++doc;
        pos = shard.document_begin(doc);
      }
    }
  }
  return out;
}

}  // namespace saelab
