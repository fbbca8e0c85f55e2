#include "data/text/token_shard.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/sealed_file.h"
#include "harness/status_macros.h"

// Offsets and ids are stored little-endian and read in place from the map.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "token shards assume a little-endian host");

namespace saelab {
namespace {

constexpr SealedFormat kFormat{"SAELTOKS", 2, "token shard"};
// Header slots (SealedFields).
constexpr int kIntTokenBytes = 0, kIntVocab = 1, kIntTokens = 2, kIntDocs = 3;
constexpr int kTextTokenizer = 0, kTextCorpus = 1, kTextSplit = 2;

template <typename T>
void Put(unsigned char* out, size_t offset, T value) {
  std::memcpy(out + offset, &value, sizeof(T));
}

int TokenBytesFor(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

absl::Status CheckTextField(absl::string_view name, const std::string& value) {
  if (value.size() > SealedFields::kTextSize || value.find('\0') != std::string::npos) {
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

  SealedFileWriter writer(kFormat, payload_size);
  unsigned char* payload = writer.payload();
  size_t at = 0;
  int64_t offset = 0;
  Put<int64_t>(payload, at, 0);
  for (const std::vector<int32_t>& doc : documents) {
    offset += static_cast<int64_t>(doc.size());
    at += sizeof(int64_t);
    Put<int64_t>(payload, at, offset);
  }
  at = offsets_size;
  for (size_t d = 0; d < documents.size(); ++d) {
    for (size_t i = 0; i < documents[d].size(); ++i) {
      const int32_t id = documents[d][i];
      if (id < 0 || id >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token shard ", path, ": document ", d, " position ", i, " has id ", id,
                         " outside [0, vocab_size=", vocab_size, ")"));
      }
      if (token_bytes == 2) {
        Put<uint16_t>(payload, at, static_cast<uint16_t>(id));
      } else {
        Put<uint32_t>(payload, at, static_cast<uint32_t>(id));
      }
      at += token_bytes;
    }
  }
  writer.fields().ints[kIntTokenBytes] = token_bytes;
  writer.fields().ints[kIntVocab] = vocab_size;
  writer.fields().ints[kIntTokens] = num_tokens;
  writer.fields().ints[kIntDocs] = num_documents;
  writer.fields().texts[kTextTokenizer] = key.tokenizer_sha256;
  writer.fields().texts[kTextCorpus] = key.corpus_sha256;
  writer.fields().texts[kTextSplit] = key.split;
  if (const size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  }
  return writer.Write(path).status();
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
  TokenShard shard;
  ASSIGN_OR_RETURN(shard.file_, SealedFile::Open(path, kFormat, /*verify_payload=*/true));
  const SealedFile& file = shard.file_;
  auto error = [&](absl::string_view field, absl::string_view what) {
    return file.Error(field, what);
  };
  const SealedFields& fields = file.fields();
  shard.vocab_size_ = fields.ints[kIntVocab];
  shard.num_tokens_ = fields.ints[kIntTokens];
  shard.num_documents_ = fields.ints[kIntDocs];
  const int64_t token_bytes = fields.ints[kIntTokenBytes];
  if (shard.vocab_size_ < 1 || shard.vocab_size_ > (int64_t{1} << 32)) {
    return error("vocab_size", absl::StrCat("out of range: ", shard.vocab_size_));
  }
  if (token_bytes != TokenBytesFor(shard.vocab_size_)) {
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
  if (file.payload_size() != payload_size) {
    return error("payload", absl::StrCat(file.payload_size(), " bytes, but num_documents and ",
                                         "num_tokens need ", payload_size));
  }
  shard.sha256_ = file.payload_sha256();
  shard.key_.tokenizer_sha256 = fields.texts[kTextTokenizer];
  shard.key_.corpus_sha256 = fields.texts[kTextCorpus];
  shard.key_.split = fields.texts[kTextSplit];
  shard.offsets_ = reinterpret_cast<const int64_t*>(file.payload());
  shard.tokens_ = file.payload() + offsets_size;

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
      Log("token shard %s: reusing (%d tokens, %d documents)", path, existing->num_tokens(),
          existing->num_documents());
      return existing;
    }
  }
  Log("token shard %s: building (%s)", path, reason);
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
