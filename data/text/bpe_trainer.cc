#include "data/text/bpe_trainer.h"

#include <algorithm>
#include <array>
#include <queue>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace saelab {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t LeftOf(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t RightOf(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// The training state: distinct pieces as token sequences with their counts,
// and the count of every adjacent pair with the pieces it occurs in.
class Trainer {
 public:
  explicit Trainer(const BpeTrainerOptions& options) : options_(options) {
    const auto& order = Gpt2ByteTokenOrder();
    for (int id = 0; id < 256; ++id) {
      tokens_.emplace_back(1, static_cast<char>(order[id]));
      byte_id_[order[id]] = id;
    }
    for (int id = 0; id < 256; ++id) token_ids_[tokens_[id]] = id;
  }

  void CountPieces(absl::Span<const std::string> documents) {
    absl::flat_hash_map<std::string, int64_t> counts;
    for (const std::string& document : documents) {
      for (absl::string_view piece : Gpt2PreTokenize(document)) ++counts[piece];
    }
    // Sorted, so word indices (and everything after) do not depend on hash order.
    std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
    std::sort(sorted.begin(), sorted.end());
    for (auto& [piece, count] : sorted) {
      if (piece.size() < 2) continue;  // nothing to merge
      std::vector<int32_t> word;
      word.reserve(piece.size());
      for (char b : piece) word.push_back(byte_id_[static_cast<uint8_t>(b)]);
      words_.push_back(std::move(word));
      word_counts_.push_back(count);
    }
    for (int32_t w = 0; w < static_cast<int32_t>(words_.size()); ++w) AddPairs(w, +1, kAnyToken);
    changed_.clear();
    for (const auto& [key, count] : pair_counts_) Push(key, count);
  }

  void Learn() {
    // tokens_ + <|endoftext|> must stay within vocab_size.
    std::vector<int32_t> seen_in(words_.size(), -1);
    while (static_cast<int64_t>(tokens_.size()) + 1 < options_.vocab_size && !heap_.empty()) {
      const Entry top = heap_.top();
      heap_.pop();
      auto it = pair_counts_.find(top.key);
      const int64_t count = it == pair_counts_.end() ? 0 : it->second;
      if (count != top.count) {  // stale: its count changed since it was pushed
        if (count > 0) Push(top.key, count);
        continue;
      }
      if (count < options_.min_pair_count) break;
      const int32_t left = LeftOf(top.key), right = RightOf(top.key);
      std::string merged = tokens_[left] + tokens_[right];
      int32_t result;
      auto existing = token_ids_.find(merged);
      if (existing != token_ids_.end()) {
        result = existing->second;
      } else {
        result = static_cast<int32_t>(tokens_.size());
        token_ids_.emplace(merged, result);
        tokens_.push_back(std::move(merged));
      }
      const int32_t merge_index = static_cast<int32_t>(merges_.size());
      merges_.emplace_back(left, right);

      changed_.clear();
      std::vector<int32_t> occurrences = std::move(pair_words_[top.key]);
      pair_words_.erase(top.key);
      for (int32_t w : occurrences) {
        if (seen_in[w] == merge_index) continue;  // listed twice
        seen_in[w] = merge_index;
        if (!Contains(words_[w], left, right)) continue;  // stale listing
        AddPairs(w, -1, kAnyToken);
        MergeInWord(&words_[w], left, right, result);
        // Pairs without the new token were in the word before: already listed.
        AddPairs(w, +1, result);
      }
      std::sort(changed_.begin(), changed_.end());
      changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
      for (uint64_t key : changed_) {
        auto c = pair_counts_.find(key);
        if (c != pair_counts_.end() && c->second > 0) Push(key, c->second);
      }
    }
  }

  absl::StatusOr<BpeTokenizer> Finish() {
    const std::string eos(BpeTokenizer::kEndOfText);
    if (token_ids_.contains(eos)) {
      return absl::InternalError("a learned token equals <|endoftext|>");
    }
    tokens_.push_back(eos);
    return BpeTokenizer::FromTokens(std::move(tokens_), merges_);
  }

 private:
  struct Entry {
    int64_t count;
    uint64_t key;
  };
  // Heap order: higher count first; ties to the lexicographically smaller
  // (left bytes, right bytes). Token bytes are unique, so this is total.
  struct Later {
    const std::vector<std::string>* tokens;
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.count != b.count) return a.count < b.count;
      const std::string& al = (*tokens)[LeftOf(a.key)];
      const std::string& bl = (*tokens)[LeftOf(b.key)];
      if (al != bl) return al > bl;
      return (*tokens)[RightOf(a.key)] > (*tokens)[RightOf(b.key)];
    }
  };

  void Push(uint64_t key, int64_t count) { heap_.push({count, key}); }

  static bool Contains(const std::vector<int32_t>& word, int32_t left, int32_t right) {
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      if (word[i] == left && word[i + 1] == right) return true;
    }
    return false;
  }

  // Left to right, non-overlapping: what BpeTokenizer does with this merge.
  static void MergeInWord(std::vector<int32_t>* word, int32_t left, int32_t right, int32_t result) {
    std::vector<int32_t>& s = *word;
    size_t out = 0;
    for (size_t i = 0; i < s.size();) {
      if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
        s[out++] = result;
        i += 2;
      } else {
        s[out++] = s[i++];
      }
    }
    s.resize(out);
  }

  static constexpr int32_t kAnyToken = -1;

  // Adds (sign +1) or removes (-1) word w's pairs, weighted by its count;
  // adding lists w under the pairs that contain `listed` (any: kAnyToken).
  void AddPairs(int32_t w, int sign, int32_t listed) {
    const std::vector<int32_t>& word = words_[w];
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const uint64_t key = PairKey(word[i], word[i + 1]);
      pair_counts_[key] += sign * word_counts_[w];
      if (sign > 0 && (listed == kAnyToken || word[i] == listed || word[i + 1] == listed)) {
        pair_words_[key].push_back(w);
      }
      changed_.push_back(key);
    }
  }

  BpeTrainerOptions options_;
  std::vector<std::string> tokens_;
  absl::flat_hash_map<std::string, int32_t> token_ids_;
  std::array<int32_t, 256> byte_id_{};
  std::vector<std::pair<int32_t, int32_t>> merges_;

  std::vector<std::vector<int32_t>> words_;
  std::vector<int64_t> word_counts_;
  absl::flat_hash_map<uint64_t, int64_t> pair_counts_;
  // Words a pair has occurred in (may list a word twice, or one that no
  // longer has the pair; checked when used).
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> pair_words_;
  std::vector<uint64_t> changed_;
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_{Later{&tokens_}};
};

}  // namespace

absl::StatusOr<BpeTokenizer> TrainBpe(absl::Span<const std::string> documents,
                                      const BpeTrainerOptions& options) {
  if (options.vocab_size < 257) {
    return absl::InvalidArgumentError(
        absl::StrCat("BPE vocab_size must be at least 257 (256 bytes + <|endoftext|>), got ",
                     options.vocab_size));
  }
  if (options.min_pair_count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("BPE min_pair_count must be at least 1, got ", options.min_pair_count));
  }
  Trainer trainer(options);
  trainer.CountPieces(documents);
  trainer.Learn();
  return trainer.Finish();
}

}  // namespace saelab
