#include "data/text/text_dataset.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "harness/provenance.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {

std::vector<std::string> TextDataset::Texts(Split split) const {
  std::vector<std::string> texts;
  for (const Corpus& corpus : corpora) {
    for (const Document* document : DocumentsInSplit(corpus, split, fractions)) {
      texts.push_back(document->text);
    }
  }
  return texts;
}

absl::StatusOr<TextDataset> LoadTextDataset(const CorpusSelection& selection) {
  TextDataset dataset;
  dataset.fractions.val = selection.val_fraction();
  dataset.fractions.test = selection.test_fraction();
  if (dataset.fractions.val < 0 || dataset.fractions.test < 0 ||
      dataset.fractions.val + dataset.fractions.test >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CorpusSelection: val_fraction ", dataset.fractions.val, " and test_fraction ",
                     dataset.fractions.test, " must be >= 0 and sum to < 1"));
  }
  std::vector<std::string> names(selection.corpora().begin(), selection.corpora().end());
  if (names.empty()) names = KnownCorpora();
  std::string identity =
      absl::StrFormat("val=%.17g test=%.17g\n", dataset.fractions.val, dataset.fractions.test);
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus(name));
    absl::StrAppend(&identity, corpus.name, " ", corpus.sha256, "\n");
    dataset.corpora.push_back(std::move(corpus));
  }
  dataset.sha256 = Sha256Hex(identity);
  return dataset;
}

absl::StatusOr<TokenShard> TokenizeSplit(const TextDataset& dataset, Split split,
                                         const BpeTokenizer& tokenizer, const std::string& path) {
  TokenShardKey key;
  key.tokenizer_sha256 = tokenizer.Sha256();
  key.corpus_sha256 = dataset.sha256;
  key.split = std::string(SplitName(split));
  return OpenOrBuildTokenShard(path, key, tokenizer.vocab_size(),
                               [&]() -> absl::StatusOr<std::vector<std::vector<int32_t>>> {
                                 std::vector<std::vector<int32_t>> documents;
                                 for (const std::string& text : dataset.Texts(split)) {
                                   documents.push_back(tokenizer.Encode(text));
                                 }
                                 return documents;
                               });
}

absl::StatusOr<PackedSplits> PackTrainAndVal(const TextDataset& dataset,
                                             const BpeTokenizer& tokenizer,
                                             const std::string& shard_prefix,
                                             int64_t context_length, int64_t max_train,
                                             int64_t max_val, Provenance* provenance) {
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError("the tokenizer has no <|endoftext|> token to use as BOS");
  }
  const int32_t eot = *tokenizer.eos_id();
  ASSIGN_OR_RETURN(TokenShard train_shard, TokenizeSplit(dataset, Split::kTrain, tokenizer,
                                                         shard_prefix + "train.tokshard"));
  ASSIGN_OR_RETURN(TokenShard val_shard,
                   TokenizeSplit(dataset, Split::kVal, tokenizer, shard_prefix + "val.tokshard"));
  ASSIGN_OR_RETURN(torch::Tensor train_contexts,
                   PackContexts(train_shard, context_length, eot, eot, max_train));
  ASSIGN_OR_RETURN(torch::Tensor val_contexts,
                   PackContexts(val_shard, context_length, eot, eot, max_val));
  if (train_contexts.size(0) == 0 || val_contexts.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the train or validation split packs into no context of ", context_length, " tokens"));
  }
  PackedSplits splits{std::move(train_shard), std::move(val_shard), std::move(train_contexts),
                      std::move(val_contexts)};
  if (provenance != nullptr) {
    for (const Corpus& corpus : dataset.corpora) {
      RecordInput(absl::StrCat("corpus/", corpus.name, " (", corpus.version, ")"), corpus.sha256,
                  provenance);
    }
    RecordInput("token_shard/train", splits.train_shard.sha256(), provenance);
    RecordInput("token_shard/val", splits.val_shard.sha256(), provenance);
  }
  return splits;
}

}  // namespace saelab
