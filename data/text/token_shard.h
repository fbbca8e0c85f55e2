// A tokenized corpus split, written once and then memory-mapped read-only:
// every run that trains or evaluates on the split opens the same file, and
// the OS page cache shares it between concurrent processes.
//
//   TokenShardKey key{tokenizer.sha256(), corpus_sha256, "train"};
//   ASSIGN_OR_RETURN(TokenShard shard,
//                    OpenOrBuildTokenShard(cache_dir + "/train.tokens", key, vocab_size,
//                                          [&] { return TokenizeTrainSplit(); }));
//   ASSIGN_OR_RETURN(torch::Tensor contexts,
//                    PackContexts(shard, /*context_length=*/128, eot, eot));  // [n, 128] int64
//
// File layout: a harness/sealed_file.h file (512-byte header with
// checksums, then the payload), magic "SAELTOKS", version 2. Header fields:
//   ints[0]   token width in bytes: 2 (uint16) if vocab_size <= 65536, else 4 (uint32)
//   ints[1]   vocab_size
//   ints[2]   num_tokens
//   ints[3]   num_documents
//   texts[0]  tokenizer_sha256
//   texts[1]  corpus_sha256
//   texts[2]  split
// Payload (little-endian): document offsets i64 [num_documents + 1]
// (offsets[0] = 0, non-decreasing, offsets[num_documents] = num_tokens),
// then the tokens, num_tokens x the token width. Document d is tokens
// [offsets[d], offsets[d + 1]). Version 1 (the same fields at fixed header
// offsets) is refused, so an old cached shard is rebuilt.
// The payload sha256 identifies the shard's content (TokenShard::sha256(),
// which the activation store keys on).
#ifndef SAELAB_DATA_TEXT_TOKEN_SHARD_H_
#define SAELAB_DATA_TEXT_TOKEN_SHARD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "harness/sealed_file.h"

namespace saelab {

// What a shard was made from. Each field is at most 64 bytes (a sha256 in
// hex fits exactly).
struct TokenShardKey {
  std::string tokenizer_sha256;
  std::string corpus_sha256;
  // Free name of the split ("train", "val", "test", ...).
  std::string split;

  bool operator==(const TokenShardKey& other) const {
    return tokenizer_sha256 == other.tokenizer_sha256 && corpus_sha256 == other.corpus_sha256 &&
           split == other.split;
  }
  bool operator!=(const TokenShardKey& other) const { return !(*this == other); }

  // "{tokenizer_sha256=..., corpus_sha256=..., split=...}" for messages.
  std::string DebugString() const;
};

// Writes `documents` (each a list of ids in [0, vocab_size)) as a shard at
// `path`, atomically (temp file + rename), creating its folder if needed.
// InvalidArgument for a key field
// longer than 64 bytes, vocab_size < 1 or > 2^32, or an id out of range
// (naming the document and position); I/O errors name the path.
absl::Status WriteTokenShard(const std::string& path, const TokenShardKey& key, int64_t vocab_size,
                             const std::vector<std::vector<int32_t>>& documents);

// An open, validated, memory-mapped shard. Movable, not copyable; unmaps on
// destruction. Accessors are const and thread-safe.
class TokenShard {
 public:
  // Maps `path` and validates everything: the sealed file's magic,
  // version, header checksum, size (DataLoss "truncated" when short,
  // "trailing bytes" when long) and payload checksum (DataLoss "checksum");
  // then token width vs vocab_size, the payload size against the header's
  // counts, offsets (monotone, first 0, last num_tokens) and every id <
  // vocab_size. Every error names the path and the field. NotFound if the
  // file does not exist.
  static absl::StatusOr<TokenShard> Open(const std::string& path);

  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;
  ~TokenShard();

  const std::string& path() const { return file_.path(); }
  const TokenShardKey& key() const { return key_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t num_tokens() const { return num_tokens_; }
  int64_t num_documents() const { return num_documents_; }
  // Lowercase hex sha256 of the payload (offsets + tokens).
  const std::string& sha256() const { return sha256_; }

  // Token i of the whole split, 0 <= i < num_tokens() (not checked).
  int32_t token(int64_t i) const {
    return token_bytes_ == 2 ? static_cast<int32_t>(reinterpret_cast<const uint16_t*>(tokens_)[i])
                             : static_cast<int32_t>(reinterpret_cast<const uint32_t*>(tokens_)[i]);
  }
  // First token index of document d, 0 <= d <= num_documents() (not
  // checked); document_begin(num_documents()) == num_tokens().
  int64_t document_begin(int64_t d) const { return offsets_[d]; }
  // A copy of document d's tokens, 0 <= d < num_documents() (not checked).
  std::vector<int32_t> Document(int64_t d) const;

 private:
  TokenShard() = default;

  SealedFile file_;
  TokenShardKey key_;
  int64_t vocab_size_ = 0;
  int64_t num_tokens_ = 0;
  int64_t num_documents_ = 0;
  std::string sha256_;
  int token_bytes_ = 2;
  const int64_t* offsets_ = nullptr;       // into file_
  const unsigned char* tokens_ = nullptr;  // into file_
};

// Opens `path` and reuses it if it opens cleanly and its key and vocab_size
// equal `key` and `vocab_size`; otherwise (missing, different key, corrupt)
// calls build(), writes its documents to `path` and opens the result. Logs
// to std::cerr which of the two happened and why. Errors from build() are
// returned as they are; write/open errors name the path.
absl::StatusOr<TokenShard> OpenOrBuildTokenShard(
    const std::string& path, const TokenShardKey& key, int64_t vocab_size,
    const std::function<absl::StatusOr<std::vector<std::vector<int32_t>>>()>& build);

// Packs the shard into fixed-length contexts as SAELens does: the documents
// are concatenated in order, each followed by `eos_id`; that stream is cut
// into consecutive windows of context_length - 1 tokens, and each window is
// prefixed with `bos_id` (in GPT-2 both are <|endoftext|>). A final partial
// window is dropped, so a document may span two contexts. At most
// max_contexts contexts (-1: all). Returns [n_contexts, context_length]
// int64 (n_contexts may be 0). InvalidArgument if context_length < 2 or
// max_contexts < -1.
absl::StatusOr<torch::Tensor> PackContexts(const TokenShard& shard, int64_t context_length,
                                           int32_t bos_id, int32_t eos_id,
                                           int64_t max_contexts = -1);

}  // namespace saelab

#endif  // SAELAB_DATA_TEXT_TOKEN_SHARD_H_
