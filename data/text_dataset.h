// From a CorpusSelection to model inputs: load and hash-check the corpora,
// take one split's documents, tokenize them once into a token shard (reused
// while its key matches), and pack the shard into fixed-length contexts.
//
//   ASSIGN_OR_RETURN(TextDataset text, LoadTextDataset(config.data()));
//   std::vector<std::string> train_texts = text.Texts(Split::kTrain);
//   ASSIGN_OR_RETURN(TokenShard shard,
//                    TokenizeSplit(text, Split::kTrain, tokenizer, dir + "/train.tokshard"));
//   torch::Tensor contexts = PackContexts(shard, 128, eos, eos);   // [N, 128] int64
#ifndef SAELAB_DATA_TEXT_DATASET_H_
#define SAELAB_DATA_TEXT_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/bpe_tokenizer.h"
#include "data/corpus.h"
#include "data/token_shard.h"
#include "harness/config.pb.h"

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

}  // namespace saelab

#endif  // SAELAB_DATA_TEXT_DATASET_H_
