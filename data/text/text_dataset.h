// From a CorpusSelection to model inputs: load and hash-check the corpora,
// take one split's documents, tokenize them once into a token shard (reused
// while its key matches), and pack the shard into fixed-length contexts.
//
//   ASSIGN_OR_RETURN(TextDataset text, LoadTextDataset(config.data()));
//   std::vector<std::string> train_texts = text.Texts(Split::kTrain);
//   ASSIGN_OR_RETURN(TokenShard shard,
//                    TokenizeSplit(text, Split::kTrain, tokenizer, dir + "/train.tokshard"));
//   torch::Tensor contexts = PackContexts(shard, 128, eos, eos);   // [N, 128] int64
#ifndef SAELAB_DATA_TEXT_TEXT_DATASET_H_
#define SAELAB_DATA_TEXT_TEXT_DATASET_H_

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/corpus.h"
#include "data/text/text_config.pb.h"
#include "data/text/token_shard.h"
#include "harness/result.pb.h"

namespace saelab {

struct TextDataset {
  std::vector<Corpus> corpora;
  SplitFractions fractions;
  // sha256 over the corpora's names and content hashes and the split
  // fractions: what a token shard of this dataset is keyed by.
  std::string sha256;

  // The texts of `split`, corpus by corpus in selection order, documents in
  // corpus order.
  std::vector<std::string> Texts(Split split) const;
};

// Loads the selected corpora (all known ones when selection.corpora is
// empty), each checked against its pinned content hash. InvalidArgument for
// an unknown corpus name or fractions outside [0, 1) summing to >= 1.
absl::StatusOr<TextDataset> LoadTextDataset(const CorpusSelection& selection);

// The token shard of `split` at `path`: opened if it exists with the key
// (tokenizer hash, dataset hash, split name), else built by tokenizing the
// split's documents (each on its own, no special tokens) and written.
absl::StatusOr<TokenShard> TokenizeSplit(const TextDataset& dataset, Split split,
                                         const BpeTokenizer& tokenizer, const std::string& path);

// The training and validation splits of a dataset as model inputs: each
// split's token shard and its packed contexts, every context starting with
// the tokenizer's <|endoftext|> as BOS (documents joined by it too, as GPT-2
// was trained).
struct PackedSplits {
  TokenShard train_shard, val_shard;
  torch::Tensor train_contexts;  // [n_train, context_length] int64
  torch::Tensor val_contexts;    // [n_val, context_length] int64
};

// Tokenizes (or reopens) the train and val shards at
// shard_prefix + "train.tokshard" / "val.tokshard" and packs at most
// max_train / max_val contexts of context_length tokens (-1: all).
// Records each corpus's and shard's sha256 in `provenance` (may be null).
// InvalidArgument if the tokenizer has no <|endoftext|>, or either split
// packs into no context; errors of TokenizeSplit and PackContexts.
absl::StatusOr<PackedSplits> PackTrainAndVal(const TextDataset& dataset,
                                             const BpeTokenizer& tokenizer,
                                             const std::string& shard_prefix,
                                             int64_t context_length, int64_t max_train,
                                             int64_t max_val, Provenance* provenance);

}  // namespace saelab

#endif  // SAELAB_DATA_TEXT_TEXT_DATASET_H_
