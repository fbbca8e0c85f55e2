#include "data/text/bpe_tokenizer.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <queue>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "harness/json_fields.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"

namespace saelab {
namespace {

// Bumped whenever the encoding rules (not the vocabulary) change, e.g. the
// pre-tokenisation; part of Sha256().
constexpr absl::string_view kEncodingRulesTag = "saelab-gpt2-bpe-v1";

// Unicode White_Space: what `\s` means in Python's `regex` (GPT-2's
// reference), in tiktoken's and in Hugging Face's regex engines. RE2's own
// `\s` is ASCII only, so the class is spelled out.
constexpr absl::string_view kSpaceClass =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

bool IsSpace(uint32_t c) {
  return (c >= 0x9 && c <= 0xd) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

// GPT-2's pattern with `\s+(?!\S)|\s+` reduced to `\s+`; the lookahead is
// applied in Gpt2PreTokenize. Leftmost-first (Perl) alternation, as in the
// references.
const RE2& PreTokenizeRegex() {
  static const RE2* const regex = [] {
    const std::string s(kSpaceClass);
    RE2::Options options;
    options.set_encoding(RE2::Options::EncodingUTF8);
    // The Unicode classes make large DFAs; RE2's default 8 MiB budget would
    // fall back to the (much slower) NFA on long texts.
    options.set_max_mem(int64_t{256} << 20);
    options.set_log_errors(false);
    auto* re = new RE2(absl::StrCat("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^", s,
                                    "\\p{L}\\p{N}]+|[", s, "]+"),
                       options);
    return re;
  }();
  return *regex;
}

// Length in bytes of the UTF-8 character that ends `s` (non-empty, valid
// UTF-8: RE2 matched it), and its code point.
size_t LastCharLength(absl::string_view s, uint32_t* code_point) {
  size_t n = 1;
  while (n < s.size() && n < 4 && (static_cast<uint8_t>(s[s.size() - n]) & 0xC0) == 0x80) ++n;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data() + s.size() - n);
  uint32_t c;
  switch (n) {
    case 1:
      c = p[0];
      break;
    case 2:
      c = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
      break;
    case 3:
      c = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
      break;
    default:
      c = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  }
  *code_point = c;
  return n;
}

// Calls fn(piece) for each pre-tokenisation piece of `text`, in order.
template <typename Fn>
void ForEachPiece(absl::string_view text, Fn&& fn) {
  const RE2& re = PreTokenizeRegex();
  const re2::StringPiece input(text.data(), text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    re2::StringPiece found;
    if (!re.Match(input, pos, text.size(), RE2::ANCHOR_START, &found, 1) || found.empty()) {
      // Not valid UTF-8 here: one piece for the run of bytes where no match starts.
      const size_t start = pos;
      do {
        ++pos;
      } while (pos < text.size() &&
               !re.Match(input, pos, text.size(), RE2::ANCHOR_START, nullptr, 0));
      fn(text.substr(start, pos - start));
      continue;
    }
    absl::string_view match(found.data(), found.size());
    uint32_t last = 0;
    const size_t last_length = LastCharLength(match, &last);
    const size_t end = pos + match.size();
    // `\s+(?!\S)`: a whitespace run (the only alternative that can end in
    // whitespace) that is followed by more text gives back its last character,
    // unless that is all of it (then `\s+` takes the one character).
    if (IsSpace(last) && end < text.size() && match.size() > last_length) {
      match.remove_suffix(last_length);
    }
    fn(match);
    pos += match.size();
  }
}

// bytes_to_unicode from openai/gpt-2 src/encoder.py.
struct ByteAlphabet {
  std::array<uint8_t, 256> order;                  // byte of single-byte token id i
  std::array<std::string, 256> encoded;            // byte -> its character, UTF-8
  absl::flat_hash_map<uint32_t, uint8_t> decoded;  // code point -> byte

  ByteAlphabet() {
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::vector<int> cs = bs;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
        bs.push_back(b);
        cs.push_back(256 + n);
        ++n;
      }
    }
    for (int i = 0; i < 256; ++i) {
      order[i] = static_cast<uint8_t>(bs[i]);
      const uint32_t c = static_cast<uint32_t>(cs[i]);
      std::string utf8;
      if (c < 0x80) {
        utf8.push_back(static_cast<char>(c));
      } else {  // < 0x800
        utf8.push_back(static_cast<char>(0xC0 | (c >> 6)));
        utf8.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
      encoded[bs[i]] = utf8;
      decoded[c] = static_cast<uint8_t>(bs[i]);
    }
  }
};

const ByteAlphabet& Alphabet() {
  static const ByteAlphabet* const alphabet = new ByteAlphabet();
  return *alphabet;
}

std::string ToVocabString(absl::string_view bytes) {
  std::string out;
  for (char b : bytes) out += Alphabet().encoded[static_cast<uint8_t>(b)];
  return out;
}

// Inverse of ToVocabString; `what` names the string in errors.
absl::StatusOr<std::string> FromVocabString(absl::string_view s, absl::string_view what) {
  std::string bytes;
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t b0 = static_cast<uint8_t>(s[i]);
    uint32_t c = 0;
    size_t n = 0;
    if (b0 < 0x80) {
      c = b0, n = 1;
    } else if ((b0 & 0xE0) == 0xC0 && i + 1 < s.size()) {
      c = ((b0 & 0x1Fu) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3Fu), n = 2;
    } else {
      // Every character of the alphabet is below U+0800 (two UTF-8 bytes).
      n = 0;
    }
    auto it = n == 0 ? Alphabet().decoded.end() : Alphabet().decoded.find(c);
    if (it == Alphabet().decoded.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: byte %d is not a character of GPT-2's byte alphabet (bytes_to_unicode): "
          "tokens must be written with e.g. 'Ġ' for a space",
          what, i));
    }
    bytes.push_back(static_cast<char>(it->second));
    i += n;
  }
  return bytes;
}

// `s` as a JSON string literal, for error messages. merges.txt lines are raw
// bytes: invalid UTF-8 is shown as U+FFFD (nlohmann-json's default handler
// throws on it, and an uncaught throw from an error message aborted the
// process; fuzz/crashes/tokenizer/).
std::string Quoted(absl::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', /*ensure_ascii=*/false,
                                             nlohmann::json::error_handler_t::replace);
}

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// A merge line's place in its file, for error messages.
struct MergeSource {
  std::string file;        // empty: not from a file
  std::vector<int> lines;  // line of merge i (1-based)
  std::string Where(size_t i) const {
    if (file.empty()) return absl::StrCat("merge ", i);
    return absl::StrCat(file, ":", lines[i]);
  }
};

}  // namespace

std::vector<absl::string_view> Gpt2PreTokenize(absl::string_view text) {
  std::vector<absl::string_view> pieces;
  ForEachPiece(text, [&](absl::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

const std::array<uint8_t, 256>& Gpt2ByteTokenOrder() { return Alphabet().order; }

namespace bpe_internal {

struct Model {
  std::vector<std::string> tokens;  // raw bytes by id
  absl::flat_hash_map<std::string, int32_t> ids;
  std::array<int32_t, 256> byte_id;
  std::vector<std::pair<int32_t, int32_t>> merges;
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  absl::flat_hash_map<uint64_t, Merge> merge_of_pair;
  std::optional<int32_t> eos_id;
  std::string sha256;
  uint64_t id;  // unique per process, never 0: keys the per-thread memos

  const Merge* Find(int32_t left, int32_t right) const {
    auto it = merge_of_pair.find(PairKey(left, right));
    return it == merge_of_pair.end() ? nullptr : &it->second;
  }
};

}  // namespace bpe_internal

using bpe_internal::Model;

namespace {

std::string VocabJsonOf(const Model& model) {
  std::string out = "{";
  for (size_t id = 0; id < model.tokens.size(); ++id) {
    if (id > 0) out += ",";
    absl::StrAppend(&out, Quoted(ToVocabString(model.tokens[id])), ":", id);
  }
  out += "}\n";
  return out;
}

std::string MergesTxtOf(const Model& model) {
  std::string out = "#version: 0.2\n";
  for (const auto& [left, right] : model.merges) {
    absl::StrAppend(&out, ToVocabString(model.tokens[left]), " ",
                    ToVocabString(model.tokens[right]), "\n");
  }
  return out;
}

}  // namespace

BpeTokenizer::BpeTokenizer(std::shared_ptr<const Model> model) : model_(std::move(model)) {}

namespace {

// Merges `syms` in place the way encoder.py's bpe() does: while some adjacent
// pair has a rank, take the lowest-ranked pair and merge all its
// non-overlapping occurrences left to right. Two implementations of the same
// rule: a rescan for short pieces (almost all), a heap for long ones so a
// pathological piece (a megabyte of one letter) stays O(n log n).
void MergeShort(const Model& model, std::vector<int32_t>* syms) {
  std::vector<int32_t>& s = *syms;
  std::vector<int32_t> ranks(s.size());
  auto rank_at = [&](size_t i) {
    const auto* m = model.Find(s[i], s[i + 1]);
    return m == nullptr ? INT32_MAX : m->rank;
  };
  for (size_t i = 0; i + 1 < s.size(); ++i) ranks[i] = rank_at(i);
  while (s.size() > 1) {
    const int32_t best = *std::min_element(ranks.begin(), ranks.begin() + (s.size() - 1));
    if (best == INT32_MAX) break;
    size_t out = 0;
    int32_t result = -1;
    for (size_t i = 0; i < s.size();) {
      if (i + 1 < s.size() && ranks[i] == best) {
        if (result < 0) result = model.Find(s[i], s[i + 1])->result;
        s[out++] = result;
        i += 2;
      } else {
        s[out++] = s[i];
        i += 1;
      }
    }
    s.resize(out);
    for (size_t i = 0; i + 1 < s.size(); ++i) ranks[i] = rank_at(i);
  }
}

void MergeLong(const Model& model, std::vector<int32_t>* syms) {
  std::vector<int32_t>& id = *syms;
  const int32_t n = static_cast<int32_t>(id.size());
  std::vector<int32_t> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Entry {
    int32_t rank, pos, left, right;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto* m = model.Find(id[pos], id[next[pos]]);
    if (m != nullptr) heap.push({m->rank, pos, id[pos], id[next[pos]]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<Entry> batch;
  while (!heap.empty()) {
    // One pass of encoder.py: every occurrence of the lowest-ranked pair, left
    // to right. Pairs the pass creates are new pairs (never this one) and
    // wait for the next pass even if they rank lower.
    const int32_t rank = heap.top().rank;
    batch.clear();
    while (!heap.empty() && heap.top().rank == rank) {
      batch.push_back(heap.top());
      heap.pop();
    }
    for (const Entry& e : batch) {
      const int32_t j = next[e.pos];
      if (!alive[e.pos] || j < 0 || id[e.pos] != e.left || id[j] != e.right) continue;
      id[e.pos] = model.Find(e.left, e.right)->result;
      alive[j] = 0;
      next[e.pos] = next[j];
      if (next[j] >= 0) prev[next[j]] = e.pos;
      push(prev[e.pos]);
      push(e.pos);
    }
  }
  int32_t out = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (alive[i]) id[out++] = id[i];
  }
  id.resize(out);
}

constexpr size_t kLongPiece = 48;

}  // namespace

namespace {

// Memo of piece bytes -> ids. Each thread keeps its own (thread_local), for
// the last few tokenizers it used, so concurrent Encodes never share a lock
// or a cache line: a shared, mutex-guarded memo tripled the CPU time per
// Encode with two threads. A memo that fills up is cleared, which bounds
// memory and changes no result. Freed when the thread exits.
struct Memo {
  static constexpr size_t kMaxEntries = size_t{1} << 17;
  static constexpr size_t kMaxPieceBytes = 256;  // longer pieces are not memoised
  uint64_t model_id = 0;                         // 0: unused slot
  uint64_t last_use = 0;
  absl::flat_hash_map<std::string, std::vector<int32_t>> map;
};

Memo& ThreadMemoFor(uint64_t model_id) {
  static thread_local std::array<Memo, 4> memos;
  static thread_local uint64_t clock = 0;
  Memo* slot = &memos[0];
  for (Memo& memo : memos) {
    if (memo.model_id == model_id) {
      slot = &memo;
      break;
    }
    if (memo.last_use < slot->last_use) slot = &memo;  // least recently used
  }
  if (slot->model_id != model_id) {
    slot->map.clear();
    slot->model_id = model_id;
  }
  slot->last_use = ++clock;
  return *slot;
}

void EncodePiece(const Model& model, Memo& memo, absl::string_view piece,
                 std::vector<int32_t>* ids) {
  if (piece.size() == 1) {
    ids->push_back(model.byte_id[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const bool memoise = piece.size() <= Memo::kMaxPieceBytes;
  if (memoise) {
    auto it = memo.map.find(piece);
    if (it != memo.map.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> syms(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) syms[i] = model.byte_id[static_cast<uint8_t>(piece[i])];
  if (syms.size() < kLongPiece) {
    MergeShort(model, &syms);
  } else {
    MergeLong(model, &syms);
  }
  ids->insert(ids->end(), syms.begin(), syms.end());
  if (memoise) {
    if (memo.map.size() >= Memo::kMaxEntries) memo.map.clear();
    memo.map.emplace(std::string(piece), std::move(syms));
  }
}

}  // namespace

std::vector<int32_t> BpeTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  Memo& memo = ThreadMemoFor(model_->id);
  ForEachPiece(text, [&](absl::string_view piece) { EncodePiece(*model_, memo, piece, &ids); });
  return ids;
}

std::vector<int32_t> BpeTokenizer::EncodeWithSpecialTokens(absl::string_view text) const {
  if (!model_->eos_id.has_value()) return Encode(text);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  Memo& memo = ThreadMemoFor(model_->id);
  bool first = true;
  for (absl::string_view segment : absl::StrSplit(text, kEndOfText)) {
    if (!first) ids.push_back(*model_->eos_id);
    first = false;
    ForEachPiece(segment,
                 [&](absl::string_view piece) { EncodePiece(*model_, memo, piece, &ids); });
  }
  return ids;
}

std::string BpeTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string text;
  for (int32_t id : ids) {
    if (id >= 0 && id < vocab_size()) {
      text += model_->tokens[id];
    } else {
      text += "\xEF\xBF\xBD";  // U+FFFD
    }
  }
  return text;
}

absl::string_view BpeTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return model_->tokens[id];
}

std::optional<int32_t> BpeTokenizer::TokenId(absl::string_view bytes) const {
  auto it = model_->ids.find(bytes);
  if (it == model_->ids.end()) return std::nullopt;
  return it->second;
}

int32_t BpeTokenizer::vocab_size() const { return static_cast<int32_t>(model_->tokens.size()); }

int32_t BpeTokenizer::num_merges() const { return static_cast<int32_t>(model_->merges.size()); }

std::optional<int32_t> BpeTokenizer::eos_id() const { return model_->eos_id; }

const std::string& BpeTokenizer::Sha256() const { return model_->sha256; }

std::string BpeTokenizer::VocabJson() const { return VocabJsonOf(*model_); }

std::string BpeTokenizer::MergesTxt() const { return MergesTxtOf(*model_); }

absl::Status BpeTokenizer::WriteFiles(const std::string& dir) const {
  RETURN_IF_ERROR(MakeDirs(dir));
  RETURN_IF_ERROR(AtomicWriteFile(dir + "/vocab.json", VocabJson()));
  return AtomicWriteFile(dir + "/merges.txt", MergesTxt());
}

namespace {

// Checks and indexes the vocabulary and merges; `vocab_name` and `merges`
// name their origin in errors.
absl::StatusOr<std::shared_ptr<Model>> BuildModel(
    std::vector<std::string> tokens, const std::vector<std::pair<int32_t, int32_t>>& merges,
    absl::string_view vocab_name, const MergeSource& merges_source);

// Parses vocab.json and merges.txt texts (paths name them in errors) and
// builds the model; refuses merges that leave a token unreachable.
absl::StatusOr<std::shared_ptr<Model>> ModelFromFileTexts(const std::string& vocab_text,
                                                          const std::string& vocab_json_path,
                                                          const std::string& merges_text,
                                                          const std::string& merges_txt_path);

}  // namespace

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromTokens(
    std::vector<std::string> tokens, const std::vector<std::pair<int32_t, int32_t>>& merges) {
  MergeSource source;
  ASSIGN_OR_RETURN(std::shared_ptr<Model> model,
                   BuildModel(std::move(tokens), merges, "vocabulary", source));
  return BpeTokenizer(std::move(model));
}

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromDir(const std::string& dir) {
  for (const auto& [vocab_name, merges_name] :
       {std::pair<const char*, const char*>{"vocab.json", "merges.txt"},
        std::pair<const char*, const char*>{"encoder.json", "vocab.bpe"}}) {
    if (!PathExists(absl::StrCat(dir, "/", vocab_name))) continue;
    // Checked against the directory's SHA256SUMS when it has one.
    ASSIGN_OR_RETURN(std::string vocab_text, ReadVerifiedFile(dir, vocab_name));
    ASSIGN_OR_RETURN(std::string merges_text, ReadVerifiedFile(dir, merges_name));
    ASSIGN_OR_RETURN(std::shared_ptr<Model> model,
                     ModelFromFileTexts(vocab_text, absl::StrCat(dir, "/", vocab_name),
                                        merges_text, absl::StrCat(dir, "/", merges_name)));
    return BpeTokenizer(std::move(model));
  }
  return absl::NotFoundError(absl::StrCat(
      dir, ": no tokenizer files (vocab.json + merges.txt, or encoder.json + vocab.bpe)"));
}

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromFiles(const std::string& vocab_json_path,
                                                     const std::string& merges_txt_path) {
  ASSIGN_OR_RETURN(std::string vocab_text, ReadFile(vocab_json_path));
  ASSIGN_OR_RETURN(std::string merges_text, ReadFile(merges_txt_path));
  ASSIGN_OR_RETURN(std::shared_ptr<Model> model,
                   ModelFromFileTexts(vocab_text, vocab_json_path, merges_text, merges_txt_path));
  return BpeTokenizer(std::move(model));
}

namespace {

absl::StatusOr<std::shared_ptr<Model>> ModelFromFileTexts(const std::string& vocab_text,
                                                          const std::string& vocab_json_path,
                                                          const std::string& merges_text,
                                                          const std::string& merges_txt_path) {

  // vocab.json -> tokens by id.
  ASSIGN_OR_RETURN(nlohmann::json vocab, ParseJson(vocab_text, vocab_json_path));
  if (!vocab.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(vocab_json_path, ": expected a JSON object {\"token\": id, ...}"));
  }
  std::vector<std::string> tokens(vocab.size());
  std::vector<std::string> token_names(vocab.size());
  for (const auto& [name, value] : vocab.items()) {
    const std::string where = absl::StrCat(vocab_json_path, ": token ", Quoted(name));
    if (!value.is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": id must be an integer, got ", value.dump()));
    }
    const int64_t id = value.get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(tokens.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": id ", id, " is outside 0..", tokens.size() - 1,
                       " (ids must be 0..N-1 for N tokens, without gaps)"));
    }
    if (!token_names[id].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": id ", id, " is already the id of ", Quoted(token_names[id])));
    }
    ASSIGN_OR_RETURN(tokens[id], FromVocabString(name, where));
    token_names[id] = name;
  }

  // merges.txt -> (left id, right id) by rank.
  std::vector<std::pair<int32_t, int32_t>> merges;
  MergeSource source;
  source.file = merges_txt_path;
  absl::flat_hash_map<std::string, int32_t> id_of_name;
  id_of_name.reserve(token_names.size());
  for (size_t id = 0; id < token_names.size(); ++id) id_of_name[token_names[id]] = id;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(merges_text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && absl::StartsWith(line, "#version")) continue;
    if (line.empty()) continue;
    const std::string where = absl::StrCat(merges_txt_path, ":", line_number);
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected two tokens separated by one space, got ", Quoted(line)));
    }
    int32_t pair[2];
    for (int k = 0; k < 2; ++k) {
      auto it = id_of_name.find(parts[k]);
      if (it == id_of_name.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": token ", Quoted(parts[k]), " is not in ", vocab_json_path));
      }
      pair[k] = it->second;
    }
    merges.emplace_back(pair[0], pair[1]);
    source.lines.push_back(line_number);
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Model> model,
                   BuildModel(std::move(tokens), merges, vocab_json_path, source));
  // In a byte-level BPE vocabulary every token longer than one byte is made
  // by exactly one merge, except special tokens ("<|endoftext|>"). A token
  // that no merge makes means merges.txt lost lines (cut short, say), which
  // would otherwise tokenize differently without any error.
  std::vector<bool> made(model->tokens.size(), false);
  for (const auto& [pair, merge] : model->merge_of_pair) made[merge.result] = true;
  for (size_t id = 0; id < model->tokens.size(); ++id) {
    const std::string& token = model->tokens[id];
    const bool special = absl::StartsWith(token, "<|") && absl::EndsWith(token, "|>");
    if (!made[id] && token.size() > 1 && !special) {
      return absl::InvalidArgumentError(absl::StrCat(
          merges_txt_path, ": no merge makes token ", id, " ", Quoted(ToVocabString(token)),
          " of ", vocab_json_path, " (", merges.size(), " merges for ", model->tokens.size(),
          " tokens): merges.txt is incomplete or belongs to another vocabulary"));
    }
  }
  return model;
}

absl::StatusOr<std::shared_ptr<Model>> BuildModel(
    std::vector<std::string> tokens, const std::vector<std::pair<int32_t, int32_t>>& merges,
    absl::string_view vocab_name, const MergeSource& merges_source) {
  static std::atomic<uint64_t> next_id{1};
  auto model = std::make_shared<Model>();
  model->id = next_id.fetch_add(1);
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > INT32_MAX)
    return absl::InvalidArgumentError(absl::StrCat(vocab_name, ": too many tokens"));
  model->ids.reserve(n);
  for (int64_t id = 0; id < n; ++id) {
    if (tokens[id].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_name, ": token ", id, " is empty"));
    }
    auto [it, inserted] = model->ids.emplace(tokens[id], static_cast<int32_t>(id));
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_name, ": tokens ", it->second, " and ",
                                                     id, " are the same string ",
                                                     Quoted(ToVocabString(tokens[id]))));
    }
  }
  for (int b = 0; b < 256; ++b) {
    auto it = model->ids.find(std::string(1, static_cast<char>(b)));
    if (it == model->ids.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: no token for byte 0x%02x (%s); a byte-level vocabulary needs all 256 bytes",
          vocab_name, b, Quoted(ToVocabString(std::string(1, static_cast<char>(b))))));
    }
    model->byte_id[b] = it->second;
  }
  model->tokens = std::move(tokens);
  model->merge_of_pair.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = merges[rank];
    const std::string where = merges_source.Where(rank);
    if (left < 0 || left >= n || right < 0 || right >= n) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": token id out of range 0..", n - 1));
    }
    const std::string merged = model->tokens[left] + model->tokens[right];
    auto result = model->ids.find(merged);
    if (result == model->ids.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", Quoted(ToVocabString(model->tokens[left])), " + ",
                       Quoted(ToVocabString(model->tokens[right])), " merges to ",
                       Quoted(ToVocabString(merged)), ", which is not in ", vocab_name));
    }
    auto [it, inserted] = model->merge_of_pair.emplace(
        PairKey(left, right), Model::Merge{static_cast<int32_t>(rank), result->second});
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": repeats the merge at ", merges_source.Where(it->second.rank)));
    }
  }
  model->merges = merges;
  auto eos = model->ids.find(BpeTokenizer::kEndOfText);
  if (eos != model->ids.end()) model->eos_id = eos->second;
  // A NUL separates the parts: neither file can contain one.
  model->sha256 = Sha256Hex(absl::StrCat(kEncodingRulesTag, "\n", VocabJsonOf(*model),
                                         absl::string_view("\0", 1), MergesTxtOf(*model)));
  return model;
}

}  // namespace

}  // namespace saelab
