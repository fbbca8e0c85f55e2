// Fuzzes the token shard reader (data/text/token_shard.h TokenShard::Open):
// the sealed-file header (magic, version, sizes, checksums) and the shard's
// own fields, offsets and ids, read in place from a memory map.
//
// Input: one flags byte, then the file. With flag bit 0 the target rewrites
// both checksums first (fuzz_support.h ResealForFuzzing), so that mutations
// reach the field checks behind them instead of all failing the header
// checksum; without it the file is opened as it is.
//
// Asserts, beyond "no crash" (no read outside the mapping):
//  - errors name the file;
//  - an opened shard is what its header says: documents tile [0, num_tokens),
//    every id is < vocab_size, PackContexts gives the documented shape;
//  - it round-trips: WriteTokenShard of its documents and key opens again
//    with the same payload sha256.
#include <cstddef>
#include <cstdint>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "data/text/token_shard.h"
#include "fuzz/fuzz_support.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = saelab::fuzz::ScratchPath("shard.tokens");
  static const std::string rewritten = saelab::fuzz::ScratchPath("shard-rewritten.tokens");
  if (size < 1) return 0;
  const bool reseal = data[0] & 1;
  std::string bytes(saelab::fuzz::AsStringView(data + 1, size - 1));
  if (reseal) saelab::fuzz::ResealForFuzzing(&bytes);
  saelab::fuzz::WriteFileOrDie(path, bytes);

  absl::StatusOr<saelab::TokenShard> shard = saelab::TokenShard::Open(path);
  CheckErrorNames(shard.status(), path, "TokenShard::Open");
  if (!shard.ok()) return 0;

  std::vector<std::vector<int32_t>> documents;
  int64_t tokens = 0;
  for (int64_t d = 0; d < shard->num_documents(); ++d) {
    FuzzCheck(shard->document_begin(d) == tokens, "documents do not tile the tokens");
    documents.push_back(shard->Document(d));
    tokens += static_cast<int64_t>(documents.back().size());
    for (int32_t id : documents.back()) {
      FuzzCheck(id >= 0 && id < shard->vocab_size(),
                absl::StrCat("an opened shard holds id ", id, ", vocab_size ",
                             shard->vocab_size()));
    }
  }
  FuzzCheck(tokens == shard->num_tokens() && shard->document_begin(shard->num_documents()) == tokens,
            "the documents do not add up to num_tokens");

  constexpr int64_t kContextLength = 5;
  absl::StatusOr<torch::Tensor> contexts =
      saelab::PackContexts(*shard, kContextLength, 0, 0, /*max_contexts=*/64);
  FuzzCheck(contexts.ok(), absl::StrCat("PackContexts fails: ", contexts.status().ToString()));
  const int64_t expected =
      std::min<int64_t>(64, (shard->num_tokens() + shard->num_documents()) / (kContextLength - 1));
  FuzzCheck(contexts->dim() == 2 && contexts->size(0) == expected &&
                contexts->size(1) == kContextLength,
            "PackContexts gives the wrong shape");

  const absl::Status written =
      saelab::WriteTokenShard(rewritten, shard->key(), shard->vocab_size(), documents);
  FuzzCheck(written.ok(), absl::StrCat("an opened shard does not write back: ", written.ToString()));
  absl::StatusOr<saelab::TokenShard> again = saelab::TokenShard::Open(rewritten);
  FuzzCheck(again.ok() && again->sha256() == shard->sha256() && again->key() == shard->key(),
            "the rewritten shard differs");
  return 0;
}
